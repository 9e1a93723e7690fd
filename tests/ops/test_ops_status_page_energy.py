"""The status page's award-pace card in headless Chromium, next to the limit card: the pace's
energy so far against the award, its power target, and the grid meter's energy register
(believed or not, faults since start), as GET /api/v1/site's `energy` answers from a real
EnergyTracker; with no award in force the card stays hidden."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from ops_site import OpsSite
from status_page_kit import site_json_and_dom
from test_ops_status_page import by_id

from minerd.control.energy_pace import FAULT_BACKWARDS, PaceConfig
from minerd.model import (
    EffectiveLimit,
    EnergyAward,
    FleetSnapshot,
    MeterReading,
    MeterRole,
    MeterStatus,
    QuotaSource,
)
from minerd.runtime.energy_board import EnergyBoard
from minerd.runtime.energy_tracker import EnergyTracker, ListAwards

LIMIT = EffectiveLimit(80.0, "contracted")


def _tracker(site: OpsSite, *, fault: bool) -> EnergyTracker:
    """An award of 10 kWh over the 20 minutes around now, paced for 10 minutes of cycles."""
    start = site.now_s - 600.0
    award = EnergyAward("korem-9", start, start + 1200.0, 10.0, QuotaSource.API, 0.0, "g")
    tracker = EnergyTracker(ListAwards([award]), PaceConfig(max_kw=80.0, margin_kw=0.0))
    register, power = 900.0, 30.0
    t = start - 1.0
    while t <= site.now_s:
        reading = MeterReading("grid-main", t, power * 1000.0, energy_import_kwh=register)
        meter = MeterStatus("grid-main", MeterRole.GRID, "", reading, True, 0.0)
        power = tracker.cap(LIMIT, FleetSnapshot(t, (), (meter,)), t).limit_kw
        register += power / 3600.0 - (2.0 if fault and t == site.now_s - 60.0 else 0.0)
        t += 1.0
    return tracker


def test_the_energy_card_shows_the_pace_and_a_register_fault(tmp_path: Path) -> None:
    site = OpsSite(tmp_path / "minerd.sqlite")
    tracker = _tracker(site, fault=True)
    s, dom = site_json_and_dom(site, tmp_path, energy=EnergyBoard(lambda: tracker))
    e = s["energy"]
    assert e["award_id"] == "korem-9" and e["register_fault"] == FAULT_BACKWARDS
    assert e["register_faults"] == 1 and e["energy_source"] == "integrated"
    assert 4.5 < e["energy_kwh"] < 5.5  # half the interval on pace: about half its 10 kWh
    assert not re.search(r'id="energy-card"[^>]*hidden', dom)
    # the card sits right after the limit card
    assert dom.index('id="limit-origin"') < dom.index('id="energy-card"') < dom.index("Headroom")
    assert by_id(dom, "energy-so-far") == f"{e['energy_kwh']:.1f}"
    assert by_id(dom, "energy-award") == "10.0"
    assert by_id(dom, "energy-pace") == f"{e['pace_target_kw']:.1f}"
    assert by_id(dom, "energy-register") == f"NOT believed: {FAULT_BACKWARDS}"
    assert by_id(dom, "energy-faults") == "1"
    assert re.fullmatch(r"\d\d:\d\d\u2013\d\d:\d\d", by_id(dom, "energy-span"))


def test_the_energy_card_says_the_register_is_in_use(tmp_path: Path) -> None:
    site = OpsSite(tmp_path / "minerd.sqlite")
    tracker = _tracker(site, fault=False)
    s, dom = site_json_and_dom(site, tmp_path, energy=EnergyBoard(lambda: tracker))
    assert s["energy"]["register_faults"] == 0
    assert by_id(dom, "energy-register") == "in use"
    assert by_id(dom, "energy-faults") == "0"


def test_the_energy_card_is_hidden_without_an_award(tmp_path: Path) -> None:
    site = OpsSite(tmp_path / "minerd.sqlite")
    idle = EnergyTracker(ListAwards([]), PaceConfig(max_kw=80.0))
    s, dom = site_json_and_dom(site, tmp_path, energy=EnergyBoard(lambda: idle))
    assert s["energy"] is None
    assert by_id(dom, "site-name") == "ops-site"  # the page did render
    assert re.search(r'id="energy-card"[^>]*hidden', dom)
