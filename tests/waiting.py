"""Waiting for a condition in tests, with a generous bound that is never asserted as a duration.

A test waits for what it needs to see (a count, a state, an event) rather than sleeping a fixed
time and hoping; the bound only turns a hang into a failure that names what never came. The
sync variant counts its polls instead of reading a clock: on a loaded machine it waits longer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(
    pred: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.02
) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not pred():  # noqa: ASYNC110 - a counter or flag of the code under test
                await asyncio.sleep(step_s)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s:g} s: {what}") from None


def wait_until_sync(
    pred: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.05
) -> None:
    for _ in range(max(1, round(timeout_s / step_s))):
        if pred():
            return
        time.sleep(step_s)
    if not pred():
        raise AssertionError(f"not within {timeout_s:g} s: {what}")
