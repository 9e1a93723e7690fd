"""Driving a region's coordinators round by round on a manual clock, over the real site
wiring of test_region_award_nats: the re-give tests share these."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from nats.aio.client import Client
from test_region_award_nats import WAIT_S, SiteRun, start_site
from waiting import wait_until

from minerd.clock import ManualClock
from minerd.cluster.coordinator import Coordinator
from minerd.cluster.lease import ControllerLease, lease_store
from minerd.cluster.region import lease_token


def step(clock: ManualClock, runs: Sequence[SiteRun], seconds: int) -> None:
    """The clock a second at a time, each site's plant stepped with it."""
    for _ in range(seconds):
        clock.advance(1.0)
        for run in runs:
            run.plant.step()


async def lead(
    clock: ManualClock,
    leader: Coordinator,
    standby: Coordinator | None,
    live: Sequence[SiteRun],
) -> None:
    """A round once every live site has offered since the clock last moved: the leader
    renews its lease and sends; the standby (if any) cannot take the lease and sends none."""
    mono_s = clock.monotonic_s()
    await wait_until(
        lambda: (
            any(r.failed() for r in live)
            or all(
                r.name in leader._heard and leader._heard[r.name].at_mono_s >= mono_s for r in live
            )
        ),
        WAIT_S,
        "fresh offers",
    )
    assert leader.lease is not None
    assert await leader.lease.tick()
    assert await leader.round() is not None
    if standby is not None:
        assert standby.lease is not None
        assert not await standby.lease.tick()
        assert await standby.round() is None


async def leased_pair(
    nc: Client, region: str, clock: ManualClock, make: Callable[[str], Coordinator]
) -> tuple[Coordinator, Coordinator]:
    """Coordinators c1 and c2 on one lease store, started (they hear the offers); neither
    leads until its lease ticks."""
    first, second = make("c1"), make("c2")
    kv = await lease_store(nc.jetstream(), lease_token(region), 60.0)
    first.lease = ControllerLease(kv, "c1", 60.0, clock)
    second.lease = ControllerLease(kv, "c2", 60.0, clock)
    await first.start()
    await second.start()
    return first, second


def big_and_small(region: str, url: str, tmp: Path) -> list[SiteRun]:
    """The two sites of the re-give tests: 10 and 5 rigs."""
    return [
        start_site("big", 10, region, url, tmp / "big"),
        start_site("small", 5, region, url, tmp / "small"),
    ]
