"""The status page's economics card in headless Chromium: it shows the margin, revenue,
energy cost and breakeven GET /api/v1/site answers, and which models sleep for price; with
[economics] off the card stays hidden."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from ops_site import OpsSite
from status_page_kit import site_json_and_dom
from test_ops_status_page import by_id

from minerd.control.economics import Tariff
from minerd.profiles import load_rig_model
from minerd.runtime.economics import Economics, EconomicsConfig


def _economics(site: OpsSite) -> Economics:
    cfg = EconomicsConfig(
        tariff=Tariff(default_per_mwh=42_000.0),
        currency="KZT",
        currency_per_usd=480.0,
        pool_fee_fraction=0.02,
        fixed_hashprice_usd_per_th_day=0.05,
    )
    models = [load_rig_model("bitmain-s21"), load_rig_model("bitmain-s19jpro")]
    econ = Economics(cfg, models)
    econ.max_j_per_th(site.now_s)  # what a control cycle does
    return econ


def test_the_economics_card_shows_what_the_api_answers(tmp_path: Path) -> None:
    site = OpsSite(tmp_path / "minerd.sqlite")
    s, dom = site_json_and_dom(site, tmp_path, economics=_economics(site))
    e = s["economics"]
    # 42,000 KZT/MWh at 480 KZT/USD is 87.5 USD/MWh: the S19j Pro's best point (26.4 J/TH)
    # costs more than it earns, the S21's (16.4 J/TH) does not.
    assert e["state"] == "active" and e["models_off"] == ["bitmain-s19jpro"]
    assert not re.search(r'id="econ-card"[^>]*hidden', dom)
    assert by_id(dom, "econ-currency") == "KZT"
    assert by_id(dom, "econ-margin") == f"{e['margin_per_h']:.2f}"
    assert by_id(dom, "econ-revenue") == f"{e['revenue_per_h']:.2f}"
    assert by_id(dom, "econ-cost") == f"{e['energy_cost_per_h']:.2f}"
    assert by_id(dom, "econ-breakeven") == f"{e['breakeven_j_per_th']:.1f}" == "23.3"
    assert by_id(dom, "econ-state") == "active"
    assert by_id(dom, "econ-off") == "asleep for price: bitmain-s19jpro"


def test_the_economics_card_is_hidden_when_economics_is_off(tmp_path: Path) -> None:
    _, dom = site_json_and_dom(OpsSite(tmp_path / "minerd.sqlite"), tmp_path)
    assert by_id(dom, "site-name") == "ops-site"  # the page did render
    assert re.search(r'id="econ-card"[^>]*hidden', dom)
