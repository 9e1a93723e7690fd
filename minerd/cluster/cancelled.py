"""One way for a long-running loop over nats-py calls to stop when it is told to.

nats-py waits for replies with asyncio.wait_for, which on Python 3.11 returns the reply
instead of raising when the task is cancelled as the reply arrives (and its flush swallows
a cancel outright). The cancel is then lost, but the task still counts it (cancelling()),
so a loop that calls raise_if_cancelled() after each round stops at the end of that round
instead of running on past a SIGTERM.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was told to stop (a cancel a callee lost)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
