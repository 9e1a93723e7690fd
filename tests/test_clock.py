"""The Clock's waits: sleep, timeout and call_later in clock seconds (issue 14.5).

ManualClock timers fire only when the test moves the clock; ScaledClock waits are checked
on a virtual-time loop, so no assertion depends on the machine's speed.
"""

from __future__ import annotations

import asyncio

import pytest
from virtual_loop import run_virtual

from minerd.clock import Clock, ManualClock, ScaledClock, SystemClock, elapsed_s


def test_manual_call_later_fires_in_deadline_order_when_advanced() -> None:
    clock = ManualClock()
    fired: list[str] = []
    clock.call_later(2.0, lambda: fired.append("b"))
    clock.call_later(1.0, lambda: fired.append("a"))
    dropped = clock.call_later(1.5, lambda: fired.append("dropped"))
    clock.call_later(5.0, lambda: fired.append("later"))
    dropped.cancel()
    clock.advance(0.9)
    assert fired == []
    clock.advance(1.1)  # t = 2.0: a deadline equal to now fires
    assert fired == ["a", "b"]
    clock.advance(2.9)
    assert fired == ["a", "b"]
    clock.advance(0.1)
    assert fired == ["a", "b", "later"]


@pytest.mark.asyncio
async def test_manual_timeout_expires_only_when_the_clock_passes_it() -> None:
    clock = ManualClock()
    never = asyncio.Event()

    async def wait() -> str:
        try:
            async with clock.timeout(10.0):
                await never.wait()
        except TimeoutError:
            return f"timed out at {clock.monotonic_s():g}"
        return "woken"

    task = asyncio.create_task(wait())
    for _ in range(5):
        await asyncio.sleep(0)
    clock.advance(9.0)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    clock.advance(1.0)
    assert await task == "timed out at 10"


@pytest.mark.asyncio
async def test_manual_timeout_left_in_time_and_outer_cancel_pass_through() -> None:
    clock = ManualClock()
    async with clock.timeout(1.0):
        await clock.sleep(0.5)
    clock.advance(5.0)  # the expired timer of a finished block does nothing

    started = asyncio.Event()

    async def blocked() -> None:
        async with clock.timeout(60.0):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(blocked())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # a cancellation from outside is not turned into a TimeoutError


@pytest.mark.parametrize("clock", [SystemClock(), ScaledClock(speed=10.0)])
def test_waits_take_clock_seconds(clock: Clock) -> None:
    """On a scaled clock every wait lasts seconds / speed of loop time; callers never divide."""

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        spans: list[float] = []
        t0 = loop.time()
        await clock.sleep(30.0)
        spans.append(loop.time() - t0)

        t0 = loop.time()
        with pytest.raises(TimeoutError):
            async with clock.timeout(20.0):
                await asyncio.Event().wait()
        spans.append(loop.time() - t0)

        t0 = loop.time()
        fired = asyncio.Event()
        clock.call_later(10.0, fired.set)
        await fired.wait()
        spans.append(loop.time() - t0)
        return spans

    spans = run_virtual(scenario())
    assert spans == pytest.approx([30.0 / clock.speed, 20.0 / clock.speed, 10.0 / clock.speed])


def test_timeout_none_never_expires_and_elapsed_follows_the_loop() -> None:
    async def scenario() -> tuple[bool, float]:
        t0 = elapsed_s()
        async with SystemClock().timeout(None):
            await asyncio.sleep(3600.0)
        return True, elapsed_s() - t0

    done, span_s = run_virtual(scenario())
    assert done and span_s == pytest.approx(3600.0)  # virtual seconds: the loop's own time


@pytest.mark.asyncio
async def test_manual_waits_nobody_advances_still_end() -> None:
    """A ManualClock wait ends after its span of real time at the latest: never a hang."""
    clock = ManualClock()
    fired = asyncio.Event()
    clock.call_later(0.01, fired.set)
    await asyncio.wait_for(fired.wait(), 30)
    with pytest.raises(TimeoutError):
        async with clock.timeout(0.01):
            await asyncio.Event().wait()
    assert clock.monotonic_s() == 0.0  # real time passed; the manual clock did not move
