"""Executor, directly and table-driven on a ManualClock (issue 14.8): which commands leave
in which order, what is journaled, and how failures, timeouts and newer commands are
handled. The clock is moved by the test; the rigs are in-memory doubles."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from minerd.clock import ManualClock
from minerd.devices.rig import command_limit_s
from minerd.errors import DeviceUnreachable
from minerd.model import RigAction, RigCommand, RigReading
from minerd.runtime.executor import CommandRoute, Executor, ShedGate

SLEEP, WAKE = RigAction.SLEEP, RigAction.WAKE


class FakeJournal:
    def __init__(self) -> None:
        self.intents_log: list[tuple[int, RigCommand, float]] = []
        self.outcomes_log: dict[int, tuple[bool, str]] = {}

    def intents(self, cmds: Sequence[RigCommand], at_s: float) -> list[int]:
        ids = []
        for cmd in cmds:
            ids.append(len(self.intents_log) + 1)
            self.intents_log.append((ids[-1], cmd, at_s))
        return ids

    def outcomes(self, results: Sequence[tuple[int, bool, str]], at_s: float) -> None:
        for journal_id, ok, error in results:
            self.outcomes_log[journal_id] = (ok, error)


@dataclass
class FakeRig:
    """Answers each command with the next behaviour: "ok", "fail", "hang", "slow" (after 2 s)
    or "bug" (a driver bug: an exception that is not a DeviceError)."""

    rig_id: str
    sent: list[tuple[RigCommand, float]]  # shared by all rigs: the order commands left in
    clock: ManualClock
    behaviours: list[str] = field(default_factory=list)

    async def read(self, now_s: float) -> RigReading:
        raise NotImplementedError

    async def apply(self, cmd: RigCommand) -> None:
        self.sent.append((cmd, self.clock.now_s()))
        what = self.behaviours.pop(0) if self.behaviours else "ok"
        if what == "fail":
            raise DeviceUnreachable(self.rig_id, "127.0.0.1:4028", "connection refused")
        if what == "hang":
            await asyncio.Event().wait()
        if what == "slow":  # answers once the test has moved the clock 2 s
            answered = asyncio.Event()
            self.clock.call_later(2.0, answered.set)
            await answered.wait()
        if what == "bug":
            raise RuntimeError("driver bug: unpacked the reply wrong")


@dataclass
class Bench:
    clock: ManualClock
    journal: FakeJournal
    sent: list[tuple[RigCommand, float]]
    rigs: dict[str, FakeRig]
    executor: Executor
    failed: list[tuple[str, str]]

    async def settle(self) -> None:
        """Let every worker run until nothing changes (no real time needed)."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.settle()

    def actions(self) -> list[tuple[str, RigAction]]:
        return [(c.rig_id, c.action) for c, _ in self.sent]


@asynccontextmanager
async def bench(
    behaviours: dict[str, list[str]] | None = None,
    *,
    concurrency: int = 1,
    raise_rate_per_s: float = 0.0,
    max_attempts: int = 3,
    routes: dict[str, CommandRoute] | None = None,
) -> AsyncIterator[Bench]:
    clock = ManualClock()
    journal = FakeJournal()
    sent: list[tuple[RigCommand, float]] = []
    ids = sorted({"r1", "r2", "r3", *(behaviours or {}), *(routes or {})})
    rigs = {r: FakeRig(r, sent, clock, list((behaviours or {}).get(r, []))) for r in ids}
    failed: list[tuple[str, str]] = []
    executor = Executor(
        rigs,
        journal,
        clock,
        concurrency=concurrency,
        raise_rate_per_s=raise_rate_per_s,
        max_attempts=max_attempts,
        timeout_s=5.0,
        routes=routes,
        on_failed=lambda cmd, error: failed.append((cmd.rig_id, error)),
    )
    task = asyncio.create_task(executor.run())
    try:
        b = Bench(clock, journal, sent, rigs, executor, failed)
        await b.settle()
        yield b
        assert not task.done(), "the executor must outlive every command's failure"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def cmd(rig: str, action: RigAction) -> RigCommand:
    return RigCommand(rig, action)


@pytest.mark.asyncio
async def test_shedding_leaves_first_and_intents_are_journaled_before_sending() -> None:
    async with bench() as b:
        b.executor.submit(shed=[cmd("r3", SLEEP)], raise_=[cmd("r1", WAKE), cmd("r2", WAKE)])
        # Journaled at submit, in one go, before any command left.
        assert [(i, c.rig_id) for i, c, _ in b.journal.intents_log] == [
            (1, "r3"),
            (2, "r1"),
            (3, "r2"),
        ]
        await b.settle()
        assert b.actions() == [("r3", SLEEP), ("r1", WAKE), ("r2", WAKE)]
        b.executor.flush_outcomes()
        assert b.journal.outcomes_log == {1: (True, ""), 2: (True, ""), 3: (True, "")}
        assert b.executor.backlog == 0 and not b.executor.shedding


# Raising is staggered by a token bucket on the clock: (advance_s, rigs woken so far).
STAGGER_ROWS = [(0.0, 0), (0.5, 0), (0.5, 1), (0.2, 1), (0.8, 2), (5.0, 3)]


@pytest.mark.asyncio
async def test_raising_is_staggered_by_the_clock_and_shedding_never_waits() -> None:
    async with bench(raise_rate_per_s=1.0) as b:
        b.executor.submit(shed=[], raise_=[cmd(r, WAKE) for r in ("r1", "r2", "r3")])
        woken = []
        for advance_s, _ in STAGGER_ROWS:
            await b.advance(advance_s)
            woken.append(len(b.sent))
        assert woken == [n for _, n in STAGGER_ROWS]

    async with bench(raise_rate_per_s=1.0) as b:
        b.executor.submit(shed=[], raise_=[cmd("r1", WAKE)])
        b.executor.submit(shed=[cmd("r2", SLEEP)], raise_=[])
        await b.settle()  # no token yet for r1, but the shed goes at once
        assert b.actions() == [("r2", SLEEP)]


@pytest.mark.asyncio
async def test_a_newer_command_replaces_one_still_waiting() -> None:
    async with bench(raise_rate_per_s=1.0) as b:
        b.executor.submit(shed=[], raise_=[cmd("r1", WAKE)])
        b.executor.submit(shed=[cmd("r1", SLEEP)], raise_=[])  # before the wake could leave
        await b.advance(5.0)
        assert b.actions() == [("r1", SLEEP)]
        assert b.executor.stats.superseded == 1
        b.executor.flush_outcomes()
        assert b.journal.outcomes_log == {1: (False, "superseded"), 2: (True, "")}


@dataclass(frozen=True)
class FailRow:
    name: str
    behaviours: list[str]
    max_attempts: int
    sends: int  # commands that left, retries included
    ok: bool
    error: Callable[[str], bool]  # on the journaled outcome
    first_failure_reported: bool


FAIL_ROWS = [
    FailRow("ok", [], 3, 1, True, lambda e: e == "", False),
    FailRow("fails-once", ["fail"], 3, 2, True, lambda e: e == "", True),
    FailRow("fails-always", ["fail"] * 3, 3, 3, False, lambda e: "connection refused" in e, True),
    FailRow("one-attempt", ["fail"], 1, 1, False, lambda e: "r1 at 127.0.0.1:4028" in e, True),
    FailRow(
        "hangs",
        ["hang", "hang"],
        2,
        2,
        False,
        lambda e: "r1: no answer to sleep within 5s" in e,
        True,
    ),
    # A driver bug is that rig's failure, journaled with what was raised, never the executor's.
    FailRow("driver-bug", ["bug"] * 3, 3, 3, False, lambda e: "RuntimeError" in e, True),
    FailRow("bug-then-ok", ["bug"], 3, 2, True, lambda e: e == "", True),
]


@pytest.mark.parametrize("row", FAIL_ROWS, ids=lambda r: r.name)
@pytest.mark.asyncio
async def test_failures_are_retried_with_backoff_on_the_clock(row: FailRow) -> None:
    async with bench({"r1": list(row.behaviours)}, max_attempts=row.max_attempts) as b:
        b.executor.submit(shed=[cmd("r1", SLEEP)], raise_=[])
        for _ in range(row.max_attempts):
            await b.settle()
            await b.advance(5.0)  # past the command timeout
            await b.advance(10.0)  # past the longest retry backoff (0.5 s doubling, capped)
        assert len(b.sent) == row.sends
        b.executor.flush_outcomes()
        ok, error = b.journal.outcomes_log[1]
        assert ok is row.ok and row.error(error), error
        # The first failure already reports the rig: it is counted at nominal from then on.
        assert bool(b.failed) is row.first_failure_reported
        if b.failed:
            assert b.failed[0][0] == "r1"
        stats = b.executor.stats
        assert (stats.ok, stats.failed) == ((1, 0) if row.ok else (0, 1))
        assert stats.retried == row.sends - 1
        # Each retry left only once its backoff had passed on the clock.
        times = [t for _, t in b.sent]
        assert times == sorted(times) and len(set(times)) == len(times)


@pytest.mark.asyncio
async def test_a_driver_bug_fails_that_rig_only_and_warns_once_per_rig(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="minerd.executor")
    async with bench({"r1": ["bug"] * 6}, max_attempts=3) as b:
        b.executor.submit(shed=[cmd("r1", SLEEP), cmd("r2", SLEEP)], raise_=[])
        b.executor.submit(shed=[cmd("r3", SLEEP)], raise_=[])
        for _ in range(3):
            await b.advance(10.0)  # past every retry backoff
        # The others' sheds went out; r1 failed, was reported (counted at nominal) and
        # journaled as failed naming the rig; the executor lives on (bench checks it).
        assert {("r2", SLEEP), ("r3", SLEEP)} <= set(b.actions())
        assert b.actions().count(("r1", SLEEP)) == 3
        assert b.failed and all(rig == "r1" for rig, _ in b.failed)
        assert "r1" in b.failed[0][1] and "RuntimeError" in b.failed[0][1]
        b.executor.flush_outcomes()
        ok, error = b.journal.outcomes_log[1]
        assert not ok and "driver error" in error
        assert b.journal.outcomes_log[2] == (True, "") and b.journal.outcomes_log[3] == (True, "")
        assert (b.executor.stats.failed, b.executor.stats.ok) == (1, 2)
        # A second command to the same broken rig: still no new WARNING.
        b.executor.submit(shed=[], raise_=[cmd("r1", WAKE)])
        for _ in range(3):
            await b.advance(10.0)
        assert b.actions().count(("r1", WAKE)) == 3
    r1 = [r for r in caplog.records if "r1" in r.getMessage()]
    warnings = [r for r in r1 if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].exc_info is not None  # the first one carries the traceback
    debug_tracebacks = [r for r in r1 if r.levelno == logging.DEBUG and r.exc_info]
    assert len(debug_tracebacks) == 5  # every later bug still shows its traceback at DEBUG


@pytest.mark.asyncio
async def test_a_cancelled_apply_is_not_taken_for_a_driver_bug() -> None:
    """CancelledError is no failure of the rig: it ends the executor, as a cancel must."""
    async with bench({"r1": ["hang"]}) as b:
        b.executor.submit(shed=[cmd("r1", SLEEP)], raise_=[])
        await b.settle()
    assert not b.failed and b.executor.stats.failed == 0


# The daemon's rule: a rig's outer command limit comes from its family's command timeout.
STOCK_LIMIT_S = command_limit_s(40.0, 3.0)  # stock set_miner_conf: answers after ~21 s
LUXOS_LIMIT_S = command_limit_s(5.0, 3.0)


def test_the_outer_limit_is_never_shorter_than_the_drivers_own() -> None:
    # A stock command that answers at 21 s (or a driver that chains its exchanges, each
    # under the family's own limit) is never cut by the executor.
    assert STOCK_LIMIT_S > 40.0 + 2.0
    assert command_limit_s(3.0, 10.0) > 10.0  # a read limit above the command one counts
    assert LUXOS_LIMIT_S < STOCK_LIMIT_S


@pytest.mark.parametrize("concurrency", [1, 2, 4, 64])
@pytest.mark.asyncio
async def test_slow_stock_rigs_never_hold_up_a_luxos_shed(concurrency: int) -> None:
    stock = [f"s{n}" for n in range(concurrency + 2)]  # more hung rigs than workers
    routes = {s: CommandRoute("127.0.0.1:80", STOCK_LIMIT_S) for s in stock}
    routes["lux"] = CommandRoute("127.0.0.1:4028", LUXOS_LIMIT_S)
    async with bench(
        {s: ["hang"] for s in stock}, concurrency=concurrency, routes=routes, max_attempts=1
    ) as b:
        b.executor.submit(shed=[cmd(s, SLEEP) for s in stock], raise_=[])
        await b.settle()
        b.executor.submit(shed=[cmd("lux", SLEEP)], raise_=[])
        await b.settle()
        # At once, on the clock: no worker had to give up on a stock rig first.
        assert ("lux", SLEEP) in b.actions()
        assert [t for c, t in b.sent if c.rig_id == "lux"] == [b.clock.now_s()]
        # The stock rigs keep their own (long) limit: not cut at the default 5 s.
        await b.advance(STOCK_LIMIT_S - 1.0)
        assert not b.failed
        for _ in range(len(stock)):  # each hung rig's limit, one after the other at worst
            await b.advance(STOCK_LIMIT_S)
        assert {rig for rig, _ in b.failed} == set(stock)
        assert all(f"within {STOCK_LIMIT_S:g}s" in e for _, e in b.failed)


@pytest.mark.parametrize("concurrency", [1, 2, 4, 64])
@pytest.mark.asyncio
async def test_doubtful_sheds_never_hold_up_a_shed_to_a_rig_that_answers(
    concurrency: int,
) -> None:
    """Sheds to unresponsive rigs (control.overload) take the slow lane even when their
    family is as fast as the rest: more hung ones than workers, and the next shed to a rig
    that answers still leaves at once."""
    hung = [f"h{n}" for n in range(concurrency + 2)]
    routes = {r: CommandRoute("127.0.0.1:4028", LUXOS_LIMIT_S) for r in [*hung, "lux"]}
    async with bench(
        {r: ["hang"] for r in hung}, concurrency=concurrency, routes=routes, max_attempts=1
    ) as b:
        b.executor.submit([], [], [cmd(r, SLEEP) for r in hung])
        await b.settle()
        assert len(b.journal.intents_log) == len(hung)  # journaled before any send
        b.executor.submit(shed=[cmd("lux", SLEEP)], raise_=[])
        await b.settle()
        assert [t for c, t in b.sent if c.rig_id == "lux"] == [b.clock.now_s()]
        for _ in range(len(hung)):  # every doubtful shed is still sent, in its turn
            await b.advance(LUXOS_LIMIT_S)
        assert {rig for rig, _ in b.failed} == set(hung)


@pytest.mark.asyncio
async def test_one_rig_has_one_command_in_flight() -> None:
    """A newer command for a rig still answering waits in the queue, not in a worker."""
    routes = {"s1": CommandRoute("127.0.0.1:80", STOCK_LIMIT_S)}
    async with bench({"s1": ["hang"]}, concurrency=4, routes=routes, max_attempts=1) as b:
        b.executor.submit(shed=[cmd("s1", SLEEP)], raise_=[])
        await b.settle()
        for _ in range(5):  # the controller changes its mind every cycle
            b.executor.submit(shed=[], raise_=[cmd("s1", WAKE)])
            b.executor.submit(shed=[cmd("s1", SLEEP)], raise_=[])
            await b.advance(1.0)
        assert b.actions() == [("s1", SLEEP)]
        b.executor.submit(shed=[cmd("r1", SLEEP)], raise_=[])
        await b.settle()
        assert ("r1", SLEEP) in b.actions()
        await b.advance(STOCK_LIMIT_S)  # the first one times out: the newest one goes
        assert b.actions()[-1] == ("s1", SLEEP) and len(b.actions()) == 3


@pytest.mark.asyncio
async def test_a_swaps_wakes_wait_for_its_sheds_to_fast_rigs_to_answer() -> None:
    """Profile cuts paying for a wake: the woken rig draws at once, the cuts only once
    they have landed, so the wake leaves after every cut has had its answer."""
    routes = {r: CommandRoute("127.0.0.1:4028", LUXOS_LIMIT_S) for r in ("r1", "r2", "r3")}
    async with bench({"r1": ["slow"], "r2": ["slow"]}, concurrency=8, routes=routes) as b:
        gate = ShedGate()
        b.executor.submit(shed=[cmd("r1", SLEEP), cmd("r2", SLEEP)], raise_=(), gate=gate)
        b.executor.submit(shed=(), raise_=[cmd("r3", WAKE)], gate=gate)  # a later batch
        await b.settle()
        assert b.actions() == [("r1", SLEEP), ("r2", SLEEP)]  # workers free, the wake waits
        await b.advance(1.0)
        assert ("r3", WAKE) not in b.actions()
        await b.advance(1.0)  # both sheds answered
        assert b.actions()[-1] == ("r3", WAKE)
        assert [t for c, t in b.sent if c.rig_id == "r3"] == [b.clock.now_s()]


@pytest.mark.asyncio
async def test_a_gate_holds_through_a_sheds_retries_and_raises_without_one_never_wait() -> None:
    routes = {r: CommandRoute("127.0.0.1:4028", LUXOS_LIMIT_S) for r in ("r1", "r2", "r3")}
    async with bench({"r1": ["slow"], "r2": ["fail", "ok"]}, concurrency=8, routes=routes) as b:
        b.executor.submit(shed=[cmd("r1", SLEEP)], raise_=[cmd("r3", WAKE)])  # no gate
        await b.settle()
        assert b.actions() == [("r1", SLEEP), ("r3", WAKE)]
        await b.advance(2.0)
        b.executor.submit(shed=[cmd("r2", SLEEP)], raise_=[cmd("r1", WAKE)], gate=ShedGate())
        await b.settle()  # r2's shed failed (a LuxOS session refused): it lands on a retry
        assert b.actions()[-1] == ("r2", SLEEP) and [r for r, _ in b.failed] == ["r2"]
        await b.advance(2.0)  # the retry obeys: now the wake goes
        assert b.actions()[-2:] == [("r2", SLEEP), ("r1", WAKE)]


@pytest.mark.asyncio
async def test_a_shed_that_fails_for_good_opens_its_gate() -> None:
    routes = {r: CommandRoute("127.0.0.1:4028", LUXOS_LIMIT_S) for r in ("r1", "r2")}
    async with bench({"r2": ["fail"]}, concurrency=8, routes=routes, max_attempts=1) as b:
        b.executor.submit(shed=[cmd("r2", SLEEP)], raise_=[cmd("r1", WAKE)], gate=ShedGate())
        await b.settle()
        assert b.actions() == [("r2", SLEEP), ("r1", WAKE)]


@pytest.mark.asyncio
async def test_a_gate_with_no_shed_to_a_fast_rig_holds_nothing() -> None:
    routes = {
        "s1": CommandRoute("127.0.0.1:80", STOCK_LIMIT_S),
        "r1": CommandRoute("127.0.0.1:4028", LUXOS_LIMIT_S),
    }
    async with bench({"s1": ["hang"]}, concurrency=4, routes=routes, max_attempts=1) as b:
        b.executor.submit(shed=[cmd("s1", SLEEP)], raise_=[cmd("r1", WAKE)], gate=ShedGate())
        await b.settle()
        assert b.actions() == [("s1", SLEEP), ("r1", WAKE)]  # the slow shed holds no raise
