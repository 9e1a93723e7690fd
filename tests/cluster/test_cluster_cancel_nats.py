"""Loops over nats-py calls stop when cancelled, even as a reply arrives (real nats-server).

nats-py waits for a reply with asyncio.wait_for, which on Python 3.11 returns the reply
instead of raising when its task is cancelled after the reply came but before the task ran
again. The race is built, not waited for: the loop's own connection also subscribes to the
reply inboxes (`_INBOX.>`), so the server sends each reply twice in one write; the copy's
callback cancels the loop's task in the same pass of the event loop as the reply is handed
to the request, which then returns it and the cancel is lost. Without raise_if_cancelled()
the loop runs on (counted in rounds, never timed); with it, it ends within its round.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from servers import ServerProcess

from minerd.cancelling import raise_if_cancelled
from minerd.clock import ManualClock
from minerd.cluster.coordinator import Coordinator, Round
from minerd.cluster.lease import ControllerLease, lease_store
from minerd.cluster.region import lease_token

pytestmark = pytest.mark.timeout(180)

LEADER_TTL_S = 60.0
ROUNDS_AFTER = 5  # rounds a loop may run past its cancel before it counts as not stopping


class Rounds:
    def __init__(self) -> None:
        self.n = 0
        self.at_cancel: int | None = None


ATTEMPTS = 3  # a loop that fails on its own (a request timed out) is a void attempt


async def cancel_at_reply(
    nc: Client, which: int, loop: Callable[[Rounds], Coroutine[Any, Any, None]]
) -> tuple[asyncio.Task[None], Rounds]:
    """Run loop(rounds) and cancel it as its connection's reply number `which` arrives;
    return once it ended or ran ROUNDS_AFTER rounds past the cancel.

    An attempt in which the loop ended with its own error (a request timed out on a loaded
    machine, so there was no reply to cancel at) proves nothing either way: it is run again,
    at most ATTEMPTS times, and the last one is returned, error and all."""
    for _ in range(ATTEMPTS - 1):
        task, rounds = await cancel_at_reply_once(nc, which, loop)
        if not (task.done() and not task.cancelled() and task.exception() is not None):
            return task, rounds
    return await cancel_at_reply_once(nc, which, loop)


async def cancel_at_reply_once(
    nc: Client, which: int, loop: Callable[[Rounds], Coroutine[Any, Any, None]]
) -> tuple[asyncio.Task[None], Rounds]:
    rounds = Rounds()
    replies = 0
    task: asyncio.Task[None] | None = None

    async def on_reply(msg: Msg) -> None:
        nonlocal replies
        replies += 1
        if replies == which and task is not None:
            rounds.at_cancel = rounds.n
            task.cancel()

    sub = await nc.subscribe("_INBOX.>", cb=on_reply)
    await nc.flush()
    task = asyncio.create_task(loop(rounds))
    try:
        while not task.done():
            if rounds.at_cancel is not None and rounds.n > rounds.at_cancel + ROUNDS_AFTER:
                break  # it ignored the cancel
            await asyncio.wait({task}, timeout=0.05)
    finally:
        await sub.unsubscribe()
    return task, rounds


async def stop(task: asyncio.Task[None]) -> None:
    """End a loop that ignored its cancel (a later cancel, off a reply, is heard)."""
    for _ in range(100):
        if task.done():
            return
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    assert task.done()


def assert_stopped(task: asyncio.Task[None], rounds: Rounds) -> None:
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise AssertionError(f"the loop failed on its own in {ATTEMPTS} attempts") from (
            task.exception()
        )
    assert rounds.at_cancel is not None, "the loop made fewer requests than expected"
    assert task.done(), f"still running {rounds.n - rounds.at_cancel} rounds after its cancel"
    assert task.cancelled()
    assert rounds.n <= rounds.at_cancel + 1  # at most the round the cancel landed in


async def echo(nc: Client, subject: str) -> None:
    async def answer(msg: Msg) -> None:
        await msg.respond(b"ok")

    await nc.subscribe(subject, cb=answer)
    await nc.flush()


@pytest.mark.asyncio
async def test_a_request_loses_a_cancel_that_lands_with_its_reply_and_the_helper_stops_it(
    nats_server: ServerProcess,
) -> None:
    subject = f"echo.{uuid.uuid4().hex[:8]}"
    responder, nc = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    try:
        await echo(responder, subject)

        def request_loop(check: bool) -> Callable[[Rounds], Coroutine[Any, Any, None]]:
            async def loop(rounds: Rounds) -> None:
                while True:
                    await nc.request(subject, b"", timeout=10.0)
                    rounds.n += 1
                    if check:
                        raise_if_cancelled()

            return loop

        for which in (1, 2, 5):
            plain, rounds = await cancel_at_reply(nc, which, request_loop(check=False))
            if plain.done() and not plain.cancelled():
                raise AssertionError(f"the plain loop failed in {ATTEMPTS} attempts") from (
                    plain.exception()
                )
            assert not plain.done(), "the race did not lose the cancel: the test proves nothing"
            assert rounds.at_cancel is not None and rounds.n > rounds.at_cancel + ROUNDS_AFTER
            await stop(plain)

            checked, rounds = await cancel_at_reply(nc, which, request_loop(check=True))
            assert_stopped(checked, rounds)
    finally:
        await nc.close()
        await responder.close()


class CountedLease(ControllerLease):
    rounds: Rounds | None = None

    async def tick(self) -> bool:
        held = await super().tick()
        if self.rounds is not None:
            self.rounds.n += 1
        return held


@pytest.mark.asyncio
@pytest.mark.parametrize("which", [1, 2, 3, 7, 20])
async def test_the_lease_loop_stops_when_cancelled_as_a_write_is_answered(
    nats_server: ServerProcess, which: int
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        kv = await lease_store(nc.jetstream(), f"c{uuid.uuid4().hex[:8]}", LEADER_TTL_S)
        lease = CountedLease(kv, "ctl", LEADER_TTL_S, ManualClock())

        async def keep(rounds: Rounds) -> None:
            lease.rounds = rounds
            await lease.keep(interval_s=0.0)

        task, rounds = await cancel_at_reply(nc, which, keep)
        try:
            assert_stopped(task, rounds)
        finally:
            await stop(task)
    finally:
        await nc.close()


class CountedCoordinator(Coordinator):
    rounds: Rounds | None = None

    async def round(self) -> Round | None:
        r = await super().round()
        if self.rounds is not None:
            self.rounds.n += 1
        return r


@pytest.mark.asyncio
@pytest.mark.parametrize("which", [1, 2])
async def test_the_coordinator_loop_stops_when_cancelled_as_its_epoch_is_read(
    nats_server: ServerProcess, which: int
) -> None:
    """A round's requests: the store epoch, read at the start of a term."""
    region = f"r{uuid.uuid4().hex[:8]}"
    clock = ManualClock()
    nc = await nats.connect(nats_server.url)
    try:
        coord = CountedCoordinator(nc, region, "coord-a", 40.0, clock, lease_s=20.0)
        kv = await lease_store(nc.jetstream(), lease_token(region), LEADER_TTL_S)
        coord.lease = ControllerLease(kv, "coord-a", LEADER_TTL_S, clock)
        assert await coord.lease.tick()

        async def run(rounds: Rounds) -> None:
            coord.rounds = rounds
            await coord.run(interval_s=0.0)

        task, rounds = await cancel_at_reply(nc, which, run)
        try:
            assert_stopped(task, rounds)
        finally:
            await stop(task)
        assert coord.store_epoch  # the round read it (the replies were the epoch's)
    finally:
        await nc.close()
