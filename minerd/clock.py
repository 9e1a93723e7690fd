"""The injected clock. The daemon uses SystemClock; the simulator and tests may run faster."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    # How many clock seconds pass per wall second: real timeouts are clock timeouts / speed.
    speed: float

    def now_s(self) -> float:
        """Wall time, unix seconds UTC."""

    def monotonic_s(self) -> float:
        """Monotonic seconds for intervals and timeouts."""

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of this clock's time."""


class SystemClock:
    speed: float = 1.0

    def now_s(self) -> float:
        return time.time()

    def monotonic_s(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ScaledClock:
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

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """A clock that moves only when told: for table-driven controller tests."""

    speed: float = 1.0

    def __init__(self, start_s: float = 1_800_000_000.0) -> None:
        self._t = start_s
        self._start = start_s

    def now_s(self) -> float:
        return self._t

    def monotonic_s(self) -> float:
        return self._t - self._start

    def advance(self, seconds: float) -> None:
        self._t += seconds

    async def sleep(self, seconds: float) -> None:
        self._t += max(0.0, seconds)
        await asyncio.sleep(0)
