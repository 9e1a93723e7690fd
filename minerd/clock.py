"""The injected clock. The daemon uses SystemClock; the simulator and tests may run faster.

Every wait (sleep, timeout, delayed call) and every reading of time goes through here, so
that a scaled or manual clock changes all of them at once. No other module reads wall time
(tests/harness/test_no_wall_clock.py keeps it so). `elapsed_s()` is the one exception by design:
the loop's seconds for measuring how long work took (latency metrics, the watchdog), which
must not scale with a simulated clock and never decide control.

The daemon wraps whatever clock it is given in a SiteClock: site time is the wall time at
start carried on by monotonic time, so a stepped system clock never moves quota times.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

__all__ = [
    "Clock",
    "ManualClock",
    "ScaledClock",
    "SiteClock",
    "StepStatus",
    "SystemClock",
    "TimerHandle",
    "elapsed_s",
    "step_status",
    "system_clock",
]

log = logging.getLogger("minerd.clock")


def elapsed_s() -> float:
    """The event loop's own seconds, for measuring durations and the watchdog only.

    Real monotonic time on the daemon's loop (and outside any loop); on a test's
    virtual-time loop, that loop's time, so a measured duration matches its timers.
    """
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    # How many clock seconds pass per wall second. Callers never divide by it themselves:
    # sleep, timeout and call_later take clock seconds.
    speed: float

    def now_s(self) -> float:
        """Wall time, unix seconds UTC."""

    def monotonic_s(self) -> float:
        """Monotonic seconds for intervals and timeouts."""

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of this clock's time."""

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        """Like asyncio.timeout: TimeoutError after `seconds` of this clock's time (None: never)."""

    def call_later(self, seconds: float, callback: Callable[[], object]) -> TimerHandle:
        """Call `callback` on the loop after `seconds` of this clock's time."""


class SystemClock:
    speed: float = 1.0

    def now_s(self) -> float:
        return time.time()

    def monotonic_s(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(None if seconds is None else max(0.0, seconds) / self.speed)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, seconds) / self.speed, callback)


system_clock = SystemClock()  # for code that is given no clock: the daemon's default


class ScaledClock(SystemClock):
    """Time that runs `speed` times faster than the wall, from a fixed origin.

    The simulator and scenario tests share one so that a 15-minute settlement interval
    passes in seconds while every component still sees a coherent time.
    """

    def __init__(self, speed: float = 1.0, origin_s: float | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._wall0 = time.time() if origin_s is None else origin_s
        self._mono0 = time.monotonic()

    def now_s(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0) * self.speed

    def monotonic_s(self) -> float:
        return (time.monotonic() - self._mono0) * self.speed


class _ManualTimer:
    """A ManualClock timer: fires once, when the clock passes it or its real delay ends."""

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.done = False
        self.real: asyncio.TimerHandle | None = None

    def fire(self) -> None:
        if not self.done:
            self.done = True
            if self.real is not None:
                self.real.cancel()
            self.callback()

    def cancel(self) -> None:
        self.done = True
        if self.real is not None:
            self.real.cancel()


class ManualClock:
    """A clock that moves only when told: for table-driven controller tests.

    A wait (call_later, timeout) ends when advance() or sleep() moves the clock past it, in
    deadline order, through the loop as asyncio's own timers do; or, at the latest, after
    the same span of real time (speed 1), so code under test never hangs on a clock nobody
    moves. sleep() advances the clock itself and yields to the loop once.
    """

    speed: float = 1.0

    def __init__(self, start_s: float = 1_800_000_000.0) -> None:
        self._t = start_s
        self._start = start_s
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def now_s(self) -> float:
        return self._t

    def monotonic_s(self) -> float:
        return self._t - self._start

    def advance(self, seconds: float) -> None:
        self._t += max(0.0, seconds)
        due: list[_ManualTimer] = []
        while self._timers and self._timers[0][0] <= self._t:
            due.append(heapq.heappop(self._timers)[2])
        if not due:
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for timer in due:
            if loop is None:
                timer.fire()  # no loop to wait for (a synchronous test): fire now
            else:
                loop.call_soon(timer.fire)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> _ManualTimer:
        timer = _ManualTimer(callback)
        seconds = max(0.0, seconds)
        if len(self._timers) > 1024:  # drop finished ones: timeouts mostly end unexpired
            self._timers = [entry for entry in self._timers if not entry[2].done]
            heapq.heapify(self._timers)
        heapq.heappush(self._timers, (self._t + seconds, next(self._seq), timer))
        with contextlib.suppress(RuntimeError):  # no loop: only advance() fires it
            timer.real = asyncio.get_running_loop().call_later(seconds, timer.fire)
        return timer

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        if seconds is None:
            return asyncio.timeout(None)
        cm = asyncio.timeout(max(0.0, seconds))  # the real-time bound
        loop = asyncio.get_running_loop()
        # Expire early through asyncio's own Timeout, so cancellation works exactly as there.
        timer = self.call_later(seconds, lambda: _expire(cm, loop))
        if timer.real is not None:
            timer.real.cancel()  # the Timeout keeps the real bound itself
            timer.real = None
        return _Guarded(cm, timer)


def _expire(cm: asyncio.Timeout, loop: asyncio.AbstractEventLoop) -> None:
    if not cm.expired():
        with contextlib.suppress(RuntimeError):  # the block already ended
            cm.reschedule(loop.time())


class _Guarded:
    """asyncio.Timeout plus the manual timer that expires it (dropped when the block ends)."""

    def __init__(self, cm: asyncio.Timeout, timer: _ManualTimer) -> None:
        self._cm = cm
        self._timer = timer

    async def __aenter__(self) -> asyncio.Timeout:
        return await self._cm.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        await self._cm.__aexit__(exc_type, exc, tb)


# Wall and site time further apart than this is a clock step, not NTP's slewing.
STEP_THRESHOLD_S = 2.0
# Site time follows a smaller difference by running at most 1 % fast or slow: 2 s in 200 s,
# never backwards, and a quota boundary moves by 0.6 s at most within a minute.
SLEW_RATE = 0.01


@dataclass(frozen=True)
class StepStatus:
    """How the wall clock stands against site time, for the ClockStepped alert and /metrics.

    offset_s: wall minus site time, seconds (positive: the wall clock is ahead).
    stepped: the offset is beyond the step threshold, so site time does not follow it.
    steps_total: wall-clock steps seen since start.
    """

    offset_s: float = 0.0
    stepped: bool = False
    steps_total: int = 0


class SiteClock:
    """The daemon's time: `source`'s wall time at start, carried on by its monotonic time.

    A step of the system clock moves time.time() but not time.monotonic(), so site time
    does not jump with it: quotas in force stay in force, and a quota that starts later
    starts when the monotonic seconds say. A difference within STEP_THRESHOLD_S (NTP
    corrections, a small step) is followed by slewing at SLEW_RATE; a larger one is held
    off, reported by status() (the ClockStepped alert, minerd_clock_offset_seconds) and
    logged once, until the wall comes back within the threshold or the daemon restarts,
    which takes the wall time as its new start. Site time never runs backwards.
    Waits are the source's: they are intervals already, which no step changes.
    """

    def __init__(
        self,
        source: Clock,
        step_threshold_s: float = STEP_THRESHOLD_S,
        slew_rate: float = SLEW_RATE,
    ) -> None:
        if not 0.0 <= slew_rate < 1.0:
            raise ValueError(f"slew_rate must be in [0, 1), got {slew_rate}")
        self.source = source
        self.speed = source.speed
        self.step_threshold_s = step_threshold_s
        self.slew_rate = slew_rate
        self._lock = threading.Lock()  # storage and API threads read time too
        self._mono_s = source.monotonic_s()
        self._site_s = source.now_s()
        self._offset_s = 0.0
        self._stepped = False
        self._step_ref_s = 0.0  # the offset last reported as a step
        self._steps = 0

    @classmethod
    def wrap(cls, clock: Clock) -> SiteClock:
        """`clock` as site time; a SiteClock already is."""
        return clock if isinstance(clock, SiteClock) else cls(clock)

    def now_s(self) -> float:
        """Site time, unix seconds UTC."""
        with self._lock:
            wall_s = self.source.now_s()
            mono_s = self.source.monotonic_s()
            dt_s = max(0.0, mono_s - self._mono_s)
            self._mono_s = max(self._mono_s, mono_s)
            site_s = self._site_s + dt_s
            offset_s = wall_s - site_s
            if abs(offset_s) <= self.step_threshold_s:
                most_s = self.slew_rate * dt_s
                site_s += min(most_s, max(-most_s, offset_s))
            self._site_s = site_s
            self._offset_s = wall_s - site_s
            self._note(self._offset_s)
            return site_s

    def _note(self, offset_s: float) -> None:
        """Log a step once (and each further step), and the wall's return."""
        threshold = self.step_threshold_s
        if abs(offset_s) > threshold:
            if not self._stepped or abs(offset_s - self._step_ref_s) > threshold:
                self._steps += 1
                log.warning(
                    "system clock stepped: wall time is %+.1f s from site time; minerd keeps "
                    "site time on the monotonic clock (quotas in force stay in force) until "
                    "the wall clock is back within %.1f s or minerd restarts",
                    offset_s,
                    threshold,
                )
            self._stepped, self._step_ref_s = True, offset_s
        elif self._stepped:
            self._stepped, self._step_ref_s = False, 0.0
            log.warning(
                "system clock back within %.1f s of site time (%+.3f s): following it again",
                threshold,
                offset_s,
            )

    def status(self) -> StepStatus:
        """Where the wall clock stands now against site time."""
        self.now_s()
        with self._lock:
            return StepStatus(self._offset_s, self._stepped, self._steps)

    def monotonic_s(self) -> float:
        return self.source.monotonic_s()

    async def sleep(self, seconds: float) -> None:
        await self.source.sleep(seconds)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return self.source.timeout(seconds)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> TimerHandle:
        return self.source.call_later(seconds, callback)


def step_status(clock: Clock) -> StepStatus:
    """The step status of a SiteClock; any other clock cannot step (its time is its own)."""
    return clock.status() if isinstance(clock, SiteClock) else StepStatus()
