"""Stopping tasks on Python 3.11, where a library can lose a cancel.

On 3.11, asyncio.wait_for returns the awaited result instead of raising CancelledError when
the cancel and the result land in the same loop turn; pymodbus, aiomqtt and nats-py all
await it. The cancel is then lost, but the task still counts it (Task.cancelling()), so:
- a long-running loop calls raise_if_cancelled() once a round and stops at its end;
- an owner stops its tasks with stop_tasks(), which cancels again until they end and names
  the ones that never do, instead of waiting on them forever.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from typing import Any

RECANCEL_EVERY_S = 2.0  # a task gets this long to clean up before it is told again


class TasksDidNotStop(RuntimeError):
    """Tasks still running after stop_tasks() cancelled them for its whole grace time."""


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was told to stop (a cancel a callee lost)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_tasks(
    tasks: Iterable[asyncio.Task[Any]],
    grace_s: float = 10.0,
    recancel_every_s: float = RECANCEL_EVERY_S,
) -> None:
    """Cancel the tasks and wait until they end, cancelling again every recancel_every_s.

    Their own errors are retrieved, not raised (they are stopping). Raises TasksDidNotStop
    naming the tasks still running after grace_s; a cancel of the caller still propagates.
    """
    given = list(tasks)
    pending = {t for t in given if not t.done()}
    finished = [t for t in given if t.done()]
    every_s = max(0.0, min(recancel_every_s, grace_s))
    rounds = max(1, math.ceil(grace_s / every_s)) if every_s > 0 else 1
    for _ in range(rounds):
        if not pending:
            break
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=every_s)
        finished.extend(done)
    for task in finished:
        if not task.cancelled():
            task.exception()  # retrieved: asyncio would log it as never retrieved
    if pending:
        names = ", ".join(sorted(t.get_name() for t in pending))
        raise TasksDidNotStop(f"tasks still running {grace_s:g} s after cancel: {names}")
