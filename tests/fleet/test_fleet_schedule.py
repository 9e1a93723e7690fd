"""The poller's schedule itself, with rigs that answer instantly (no sockets: this checks the
scheduler's arithmetic, the real-rig tests are the other test_fleet_* files). It runs on virtual
time (tests/virtual_loop.py), so a busy machine cannot make a poll late: lateness seen here is
the scheduler's own; the real-time figures are benchmarks/bench_poller*.py's.

The first round is squeezed into 5 s so the controller soon sees every rig; after it, each
rig must move to its own slot of the interval, or the start-up burst would return every
interval (at 50,000 rigs / 30 s: 10,000 polls/s for 5 s, then nothing for 25 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter

from virtual_loop import LoopClock, run_virtual

from minerd.model import MeterReading, MeterRole, RigCommand, RigProtocol, RigReading, RigState
from minerd.runtime.devices import MeterInfo, RigInfo
from minerd.runtime.fleet import FleetState
from minerd.runtime.poller import MIN_FIRST_GAP, Poller

RIGS = 600
INTERVAL_S = 30.0
BUCKETS = 6


class InstantRig:
    def __init__(self, rig_id: str, clock: LoopClock, polls: list[tuple[float, str]]) -> None:
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


def test_first_round_quick_then_spread_over_the_interval() -> None:
    run_virtual(first_round_quick_then_spread())


async def first_round_quick_then_spread() -> None:
    clock = LoopClock()
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
    await asyncio.sleep(steady_from_s - start_s + INTERVAL_S + 1.0)
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
    # Instant reads, 16 workers: the scheduler itself never starts a rig late.
    assert poller.stats.max_lateness_s < 0.01, poller.stats.max_lateness_s


class FakeMeter:
    """Answers after `delay_s` of (virtual) time, or fails by hanging past its timeout."""

    def __init__(self, name: str, clock: LoopClock, delay_s: float, hangs: bool = False) -> None:
        self.name = name
        self._clock = clock
        self._delay_s = delay_s
        self._hangs = hangs
        self.reads_at: list[float] = []

    async def read(self, now_s: float) -> MeterReading:
        self.reads_at.append(self._clock.monotonic_s())
        if self._hangs:
            await asyncio.Event().wait()
        await asyncio.sleep(self._delay_s)
        return MeterReading(self.name, now_s, 1000.0)


def test_meters_read_once_per_interval_and_back_off_when_failing() -> None:
    run_virtual(meters_read_once_per_interval_and_back_off())


async def meters_read_once_per_interval_and_back_off() -> None:
    clock = LoopClock()
    meters = [FakeMeter("fast", clock, 0.0), FakeMeter("slow", clock, 0.3),
              FakeMeter("dead", clock, 0.0, hangs=True)]  # fmt: skip
    infos = [MeterInfo(m.name, MeterRole.FEEDER, "", "tcp://x", 1.0, 0.5, 3.0) for m in meters]
    poller = Poller(FleetState([], infos), [], meters, clock)
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(30.0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    def gaps(m: FakeMeter) -> list[float]:
        return [round(b - a, 6) for a, b in itertools.pairwise(m.reads_at)]

    # The interval runs from the start of a read, so a slow reply does not stretch it.
    for m in meters[:2]:
        assert set(gaps(m)) == {1.0} and len(m.reads_at) >= 30, (m.name, gaps(m))
    # A failing meter backs off by one interval per failure, capped at 5 s.
    assert gaps(meters[2])[:7] == [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0], gaps(meters[2])
    assert poller.stats.meter_failures >= 7  # the last read may still be waiting


class SlowRig(InstantRig):
    """Takes 50 ms to answer, so that some poll_now calls land during a read."""

    async def read(self, now_s: float) -> RigReading:
        reading = await super().read(now_s)
        await asyncio.sleep(0.05)
        return reading


def test_poll_now_reads_at_once_and_leaves_one_read_per_interval() -> None:
    run_virtual(poll_now_reads_at_once())


async def poll_now_reads_at_once() -> None:
    clock = LoopClock()
    polls: list[tuple[float, str]] = []
    info = RigInfo("r1", "m", "c001", "127.0.0.1", 4028, RigProtocol.LUXOS, 3.0, 1.0, 9.0)
    poller = Poller(FleetState([info], []), [SlowRig("r1", clock, polls)], [], clock, seed=1)
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(20.0)  # past the first round and the move to the rig's own slot
    asked_at = clock.monotonic_s()
    before = len(polls)
    poller.poll_now("r1")
    await asyncio.sleep(0.001)  # everything ready runs before virtual time moves
    assert len(polls) == before + 1 and polls[-1][0] == asked_at  # read at once
    await asyncio.sleep(1.0)
    for _ in range(10):  # a burst, some calls while the rig is being read: each is served
        poller.poll_now("r1")
        await asyncio.sleep(0.01)
    burst_end = clock.monotonic_s()
    await asyncio.sleep(0.5)
    burst = len(polls) - before - 1
    assert 1 <= burst <= 10, burst
    # Back on the schedule: one read per interval (a stray entry per call would be ~12).
    await asyncio.sleep(31.0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    window = [t for t, _ in polls if burst_end + 1.0 <= t < burst_end + 31.0]
    assert len(window) == 10, window
