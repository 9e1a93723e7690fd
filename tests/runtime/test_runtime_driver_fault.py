"""A driver bug (an exception that is not a DeviceError) is one rig's failure, read or
command alike: devices.rig.driver_fault is the one place that says what it means."""

from __future__ import annotations

import asyncio

import pytest

from minerd.clock import ManualClock
from minerd.devices.rig import classify_failure, driver_fault
from minerd.model import RigProtocol, RigReading, RigState
from minerd.runtime.devices import RigInfo
from minerd.runtime.fleet import FleetState
from minerd.runtime.poller import Poller


def test_a_driver_bug_names_the_rig_and_leaves_its_state_unknown() -> None:
    err = driver_fault("r1", "10.0.0.7:4028", KeyError("SUMMARY"))
    assert (err.device, err.endpoint) == ("r1", "10.0.0.7:4028")
    state, reason = classify_failure(err)
    # Unknown, not offline: it may be hashing, so it is counted at nominal power.
    assert state is RigState.UNKNOWN
    assert "driver error" in reason and "KeyError" in reason


class _Rig:
    def __init__(self, rig_id: str, bug: bool) -> None:
        self.rig_id = rig_id
        self.bug = bug
        self.reads = 0

    async def read(self, now_s: float) -> RigReading:
        self.reads += 1
        if self.bug:
            raise RuntimeError("driver bug: unpacked the reply wrong")
        return RigReading(self.rig_id, now_s, RigState.HASHING, "", power_w=3000.0)

    async def apply(self, cmd: object) -> None:
        raise AssertionError("not commanded here")


def _info(rig_id: str) -> RigInfo:
    return RigInfo(rig_id, "m", "c1", "10.0.0.7", 4028, RigProtocol.LUXOS, 1.0, 0.5, 3.0)


@pytest.mark.asyncio
async def test_the_poller_reads_on_past_a_driver_bug() -> None:
    clock = ManualClock()
    rigs = [_Rig("bug", bug=True), _Rig("ok", bug=False)]
    fleet = FleetState([_info(r.rig_id) for r in rigs], [])
    poller = Poller(fleet, rigs, [], clock, concurrency=1, backoff_cap_s=2.0, seed=1)
    task = asyncio.create_task(poller.run())
    try:
        for _ in range(40):
            clock.advance(0.5)
            for _ in range(20):
                await asyncio.sleep(0)
        assert not task.done()
        assert rigs[0].reads >= 2 and rigs[1].reads >= 2  # both read, again and again
        by_id = {st.rig_id: st for st in fleet.snapshot(clock.now_s()).rigs}
        assert by_id["bug"].reading.state is RigState.UNKNOWN
        assert "driver error" in by_id["bug"].reading.reason
        assert by_id["ok"].reading.state is RigState.HASHING
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
