"""Stopping tasks when a library loses a cancel (minerd/cancelling.py).

The lost cancel is Python 3.11's own: asyncio.wait_for returns the result when the cancel
and the result land in the same loop turn. The tests build exactly that turn, and run on
virtual time (tests/virtual_loop.py), so the grace and re-cancel waits cost no wall time.
"""

from __future__ import annotations

import asyncio
import gc
import sys

import pytest
from virtual_loop import run_virtual

from minerd.cancelling import TasksDidNotStop, raise_if_cancelled, stop_tasks


async def _reply_and_cancel_in_one_turn(task: asyncio.Task[None], fut: asyncio.Future[int]) -> None:
    fut.set_result(1)  # the reply arrives...
    task.cancel()  # ...and the stop lands in the same turn


def test_a_loop_that_checks_after_each_round_stops_on_a_cancel_wait_for_lost() -> None:
    async def main() -> tuple[int, bool]:
        futures: list[asyncio.Future[int]] = []
        rounds = 0

        async def loop_over_replies() -> None:
            nonlocal rounds
            while True:
                fut = asyncio.get_running_loop().create_future()
                futures.append(fut)
                await asyncio.wait_for(fut, 5.0)  # as pymodbus, aiomqtt and nats-py do
                rounds += 1
                raise_if_cancelled()

        task = asyncio.create_task(loop_over_replies())
        await asyncio.sleep(0)  # the loop now waits for its first reply
        await _reply_and_cancel_in_one_turn(task, futures[0])
        with pytest.raises(asyncio.CancelledError):
            await task
        return rounds, task.cancelled()

    rounds, cancelled = run_virtual(main())
    assert cancelled
    # 3.11 returns the reply (one round counted, the check stops it); 3.12+ raises inside
    # wait_for (no round). Either way the loop never starts a second round.
    assert rounds == (1 if sys.version_info < (3, 12) else 0)


def test_stop_tasks_cancels_again_a_task_that_lost_the_first_cancel() -> None:
    async def main() -> tuple[int, bool]:
        cancels_seen = 0

        async def loses_the_first_cancel() -> None:
            nonlocal cancels_seen
            while True:
                try:
                    await asyncio.sleep(3600.0)
                except asyncio.CancelledError:
                    cancels_seen += 1
                    if cancels_seen == 1:
                        task = asyncio.current_task()
                        assert task is not None
                        task.uncancel()  # as a library that returned a result instead
                        continue
                    raise

        task = asyncio.create_task(loses_the_first_cancel(), name="stubborn")
        await asyncio.sleep(0)
        await stop_tasks([task], grace_s=10.0, recancel_every_s=1.0)
        return cancels_seen, task.cancelled()

    cancels_seen, cancelled = run_virtual(main())
    assert cancels_seen == 2
    assert cancelled


def test_stop_tasks_names_a_task_that_never_stops_instead_of_waiting_forever() -> None:
    async def main() -> str:
        stop = asyncio.Event()

        async def ignores_cancels() -> None:
            while not stop.is_set():
                try:
                    await asyncio.sleep(3600.0)
                except asyncio.CancelledError:
                    continue  # the defect under test: every cancel swallowed

        quick = asyncio.create_task(asyncio.sleep(3600.0), name="quick")
        never = asyncio.create_task(ignores_cancels(), name="sim-mqtt")
        await asyncio.sleep(0)
        try:
            await stop_tasks([quick, never], grace_s=5.0, recancel_every_s=1.0)
        except TasksDidNotStop as exc:
            message = str(exc)
        else:
            message = ""
        assert quick.cancelled() and not never.done()
        stop.set()
        never.cancel()
        await asyncio.wait({never})
        return message

    assert run_virtual(main()) == "tasks still running 5 s after cancel: sim-mqtt"


def test_stop_tasks_retrieves_the_errors_of_the_tasks_it_stops() -> None:
    unretrieved: list[str] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, ctx: unretrieved.append(str(ctx.get("message")))
        )

        async def fails() -> None:
            raise ValueError("broken while stopping")

        async def fails_on_cancel() -> None:
            try:
                await asyncio.sleep(3600.0)
            except asyncio.CancelledError:
                raise RuntimeError("cleanup failed") from None

        early = asyncio.create_task(fails())
        late = asyncio.create_task(fails_on_cancel())
        await asyncio.sleep(0)
        await stop_tasks([early, late])
        assert early.done() and late.done() and not late.cancelled()
        del early, late  # asyncio reports an error never retrieved when its task is freed
        gc.collect()

    run_virtual(main())
    assert unretrieved == []
