"""The status page's energy-award card in headless Chromium: it shows the award of the
interval in progress, the energy imported so far, what remains and the pace, as
GET /api/v1/site answers; with no award in force the card stays hidden."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from ops_site import OpsSite
from status_page_kit import site_json_and_dom
from test_ops_status_page import by_id

from minerd.intervals import interval_bounds
from minerd.model import EnergyAward, QuotaSource
from minerd.runtime.settlement import AwardBoard, SettlementKeeper


def _card(tmp_path: Path, with_award: bool) -> tuple[dict[str, object], str]:
    site = OpsSite(tmp_path / "minerd.sqlite")
    tz = ZoneInfo(site.timezone)
    keeper = SettlementKeeper(site.stores, 3600.0, tz)
    if with_award:
        start, end = interval_bounds(site.now_s, 3600.0, tz)
        award = EnergyAward("korem-1", start, end, 18_500.0, QuotaSource.API, 0.0, "ops-grid")
        site.stores.awards.put([award], "ops-grid", site.now_s)
    s, dom = site_json_and_dom(site, tmp_path, awards=AwardBoard(keeper, lambda: 18_321.0))
    award_json = s["award"]
    assert isinstance(award_json, dict)
    return award_json, dom


def test_the_award_card_shows_what_the_api_answers(tmp_path: Path) -> None:
    a, dom = _card(tmp_path, with_award=True)
    assert a["awarded_kwh"] == 18_500.0 and a["pace_kw"] == 18_321.0
    assert not re.search(r'id="award-card"[^>]*hidden', dom)
    assert by_id(dom, "award-awarded") == "18500.0"
    assert by_id(dom, "award-imported") == f"{a['imported_kwh']:.1f}"
    assert by_id(dom, "award-pace") == "18321.0"
    assert re.fullmatch(r"\d\d:\d\d\u2013\d\d:\d\d", by_id(dom, "award-span"))  # en dash


def test_the_award_card_is_hidden_without_an_award(tmp_path: Path) -> None:
    a, dom = _card(tmp_path, with_award=False)
    assert a["awarded_kwh"] is None
    assert by_id(dom, "site-name") == "ops-site"  # the page did render
    assert re.search(r'id="award-card"[^>]*hidden', dom)
