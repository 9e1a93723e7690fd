"""A simulated fleet on a ManualClock for driver and simulator tests over loopback sockets:
started, optionally moved past its warm-up, and closed when the test ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from minerd.clock import ManualClock
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import SiteSpec, plan_rigs


@contextlib.asynccontextmanager
async def manual_fleet(
    spec: SiteSpec, *, start_s: float | None = None, warm_up_s: float = 0.0
) -> AsyncIterator[RigFleet]:
    clock = ManualClock() if start_s is None else ManualClock(start_s)
    fleet = RigFleet(plan_rigs(spec), clock)
    await fleet.start()
    try:
        clock.advance(warm_up_s)
        yield fleet
    finally:
        await fleet.close()


def manual_clock(fleet: RigFleet) -> ManualClock:
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    return clock
