"""Before the grid meter has been read, the site's import is unknown, not 0: in GET
/api/v1/site, in its history, in the MQTT site state and on the status page."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from ops_site import TOKENS, OpsSite, ServedSite
from servers import free_port
from test_ops_status_page import by_id, run_chromium

from minerd.control.loop import LoopDecision
from minerd.model import EffectiveLimit, MeterReading
from minerd.runtime.cycle import CycleResult
from minerd.runtime.fleet import FleetState
from minerd.runtime.history import SiteHistory
from minerd.runtime.intents import Dispatch
from minerd.sinks.events import SnapshotEvent
from minerd.sinks.mqtt import site_state

LIMIT = EffectiveLimit(60.0, "quota", "q-now")


def decision() -> LoopDecision:
    return LoopDecision(50_000.0, LIMIT, 58.0, 0.0, 0.0, 0.0, False, False, False)


def test_history_marks_unread_values_unknown_until_read(tmp_path: Path) -> None:
    site = OpsSite(tmp_path / "minerd.sqlite")
    try:
        fresh = FleetState(site.rig_infos, site.meter_infos)  # a daemon just started
        history = SiteHistory(step_s=10.0)
        for k, t in enumerate((0.0, 10.0)):
            snap = fresh.snapshot(site.now_s + t)
            history(CycleResult(k, snap, decision(), None, Dispatch((), ()), "", None, 0.0))
        fresh.update_meter(MeterReading("grid-main", site.now_s + 15.0, power_w=17_000.0))
        snap = fresh.snapshot(site.now_s + 20.0)
        history(CycleResult(2, snap, decision(), None, Dispatch((), ()), "", None, 0.0))
        points = history.between(site.now_s - 1.0, site.now_s + 30.0)
    finally:
        site.close()
    assert [math.isnan(p.grid_import_kw) for p in points] == [True, True, False]
    assert points[2].grid_import_kw == 17.0
    assert all(math.isnan(p.hashrate_ths) for p in points)  # no rig polled yet
    assert [p.limit_kw for p in points] == [60.0] * 3  # what is known stays


def test_mqtt_site_state_has_null_power_before_the_first_read(tmp_path: Path) -> None:
    site = OpsSite(tmp_path / "minerd.sqlite")
    try:
        fresh = FleetState(site.rig_infos, site.meter_infos)
        doc = site_state("s", SnapshotEvent(fresh.snapshot(site.now_s), LIMIT, 5e4, False))
        read = site_state("s", SnapshotEvent(site.snapshot(), LIMIT, 5e4, False))
    finally:
        site.close()
    assert doc["power_w"] is None and doc["rig_power_w"] is None and doc["hashrate_ths"] is None
    assert doc["limit_w"] == 60_000.0
    assert read["power_w"] == 17_654.0 and read["hashrate_ths"] == 706.5
    json.dumps(doc)  # null, not NaN, on the wire


def test_site_api_and_page_before_the_grid_meter_is_read(tmp_path: Path) -> None:
    site = OpsSite(tmp_path / "minerd.sqlite")
    site.fleet = FleetState(site.rig_infos, site.meter_infos)  # nothing read yet
    try:
        with ServedSite(site, free_port()) as srv:
            headers = {"Authorization": f"Bearer {TOKENS['operator']}"}
            s = httpx.get(srv.url + "/api/v1/site", headers=headers).json()
            dom = run_chromium(tmp_path, f"{srv.url}/#token={TOKENS['operator']}", "--dump-dom")
    finally:
        site.close()
    assert s["grid_import_kw"] is None and s["grid_fresh"] is False
    assert by_id(dom, "grid-import") == "\u2013"
    assert by_id(dom, "grid-fresh") == "grid meter not read yet"
    assert by_id(dom, "headroom") == "\u2013"
