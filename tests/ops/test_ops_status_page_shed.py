"""The status page's "Can shed" card in headless Chromium: the site import kW sheddable
within 5 s, 60 s and 10 minutes that GET /api/v1/site answers, and per family (60 s)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from ops_site import OpsSite
from status_page_kit import site_json_and_dom
from test_ops_status_page import by_id

from minerd.model import RigProtocol, ShedCapacity, ShedClass
from minerd.runtime.service import SiteStatus

SHED = ShedCapacity(
    horizons_s=(5.0, 60.0, 600.0),
    site_factor=1.0,
    classes=(
        ShedClass(RigProtocol.LUXOS, "bitmain-s19jpro", 4, 12_272.0, (12_172.0,) * 3),
        ShedClass(RigProtocol.STOCK, "bitmain-s19jpro", 2, 6_136.0, (0.0, 6_086.0, 6_086.0)),
    ),
)


class ShedSite(OpsSite):
    def status(self) -> SiteStatus:
        return dataclasses.replace(super().status(), shed=SHED)


def test_the_shed_card_shows_what_the_api_answers(tmp_path: Path) -> None:
    s, dom = site_json_and_dom(ShedSite(tmp_path / "minerd.sqlite"), tmp_path)
    c = s["shed_capacity"]
    assert (c["within_5s_kw"], c["within_60s_kw"], c["within_600s_kw"]) == (
        12.172,
        18.258,
        18.258,
    )
    assert by_id(dom, "shed-5s") == "12.2"
    assert by_id(dom, "shed-60s") == "18.3"
    assert by_id(dom, "shed-600s") == "18.3"
    assert by_id(dom, "shed-families") == "luxos 12.2 · stock 6.1"


def test_the_shed_card_shows_dashes_before_the_first_cycle(tmp_path: Path) -> None:
    _, dom = site_json_and_dom(OpsSite(tmp_path / "minerd.sqlite"), tmp_path)
    assert by_id(dom, "site-name") == "ops-site"  # the page did render
    assert by_id(dom, "shed-5s") == "\u2013" and by_id(dom, "shed-families") == ""  # en dash
