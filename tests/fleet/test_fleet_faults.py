"""Acceptance: each simulated fault reaches FleetState classified, with its reason.

Rig faults (injected in the simulator, read over real TCP by the daemon's drivers):
offline -> OFFLINE "offline: ..." (connection refused); hung -> UNKNOWN "hung: ..." (kept
UNKNOWN, not OFFLINE, so the controller counts it at nominal power: a rig whose API hangs
still draws power); overheat / fan_failure / dead_board -> FAULT with the cause in the
reason; broken JSON -> repaired (trailing commas, glued objects, bare inf) or rejected
(truncated reply: UNKNOWN "broken reply: ... truncated ...").
Meter faults: frozen -> the reading keeps coming with identical values (FleetState marks it
"frozen" and lets it go stale); modbus_exception -> error "modbus-exception: ..."; offline
-> the gateway answers exception 11 (target failed to respond) after its own timeout.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fleet_kit import all_read_since, polled_site, truth_rigs
from waiting import wait_until

from minerd.model import MeterReading, MeterStatus, RigState
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

RIG_FAULTS = {
    "c001-r001": "offline",
    "c001-r002": "hung",
    "c001-r003": "overheat",
    "c002-r001": "fan_failure",
    "c002-r002": "dead_board",
}
METER_FAULTS = {
    "feeder-c001": "frozen",
    "feeder-c002": "modbus_exception",
    "feeder-c003": "offline",
}


def fault_spec(base_octet: int, rigs: int, per_container: int) -> SiteSpec:
    return SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", rigs),),
        rigs_per_container=per_container,
        rig_port=0,
        base_octet=base_octet,
        workers=1,
    )


async def inject_all(site: SimSite) -> None:
    for device, fault in {**RIG_FAULTS, **METER_FAULTS}.items():
        await site.inject(device, fault)


def _meter(snap_meters: tuple[MeterStatus, ...], name: str) -> MeterStatus:
    return next(m for m in snap_meters if m.meter == name)


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_rig_and_meter_faults_classified(tmp_path: Path) -> None:
    spec = fault_spec(152, rigs=9, per_container=3)
    async with polled_site(
        spec, tmp_path, rig_interval_s=1.0, rig_timeout_s=0.5, before_poll=inject_all
    ) as run:
        start_s = run.site.clock.now_s()
        await run.wait_for(lambda s: all_read_since(s, start_s), 60.0, "one poll round")
        # frozen: two successful reads of the frozen meter, at least one poll apart
        first = _meter(run.snapshot().meters, "feeder-c001").reading
        assert first is not None
        snap = await run.wait_for(
            lambda s: _taken(_meter(s.meters, "feeder-c001").reading) > first.taken_at_s + 0.5,
            30.0,
            "a second read of the frozen meter",
        )
        truth = truth_rigs(await run.site.truth())

    by_id = {r.rig_id: r for r in snap.rigs}
    offline = by_id["c001-r001"].reading
    assert offline.state is RigState.OFFLINE and offline.reason.startswith("offline: ")
    assert "connect" in offline.reason.lower(), offline.reason  # refused at connect
    assert truth["c001-r001"]["state"] == "offline"

    hung = by_id["c001-r002"].reading
    assert hung.state is RigState.UNKNOWN and hung.reason.startswith("hung: "), hung.reason
    assert not by_id["c001-r002"].fresh
    assert truth["c001-r002"]["state"] == "offline"  # the simulator's word; see docstring

    hot = by_id["c001-r003"].reading
    assert hot.state is RigState.FAULT and hot.reason.startswith("overheat "), hot.reason
    assert hot.chip_temp_max_c is not None and hot.chip_temp_max_c >= 95
    assert truth["c001-r003"]["state"] == "fault"

    fan = by_id["c002-r001"].reading
    assert fan.state is RigState.FAULT and "fan failure: 1 of" in fan.reason, fan.reason
    assert fan.fan_rpm_min == 0 and truth["c002-r001"]["fan_rpm_min"] == 0

    board = by_id["c002-r002"].reading
    assert board.state is RigState.FAULT and board.reason == "dead board: 1 of 3", board.reason
    assert (board.boards_ok, board.boards_total) == (2, 3)
    assert truth["c002-r002"]["state"] == "fault" and truth["c002-r002"]["boards_ok"] == 2

    for rig_id, st in by_id.items():
        if rig_id not in RIG_FAULTS:
            assert st.reading.state is RigState.HASHING and st.fresh, (rig_id, st.reading)

    frozen = _meter(snap.meters, "feeder-c001")
    assert frozen.reading is not None and frozen.reading.taken_at_s > first.taken_at_s
    assert _values(frozen.reading) == _values(first)  # the reading is returned, values stuck
    assert frozen.error.startswith("frozen: identical values"), frozen.error

    exc = _meter(snap.meters, "feeder-c002")
    assert exc.reading is None and not exc.fresh
    assert exc.error.startswith("modbus-exception: "), exc.error
    assert "exception 4" in exc.error, exc.error  # DEVICE_FAILURE from the simulator

    gone = _meter(snap.meters, "feeder-c003")
    assert gone.reading is None and not gone.fresh
    assert gone.error.startswith("modbus-exception: ") and "exception 11" in gone.error, gone.error
    grid = _meter(snap.meters, "grid")
    assert grid.fresh and grid.error == ""


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_broken_json_repaired_or_rejected(tmp_path: Path) -> None:
    """One rig sends broken JSON; the simulator cycles four kinds of damage per reply:
    trailing commas, glued objects, bare inf (repaired) and truncated (rejected)."""
    spec = fault_spec(153, rigs=1, per_container=1)

    async def broken(site: SimSite) -> None:
        await site.inject("c001-r001", "broken_json")

    async with polled_site(
        spec, tmp_path, rig_interval_s=0.25, rig_timeout_s=0.5, before_poll=broken
    ) as run:
        seen: dict[float, tuple[RigState, str, float, float]] = {}

        def watch() -> bool:
            r = run.rig("c001-r001").reading
            if r.taken_at_s > 0:
                seen[r.taken_at_s] = (r.state, r.reason, r.power_w, r.hashrate_ths)
            return run.poller.stats.rig_polls >= 12

        await wait_until(watch, 60.0, "12 rig polls", step_s=0.01)
        polls = run.poller.stats.rig_polls
        failures = run.poller.stats.rig_failures
        errors = dict(run.fleet.poll_errors_by_reason)
        truth = truth_rigs(await run.site.truth())["c001-r001"]

    assert polls >= 12
    # every fourth reply is truncated: rejected as a protocol error, the rest repaired
    assert errors == {"protocol": failures}
    assert polls // 4 - 1 <= failures <= polls // 4 + 1, (polls, failures)
    repaired = [v for v in seen.values() if v[0] is RigState.HASHING]
    rejected = [v for v in seen.values() if v[0] is not RigState.HASHING]
    assert len(repaired) >= 6 and len(rejected) >= 2, seen
    for _state, reason, power_w, hashrate_ths in repaired:
        assert reason == ""
        assert power_w == pytest.approx(float(str(truth["power_w"])), abs=2.0)
        assert hashrate_ths == pytest.approx(float(str(truth["hashrate_ths"])), rel=0.005)
    for state, reason, _, _ in rejected:
        assert state is RigState.UNKNOWN
        assert reason.startswith("broken reply: ") and "truncated reply" in reason, reason


def _taken(reading: MeterReading | None) -> float:
    return reading.taken_at_s if reading is not None else 0.0


def _values(reading: MeterReading) -> MeterReading:
    return replace(reading, taken_at_s=0.0, read_window_s=0.0)  # the values, not the read
