"""The executor: sends rig commands, shedding first, and journals every one.

- Intent is journaled before the command leaves, the outcome after, so a restart knows what
  every rig was told even if the process died mid-dispatch.
- Shedding commands (sleep, lower power) go first and are never rate-limited: shedding is
  never delayed by anything. Raising commands pass a token bucket (staggered start).
- A newer command for a rig replaces one still waiting; failures retry with backoff, and
  the first failure already reports the rig, which the controller counts at nominal power
  until a later reading shows it obeys.
- A journal that cannot write (disk full, read-only) never holds a command back: the
  command journal is wrapped in a HeldJournal, which keeps intents in memory meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from minerd.clock import Clock
from minerd.errors import DeviceError
from minerd.model import RigCommand
from minerd.runtime.backoff import backoff_s
from minerd.runtime.devices import PollableRig
from minerd.runtime.held_journal import HeldJournal
from minerd.storage import CommandJournal

log = logging.getLogger("minerd.executor")

OUTCOME_BATCH = 500
OUTCOME_FLUSH_S = 0.2


class Journal(Protocol):
    def intents(self, cmds: Sequence[RigCommand], at_s: float) -> list[int]: ...

    def outcomes(self, results: Sequence[tuple[int, bool, str]], at_s: float) -> None: ...


@dataclass
class _Pending:
    cmd: RigCommand
    journal_id: int
    shed: bool
    attempt: int = 0
    superseded: bool = False


@dataclass
class ExecutorStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    retried: int = 0
    superseded: int = 0


class Executor:
    def __init__(
        self,
        rigs: Mapping[str, PollableRig],
        journal: Journal,
        clock: Clock,
        concurrency: int = 64,
        raise_rate_per_s: float = 100.0,
        max_attempts: int = 3,
        timeout_s: float = 5.0,
        on_sent: Callable[[RigCommand], None] | None = None,
        on_failed: Callable[[RigCommand, str], None] | None = None,
    ) -> None:
        self.rigs = rigs
        # Storage failures stop at the HeldJournal: control goes on without the disk.
        self.journal: Journal = (
            HeldJournal(journal, clock.monotonic_s)
            if isinstance(journal, CommandJournal)
            else journal
        )
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.raise_rate_per_s = raise_rate_per_s
        self.max_attempts = max(1, max_attempts)
        self.timeout_s = timeout_s
        self.on_sent = on_sent
        self.on_failed = on_failed
        self.stats = ExecutorStats()
        self._pending: dict[str, _Pending] = {}
        self._shed: collections.deque[str] = collections.deque()
        self._raise: collections.deque[str] = collections.deque()
        self._wake = asyncio.Event()
        self._tokens = 0.0
        self._tokens_at_s = 0.0
        self._in_flight = 0
        self._shed_in_flight = 0
        # Outcomes are journaled in batches: intent (the safety record) is already durable.
        self._outcomes: list[tuple[int, bool, str]] = []

    # ------------------------------------------------------------ submit (control cycle)

    def submit(self, shed: Sequence[RigCommand], raise_: Sequence[RigCommand]) -> None:
        """Queue commands; never blocks. Intents are journaled here, before any send."""
        cmds = [*shed, *raise_]
        if not cmds:
            return
        now_s = self.clock.now_s()
        ids = self.journal.intents(cmds, now_s)
        superseded: list[tuple[int, bool, str]] = []
        for i, (cmd, journal_id) in enumerate(zip(cmds, ids, strict=True)):
            is_shed = i < len(shed)
            old = self._pending.get(cmd.rig_id)
            if old is not None:
                old.superseded = True
                superseded.append((old.journal_id, False, "superseded"))
            self._pending[cmd.rig_id] = _Pending(cmd, journal_id, is_shed)
            (self._shed if is_shed else self._raise).append(cmd.rig_id)
        if superseded:
            # One transaction for all: a 50,000-rig cut must not wait on 50,000 fsyncs.
            self.stats.superseded += len(superseded)
            self.journal.outcomes(superseded, now_s)
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    @property
    def shedding(self) -> bool:
        """Shed commands wait or are on their way: their outcome is not known yet."""
        return self._shed_in_flight > 0 or any(p.shed for p in self._pending.values())

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._flusher(), name="executor-journal")
                for n in range(self.concurrency):
                    tg.create_task(self._worker(), name=f"executor-{n}")
        finally:
            self.flush_outcomes()

    def flush_outcomes(self) -> None:
        if self._outcomes:
            batch, self._outcomes = self._outcomes, []
            self.journal.outcomes(batch, self.clock.now_s())

    def _outcome(self, journal_id: int, ok: bool, error: str) -> None:
        self._outcomes.append((journal_id, ok, error))
        if len(self._outcomes) >= OUTCOME_BATCH:
            self.flush_outcomes()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(OUTCOME_FLUSH_S)
            self.flush_outcomes()
            if isinstance(self.journal, HeldJournal) and self.journal.holding:
                self.journal.catch_up()  # the disk may take writes again

    def _take(self) -> _Pending | None:
        while self._shed:
            p = self._pending.get(self._shed.popleft())
            if p is not None and p.shed and not p.superseded:
                return self._claim(p)
        while self._raise and self._take_token():
            p = self._pending.get(self._raise.popleft())
            if p is not None and not p.shed and not p.superseded:
                return self._claim(p)
            self._tokens += 1.0  # a stale entry costs no token
        return None

    def _claim(self, p: _Pending) -> _Pending:
        del self._pending[p.cmd.rig_id]
        return p

    def _take_token(self) -> bool:
        if self.raise_rate_per_s <= 0:
            return True
        now = self.clock.monotonic_s()
        burst = max(1.0, self.raise_rate_per_s)
        self._tokens = min(burst, self._tokens + (now - self._tokens_at_s) * self.raise_rate_per_s)
        self._tokens_at_s = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def _worker(self) -> None:
        while True:
            p = self._take()
            if p is None:
                self._wake.clear()
                wait_s = 1.0 if not self._raise else 1.0 / max(self.raise_rate_per_s, 1.0)
                try:
                    async with self.clock.timeout(wait_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            self._in_flight += 1
            self._shed_in_flight += p.shed
            try:
                await self._send(p)
            finally:
                self._in_flight -= 1
                self._shed_in_flight -= p.shed

    async def _send(self, p: _Pending) -> None:
        cmd = p.cmd
        rig = self.rigs[cmd.rig_id]
        p.attempt += 1
        self.stats.sent += 1
        error = ""
        try:
            async with self.clock.timeout(self.timeout_s):
                await rig.apply(cmd)
        except TimeoutError:
            error = f"no answer to {cmd.action} within {self.timeout_s}s"
        except DeviceError as e:
            error = str(e)
        if not error:
            self.stats.ok += 1
            self._outcome(p.journal_id, True, "")
            if self.on_sent is not None:
                self.on_sent(cmd)
            return
        if cmd.rig_id in self._pending:  # a newer command waits: this one is moot
            self.stats.superseded += 1
            self._outcome(p.journal_id, False, f"superseded after: {error}")
            return
        if self.on_failed is not None:
            # Count it at nominal from the first failure, not after the last retry: until
            # it obeys, the planner must shed other rigs instead.
            self.on_failed(cmd, error)
        if p.attempt < self.max_attempts:
            self.stats.retried += 1
            delay_s = backoff_s(p.attempt, 0.5, 10.0)
            log.debug("retrying %s for %s in %.1fs: %s", cmd.action, cmd.rig_id, delay_s, error)
            self.clock.call_later(delay_s, lambda: self._requeue(p))
            return
        self.stats.failed += 1
        self._outcome(p.journal_id, False, error)
        log.warning("command %s to %s failed: %s", cmd.action, cmd.rig_id, error)

    def _requeue(self, p: _Pending) -> None:
        if p.superseded or p.cmd.rig_id in self._pending:
            return  # a newer command took its place meanwhile
        self._pending[p.cmd.rig_id] = p
        (self._shed if p.shed else self._raise).append(p.cmd.rig_id)
        self._wake.set()
