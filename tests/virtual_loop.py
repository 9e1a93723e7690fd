"""An event loop on virtual time: time moves only when every task waits for a timer.

For tests of code that waits with asyncio alone (sleep, timeout, wait_for) and touches no
socket, thread or process: the poller's schedule, backoff, timeouts. When nothing is ready,
the loop jumps straight to the next timer instead of sleeping, so an hour of schedule runs in
a moment, and a loaded machine cannot make anything late: lateness measured on this loop is
the scheduler's own arithmetic. A socket read would never see its reply before the timeouts.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

from minerd.clock import SystemClock

T = TypeVar("T")
ORIGIN_S = 1_800_000_000.0


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        if timeout is None:  # no timer at all: only another thread can wake us, really wait
            return super().select(None)  # type: ignore[no-any-return]
        events = super().select(0)
        if not events and timeout > 0 and self.loop is not None:
            self.loop.virtual_s += timeout  # nothing to do before the next timer: go there
        return events  # type: ignore[no-any-return]


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.virtual_s = 0.0
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self

    def time(self) -> float:
        return self.virtual_s


class LoopClock(SystemClock):
    """The daemon's clock read from the running loop: virtual time on a VirtualTimeLoop."""

    def now_s(self) -> float:
        return ORIGIN_S + asyncio.get_running_loop().time()

    def monotonic_s(self) -> float:
        return asyncio.get_running_loop().time()


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to the end on a fresh VirtualTimeLoop."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)
