"""The status page's economics card in headless Chromium: it shows the margin, revenue,
energy cost and breakeven GET /api/v1/site answers, and which models sleep for price; with
[economics] off the card stays hidden."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from ops_site import TOKENS, OpsSite, ServedSite, api_settings
from servers import free_port
from test_ops_status_page import by_id, run_chromium

from minerd.api import create_app
from minerd.api.status_page import router as status_router
from minerd.control.economics import Tariff
from minerd.profiles import load_rig_model
from minerd.runtime.economics import Economics, EconomicsConfig


class EconomicsServed(ServedSite):
    """ServedSite with [economics] on."""

    def __init__(self, site: OpsSite, port: int, economics: Economics) -> None:
        app = create_app(
            site, api_settings(), None, site.alerts, timezone=site.timezone, economics=economics
        )
        app.include_router(status_router)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[OpsSite, ServedSite]]:
    site = OpsSite(tmp_path / "minerd.sqlite")
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
    with EconomicsServed(site, free_port(), econ) as srv:
        yield site, srv
    site.close()


def test_the_economics_card_shows_what_the_api_answers(
    served: tuple[OpsSite, ServedSite], tmp_path: Path
) -> None:
    _, srv = served
    token = TOKENS["viewer"]
    s = httpx.get(srv.url + "/api/v1/site", headers={"Authorization": f"Bearer {token}"}).json()
    e = s["economics"]
    # 42,000 KZT/MWh at 480 KZT/USD is 87.5 USD/MWh: the S19j Pro's best point (26.4 J/TH)
    # costs more than it earns, the S21's (16.4 J/TH) does not.
    assert e["state"] == "active" and e["models_off"] == ["bitmain-s19jpro"]
    dom = run_chromium(tmp_path, f"{srv.url}/#token={token}", "--dump-dom")
    assert not re.search(r'id="econ-card"[^>]*hidden', dom)
    assert by_id(dom, "econ-currency") == "KZT"
    assert by_id(dom, "econ-margin") == f"{e['margin_per_h']:.2f}"
    assert by_id(dom, "econ-revenue") == f"{e['revenue_per_h']:.2f}"
    assert by_id(dom, "econ-cost") == f"{e['energy_cost_per_h']:.2f}"
    assert by_id(dom, "econ-breakeven") == f"{e['breakeven_j_per_th']:.1f}" == "23.3"
    assert by_id(dom, "econ-state") == "active"
    assert by_id(dom, "econ-off") == "asleep for price: bitmain-s19jpro"


def test_the_economics_card_is_hidden_when_economics_is_off(tmp_path: Path) -> None:
    site = OpsSite(tmp_path / "minerd.sqlite")
    try:
        with ServedSite(site, free_port()) as srv:
            dom = run_chromium(tmp_path, f"{srv.url}/#token={TOKENS['viewer']}", "--dump-dom")
    finally:
        site.close()
    assert by_id(dom, "site-name") == "ops-site"  # the page did render
    assert re.search(r'id="econ-card"[^>]*hidden', dom)
