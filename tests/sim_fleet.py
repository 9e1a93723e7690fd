"""A simulated fleet on a ManualClock for driver and simulator tests over loopback sockets:
started, optionally moved past its warm-up, and closed when the test ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TypeVar

from minerd.clock import ManualClock
from minerd.model import RigProtocol
from minerd.sim.family_base import FamilyListeners
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec, plan_rigs

# A test's own family servers in place of the defaults (a shorter reply delay, say).
FamilyServers = Callable[[ManualClock], Mapping[RigProtocol, FamilyListeners]]
Ports = TypeVar("Ports")

# A port picked free can be taken by another test process before the fleet binds it (the
# suite runs in parallel; a port left free on 127.0.0.1 is not checked on every rig's
# address): the fleet is closed and started again on new ports.
BIND_ATTEMPTS = 4


async def start_on_free_ports(
    pick: Callable[[], Ports], build: Callable[[Ports], RigFleet]
) -> tuple[RigFleet, Ports]:
    """A started fleet whose shared ports `pick()` chose, picked again while binding fails."""
    for attempt in range(1, BIND_ATTEMPTS + 1):
        ports = pick()
        fleet = build(ports)
        try:
            await fleet.start()
        except OSError:
            await fleet.close()
            if attempt == BIND_ATTEMPTS:
                raise
            continue
        return fleet, ports
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def manual_fleet(
    spec: SiteSpec,
    *,
    start_s: float | None = None,
    warm_up_s: float = 0.0,
    family: FamilyServers | None = None,
) -> AsyncIterator[RigFleet]:
    clock = ManualClock() if start_s is None else ManualClock(start_s)
    fleet = RigFleet(plan_rigs(spec), clock)
    if family is not None:
        fleet.family_listeners.update(family(clock))
    try:
        await fleet.start()
        clock.advance(warm_up_s)
        yield fleet
    finally:
        await fleet.close()


def stock_pair(base_octet: int) -> SiteSpec:
    """A stock S19j Pro and a stock S21, their 4028 and web CGI on free ports."""
    return SiteSpec(
        groups=(
            RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.STOCK),
            RigGroupSpec("bitmain-s21", 1, RigProtocol.STOCK),
        ),
        rig_port=0,
        web_port=0,
        base_octet=base_octet,
        workers=1,
    )


def manual_clock(fleet: RigFleet) -> ManualClock:
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    return clock
