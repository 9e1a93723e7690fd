"""The poller's schedule itself, with rigs that answer instantly (no sockets: this checks the
scheduler's arithmetic, the real-rig tests are the other test_fleet_* files).

The first round is squeezed into 5 s so the controller soon sees every rig; after it, each
rig must move to its own slot of the interval, or the start-up burst would return every
interval (at 50,000 rigs / 30 s: 10,000 polls/s for 5 s, then nothing for 25 s).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest

from minerd.clock import ScaledClock
from minerd.model import RigCommand, RigProtocol, RigReading, RigState
from minerd.runtime.devices import RigInfo
from minerd.runtime.fleet import FleetState
from minerd.runtime.poller import MIN_FIRST_GAP, Poller

RIGS = 600
INTERVAL_S = 30.0
SPEED = 10.0  # 30 s of schedule in 3 s of wall time
BUCKETS = 6


class InstantRig:
    def __init__(self, rig_id: str, clock: ScaledClock, polls: list[tuple[float, str]]) -> None:
        self._id = rig_id
        self._clock = clock
        self._polls = polls

    @property
    def rig_id(self) -> str:
        return self._id

    async def read(self, now_s: float) -> RigReading:
        self._polls.append((self._clock.monotonic_s(), self._id))
        return RigReading(rig=self._id, taken_at_s=now_s, state=RigState.HASHING, reason="")

    async def apply(self, cmd: RigCommand) -> None:
        return None


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_first_round_quick_then_spread_over_the_interval() -> None:
    clock = ScaledClock(SPEED)
    polls: list[tuple[float, str]] = []
    infos = [
        RigInfo(f"r{i:04d}", "m", "c001", f"127.0.0.{i % 250 + 1}", 4028, RigProtocol.LUXOS,
                INTERVAL_S, 3.0, 3 * INTERVAL_S)
        for i in range(RIGS)
    ]  # fmt: skip
    rigs = [InstantRig(i.rig_id, clock, polls) for i in infos]
    poller = Poller(FleetState(infos, []), rigs, [], clock, concurrency=16, seed=5)
    start_s = clock.monotonic_s()
    task = asyncio.create_task(poller.run())
    steady_from_s = start_s + 5.0 + (MIN_FIRST_GAP + 1.0) * INTERVAL_S
    await asyncio.sleep((steady_from_s - start_s + INTERVAL_S) / SPEED + 0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    first: dict[str, float] = {}
    for t, rig in polls:
        first.setdefault(rig, t)
    assert len(first) == RIGS
    assert max(first.values()) - start_s <= 5.5  # the first round within min(interval, 5 s)
    window = [(t, rig) for t, rig in polls if steady_from_s <= t < steady_from_s + INTERVAL_S]
    per_rig = Counter(rig for _, rig in window)
    assert len(per_rig) == RIGS and set(per_rig.values()) == {1}  # each once per interval
    width = INTERVAL_S / BUCKETS
    spread = Counter(int((t - steady_from_s) // width) for t, _ in window)
    expected = RIGS / BUCKETS
    for b in range(BUCKETS):
        assert 0.6 * expected <= spread[b] <= 1.4 * expected, sorted(spread.items())
    assert poller.stats.max_lateness_s < 1.0
