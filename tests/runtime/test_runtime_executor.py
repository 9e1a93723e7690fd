"""Executor, directly and table-driven on a ManualClock (issue 14.8): which commands leave
in which order, what is journaled, and how failures, timeouts and newer commands are
handled. The clock is moved by the test; the rigs are in-memory doubles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from minerd.clock import ManualClock
from minerd.errors import DeviceUnreachable
from minerd.model import RigAction, RigCommand, RigReading
from minerd.runtime.executor import Executor

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
    """Answers each command with the next behaviour: "ok", "fail" or "hang"."""

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
) -> AsyncIterator[Bench]:
    clock = ManualClock()
    journal = FakeJournal()
    sent: list[tuple[RigCommand, float]] = []
    ids = ["r1", "r2", "r3"]
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
        on_failed=lambda cmd, error: failed.append((cmd.rig_id, error)),
    )
    task = asyncio.create_task(executor.run())
    try:
        b = Bench(clock, journal, sent, rigs, executor, failed)
        await b.settle()
        yield b
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
    FailRow("hangs", ["hang", "hang"], 2, 2, False, lambda e: "within 5.0s" in e, True),
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
