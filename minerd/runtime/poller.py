"""The poller: reads every meter and rig on its own interval and feeds FleetState.

Rigs are scheduled on one heap of due times and read by a fixed pool of workers, so 50,000
rigs cost 50,000 heap entries, not 50,000 tasks, and concurrency (sockets) stays bounded.
Every read runs under its own timeout; a hung rig holds one worker for at most that long and
then backs off, so it never delays the others. Meters (few, 1 s) each get their own loop.
The first round is quick (within min(interval, 5 s)); after it each rig keeps its own slot,
spread over its interval. Each rig has one live heap entry (poll_now replaces it), so
commands verified by poll_now never multiply a rig's poll rate.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from minerd.cancelling import raise_if_cancelled
from minerd.clock import Clock
from minerd.devices.rig import driver_fault
from minerd.errors import DeviceError, DeviceTimeout
from minerd.runtime.backoff import backoff_s
from minerd.runtime.devices import MeterInfo, PollableMeter, PollableRig, RigInfo
from minerd.runtime.fleet import FleetState

log = logging.getLogger("minerd.poller")

# After its first read a rig waits at least this fraction of its interval for its slot.
MIN_FIRST_GAP = 0.2


@dataclass
class PollStats:
    """Poller health, read by the metrics sink and the benchmarks."""

    rig_polls: int = 0
    rig_failures: int = 0
    meter_polls: int = 0
    meter_failures: int = 0
    # Seconds a rig poll started after it was due: the "polled on time" measure.
    max_lateness_s: float = 0.0
    lateness_sum_s: float = 0.0
    lateness_by_rig_s: dict[str, float] = field(default_factory=dict)
    track_per_rig: bool = False


class Poller:
    def __init__(
        self,
        fleet: FleetState,
        rigs: Sequence[PollableRig],
        meters: Sequence[PollableMeter],
        clock: Clock,
        concurrency: int = 256,
        backoff_cap_s: float = 300.0,
        seed: int | None = None,
    ) -> None:
        if len(rigs) != len(fleet.rig_infos) or len(meters) != len(fleet.meter_infos):
            raise ValueError("poller devices must match the fleet's inventory, in order")
        self.fleet = fleet
        self.rigs = list(rigs)
        self.meters = list(meters)
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.backoff_cap_s = backoff_cap_s
        self.stats = PollStats()
        self._rng = random.Random(seed)
        self._failures = [0] * len(self.rigs)
        self._heap: list[tuple[float, int]] = []
        self._ready: asyncio.Queue[tuple[float, int]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._warned: set[str] = set()
        # The one live heap entry of each rig is (self._due[i], i); older entries are stale
        # and skipped. NaN: the rig is queued or being read, and has no live entry.
        self._due: list[float] = [math.nan] * len(self.rigs)
        self._reading = [False] * len(self.rigs)  # a worker is reading the rig now
        self._again = [False] * len(self.rigs)  # poll_now during that read: read again after
        # Each rig's place in the steady schedule, used once after its first good read.
        self._slot: list[float] = [math.nan] * len(self.rigs)

    async def run(self) -> None:
        start = self.clock.monotonic_s()
        rng = self._rng
        for i, info in enumerate(self.fleet.rig_infos):
            # The first round is quick (within 5 s) so the controller soon sees every rig;
            # after it each rig moves to its own slot spread over the whole interval, or the
            # start-up burst would come back every interval (50,000 rigs due in 5 s of 30).
            due = start + rng.random() * min(info.interval_s, 5.0)
            self._due[i] = due
            self._heap.append((due, i))
            self._slot[i] = start + rng.random() * info.interval_s
        heapq.heapify(self._heap)
        async with asyncio.TaskGroup() as tg:
            for meter, m_info in zip(self.meters, self.fleet.meter_infos, strict=True):
                tg.create_task(self._meter_loop(meter, m_info), name=f"poll-meter-{m_info.name}")
            if self.rigs:
                tg.create_task(self._schedule(), name="poll-rig-scheduler")
                for n in range(min(self.concurrency, len(self.rigs))):
                    tg.create_task(self._rig_worker(), name=f"poll-rig-worker-{n}")

    def poll_now(self, rig_id: str) -> None:
        """Read a rig as soon as a worker is free (after a command, to verify it)."""
        i = self.fleet.rig_index(rig_id)
        due = self._due[i]
        if due != due:  # NaN: queued (that read comes after the command) or being read
            if self._reading[i]:
                self._again[i] = True
            return
        now = self.clock.monotonic_s()
        if due > now:
            self._push(now, i)

    def _push(self, due: float, i: int) -> None:
        # Replaces the rig's live entry: the old one is left in the heap and skipped as stale.
        self._due[i] = due
        heap = self._heap
        heapq.heappush(heap, (due, i))
        if heap[0][1] == i and heap[0][0] == due:
            self._wake.set()  # earlier than the scheduler's planned wake-up

    # ------------------------------------------------------------ rigs

    async def _schedule(self) -> None:
        heap = self._heap
        live = self._due
        ready = self._ready
        while True:
            now = self.clock.monotonic_s()
            while heap and heap[0][0] <= now:
                due, i = heapq.heappop(heap)
                if live[i] != due:
                    continue  # stale: replaced by poll_now
                live[i] = math.nan
                ready.put_nowait((due, i))
            delay = heap[0][0] - now if heap else 1.0
            self._wake.clear()
            try:
                async with self.clock.timeout(max(0.002, min(delay, 1.0))):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _rig_worker(self) -> None:
        infos = self.fleet.rig_infos
        stats = self.stats
        while True:
            due, i = await self._ready.get()
            info = infos[i]
            started = self.clock.monotonic_s()
            late = max(0.0, started - due)
            stats.lateness_sum_s += late
            if late > stats.max_lateness_s:
                stats.max_lateness_s = late
            if stats.track_per_rig:
                prev = stats.lateness_by_rig_s.get(info.rig_id, 0.0)
                stats.lateness_by_rig_s[info.rig_id] = max(prev, late)
            self._reading[i] = True
            try:
                ok = await self._poll_rig(i, info)
            finally:
                self._reading[i] = False
            raise_if_cancelled()
            if ok:
                self._failures[i] = 0
                next_in = info.interval_s
            else:
                self._failures[i] += 1
                next_in = max(
                    info.interval_s,
                    backoff_s(self._failures[i], info.interval_s, self.backoff_cap_s, self._rng),
                )
            if self._again[i]:
                self._again[i] = False
                self._push(self.clock.monotonic_s(), i)
                continue
            slot = self._slot[i]
            if ok and slot == slot:  # first good read: next one in the rig's own slot
                self._slot[i] = math.nan
                interval_s = info.interval_s
                behind_s = started + MIN_FIRST_GAP * interval_s - slot
                if behind_s > 0:
                    slot += math.ceil(behind_s / interval_s) * interval_s
                self._push(slot, i)
                continue
            # Schedule from the due time, not the finish, so slow reads do not drift the grid.
            base = due if ok and started - due < info.interval_s else started
            self._push(base + next_in, i)

    async def _poll_rig(self, i: int, info: RigInfo) -> bool:
        self.stats.rig_polls += 1
        rig = self.rigs[i]
        try:
            async with self.clock.timeout(info.timeout_s):
                reading = await rig.read(self.clock.now_s())
        except TimeoutError:
            err: DeviceError = DeviceTimeout(
                info.rig_id, f"{info.host}:{info.port}", f"no reply within {info.timeout_s}s"
            )
            self._rig_failed(i, info, err)
            return False
        except DeviceError as e:
            self._rig_failed(i, info, e)
            return False
        except Exception as e:
            # A driver bug on one rig's reply must not stop the poller for every other rig.
            if info.rig_id not in self._warned:
                log.exception("rig %s: driver error", info.rig_id)
            self._rig_failed(i, info, driver_fault(info.rig_id, f"{info.host}:{info.port}", e))
            return False
        self.fleet.update_rig(i, reading)
        if info.rig_id in self._warned:
            self._warned.discard(info.rig_id)
            log.info("rig readable again", extra={"rig": info.rig_id})
        return True

    def _rig_failed(self, i: int, info: RigInfo, err: DeviceError) -> None:
        self.stats.rig_failures += 1
        self.fleet.rig_failed(i, err, self.clock.now_s())
        if info.rig_id in self._warned:
            log.debug("rig still failing: %s", err)
        else:
            self._warned.add(info.rig_id)
            log.warning("rig read failed: %s", err)

    # ------------------------------------------------------------ meters

    async def _meter_loop(self, meter: PollableMeter, info: MeterInfo) -> None:
        failures = 0
        warned = False
        while True:
            started = self.clock.monotonic_s()
            self.stats.meter_polls += 1
            try:
                async with self.clock.timeout(info.timeout_s):
                    asked_s = self.clock.now_s()
                    reading = await meter.read(asked_s)
                # Stamped halfway through the read: the meter answers with values of a moment
                # after it was asked, and a busy link or loop can hold a read for a good part
                # of its timeout (the energy pace counts the register on these stamps).
                answered_s = self.clock.now_s()
                reading = replace(
                    reading,
                    taken_at_s=(asked_s + answered_s) / 2.0,
                    read_window_s=max(0.0, answered_s - asked_s),
                )
            except (TimeoutError, DeviceError) as e:
                err = (
                    e
                    if isinstance(e, DeviceError)
                    else DeviceTimeout(
                        info.name, info.endpoint, f"no reply within {info.timeout_s}s"
                    )
                )
                failures += 1
                self.stats.meter_failures += 1
                self.fleet.meter_failed(info.name, err)
                if warned:
                    log.debug("meter still failing: %s", err)
                else:
                    warned = True
                    log.warning("meter read failed: %s", err)
            else:
                self.fleet.update_meter(reading)
                if warned:
                    log.info("meter readable again: %s", info.name)
                failures, warned = 0, False
            raise_if_cancelled()
            # Meters keep a short capped backoff: the grid meter is the safety input.
            wait_s = info.interval_s if failures == 0 else min(5.0, info.interval_s * failures)
            elapsed = self.clock.monotonic_s() - started
            await self.clock.sleep(max(0.0, wait_s - elapsed))
