"""The executor: sends rig commands, shedding first, and journals every one.

- Intent is journaled before the command leaves, the outcome after, so a restart knows what
  every rig was told even if the process died mid-dispatch.
- Shedding commands (sleep, lower power) go first and are never rate-limited: shedding is
  never delayed by anything. Raising commands pass a token bucket (staggered start).
- A swap (profile cuts paying for wakes, sent together: IntentBook.diff wakes_with_sheds)
  is submitted with a ShedGate: its raises leave only once every shed to a fast rig then
  waiting or on its way is done (obeyed, failed for good, or replaced). A woken rig starts
  drawing at once; sent beside cuts still queued for their LuxOS sessions, it put a
  1,000-rig site 8.8 kW over its limit. A shed waiting for a retry has not landed either.
  Other raises never wait for sheds here (the IntentBook already holds them).
- A newer command for a rig replaces one still waiting; failures retry with backoff, and
  the first failure already reports the rig, which the controller counts at nominal power
  until a later reading shows it obeys.
- A journal that cannot write (disk full, read-only) never holds a command back: the
  command journal is wrapped in a HeldJournal, which keeps intents in memory meanwhile.
- Each rig's command runs under that rig's own limit (its family's command timeout, see
  devices.rig.command_limit_s). Slow rigs (a limit above the fleet's shortest) may hold at
  most `slow_workers` of the pool, so a quarter of it (at least one worker) is always free
  for fast rigs: a shed to hung stock rigs never holds up a shed to LuxOS rigs. A rig has
  one command in flight at a time: a newer one waits in the queue, not in a worker.
- A driver bug (any exception but a DeviceError) is that rig's failed command, never the
  executor's: a dead worker would end the TaskGroup and the control loop with it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from minerd.clock import Clock
from minerd.devices.rig import driver_fault
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


@dataclass(frozen=True)
class CommandRoute:
    """Where a rig's commands go and how long one may take (devices.rig.command_limit_s)."""

    endpoint: str
    limit_s: float


class ShedGate:
    """The raises of one swap, held until the sheds they wait for are done."""

    def __init__(self) -> None:
        self.sheds_open = 0
        self.waiting: list[str] = []  # rig ids of raises held by this gate

    @property
    def open(self) -> bool:
        return self.sheds_open == 0


@dataclass
class _Pending:
    cmd: RigCommand
    journal_id: int
    shed: bool
    attempt: int = 0
    superseded: bool = False
    slow: bool = False
    gates: list[ShedGate] = field(default_factory=list)  # gates this shed holds shut
    retrying: bool = False  # failed, sent again after a backoff


@dataclass
class ExecutorStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    retried: int = 0
    superseded: int = 0


def pool_lanes(concurrency: int) -> tuple[int, int]:
    """(workers, slow_workers): the pool and how much of it slow rigs may hold; the rest,
    a quarter and at least one, is kept for fast rigs."""
    reserved = max(1, concurrency // 4)
    slow = max(1, concurrency - reserved)
    return reserved + slow, slow


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
        routes: Mapping[str, CommandRoute] | None = None,
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
        self.timeout_s = timeout_s  # for a rig without a route
        self.routes: Mapping[str, CommandRoute] = dict(routes or {})
        self._fast_limit_s = min((r.limit_s for r in self.routes.values()), default=timeout_s)
        self.workers, self.slow_workers = pool_lanes(self.concurrency)
        self.on_sent = on_sent
        self.on_failed = on_failed
        self.stats = ExecutorStats()
        self._pending: dict[str, _Pending] = {}
        # Rig ids waiting, by (shed, slow); stale entries are skipped when taken.
        self._queues: dict[tuple[bool, bool], collections.deque[str]] = {
            k: collections.deque()
            for k in ((True, False), (True, True), (False, False), (False, True))
        }
        self._busy: set[str] = set()  # rigs with a command in flight
        self._flying: dict[str, _Pending] = {}  # sheds on their way, by rig (for gates)
        self._slow_in_flight = 0
        self._warned: set[str] = set()  # rigs whose failure was logged at WARNING
        self._wake = asyncio.Event()
        self._tokens = 0.0
        self._tokens_at_s = 0.0
        self._in_flight = 0
        self._shed_in_flight = 0
        # Outcomes are journaled in batches: intent (the safety record) is already durable.
        self._outcomes: list[tuple[int, bool, str]] = []

    # ------------------------------------------------------------ submit (control cycle)

    def submit(
        self,
        shed: Sequence[RigCommand],
        raise_: Sequence[RigCommand],
        doubtful: Sequence[RigCommand] = (),
        gate: ShedGate | None = None,
    ) -> None:
        """Queue commands; never blocks. Intents are journaled here, before any send.
        doubtful: sheds to rigs that may not answer (control.overload), queued on the slow
        lane whatever their family, so they never hold a worker a shed to a rig that does
        answer needs. gate: a swap's (see the module); its sheds and raises may come in
        several calls, sheds first."""
        cmds = [*shed, *doubtful, *raise_]
        if not cmds:
            return
        now_s = self.clock.now_s()
        ids = self.journal.intents(cmds, now_s)
        superseded: list[tuple[int, bool, str]] = []
        n_shed, n_doubtful = len(shed), len(shed) + len(doubtful)
        gate_shut: bool | None = None
        for i, (cmd, journal_id) in enumerate(zip(cmds, ids, strict=True)):
            is_shed = i < n_doubtful
            old = self._pending.get(cmd.rig_id)
            if old is not None:
                old.superseded = True
                superseded.append((old.journal_id, False, "superseded"))
            slow = n_shed <= i < n_doubtful or self._is_slow(cmd.rig_id)
            p = _Pending(cmd, journal_id, is_shed, slow=slow)
            self._pending[cmd.rig_id] = p
            if old is not None:
                self._release(old)  # never sent: it holds no gate
            if gate is not None and not is_shed and gate_shut is None:
                gate_shut = self._shut(gate)  # once per call: its sheds are queued by now
            if gate is not None and gate_shut:
                gate.waiting.append(cmd.rig_id)
            else:
                self._queue(p).append(cmd.rig_id)
        if superseded:
            # One transaction for all: a 50,000-rig cut must not wait on 50,000 fsyncs.
            self.stats.superseded += len(superseded)
            self.journal.outcomes(superseded, now_s)
        self._wake.set()

    def _shut(self, gate: ShedGate) -> bool:
        """Shut the gate on every shed to a fast rig waiting or on its way (the swap's own
        and any still going from earlier cycles); False: none, the gate is open."""
        holding = [*self._pending.values(), *self._flying.values()]
        for p in holding:
            if p.shed and not p.slow and not p.superseded and gate not in p.gates:
                p.gates.append(gate)
                gate.sheds_open += 1
        return not gate.open

    def _release(self, p: _Pending) -> None:
        """p is done (or never goes): the gates it held may open."""
        gates, p.gates = p.gates, []
        for gate in gates:
            gate.sheds_open -= 1
            if gate.open:
                for rig_id in gate.waiting:
                    newer = self._pending.get(rig_id)
                    if newer is not None and not newer.shed:
                        self._queue(newer).append(rig_id)
                gate.waiting.clear()
                self._wake.set()

    def route(self, rig_id: str) -> CommandRoute:
        route = self.routes.get(rig_id)
        return route if route is not None else CommandRoute("", self.timeout_s)

    @property
    def limits_s(self) -> dict[str, float]:
        """Each routed rig's command limit, for the fail-safe shed."""
        return {rig_id: r.limit_s for rig_id, r in self.routes.items()}

    def _is_slow(self, rig_id: str) -> bool:
        return self.route(rig_id).limit_s > self._fast_limit_s

    def _queue(self, p: _Pending) -> collections.deque[str]:
        return self._queues[(p.shed, p.slow)]

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
                for n in range(self.workers):
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
        # Fast rigs first (they obey first), slow ones while their share of the pool lasts.
        lanes = (False, True) if self._slow_in_flight < self.slow_workers else (False,)
        for slow in lanes:
            queue = self._queues[(True, slow)]
            while queue:
                p = self._takeable(queue.popleft(), True)
                if p is not None:
                    return self._claim(p)
        for slow in lanes:
            queue = self._queues[(False, slow)]
            while queue and self._take_token():
                p = self._takeable(queue.popleft(), False)
                if p is not None:
                    return self._claim(p)
                self._tokens += 1.0  # a stale or waiting entry costs no token
        return None

    def _takeable(self, rig_id: str, shed: bool) -> _Pending | None:
        p = self._pending.get(rig_id)
        if p is None or p.shed is not shed or p.superseded:
            return None  # stale
        if rig_id in self._busy:
            return None  # stays pending; queued again when the rig's command ends
        return p

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
                raising = self._queues[(False, False)] or self._queues[(False, True)]
                wait_s = 1.0 if not raising else 1.0 / max(self.raise_rate_per_s, 1.0)
                try:
                    async with self.clock.timeout(wait_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            rig_id = p.cmd.rig_id
            self._in_flight += 1
            self._shed_in_flight += p.shed
            self._slow_in_flight += p.slow
            self._busy.add(rig_id)
            if p.shed:
                self._flying[rig_id] = p
            try:
                await self._send(p)
            finally:
                self._in_flight -= 1
                self._shed_in_flight -= p.shed
                self._slow_in_flight -= p.slow
                self._busy.discard(rig_id)
                self._flying.pop(rig_id, None)
                if not p.retrying:
                    # Done (ok, failed for good, or moot). A shed that failed lands only on
                    # a retry: until then the wakes it pays for wait.
                    self._release(p)
                newer = self._pending.get(rig_id)
                if newer is not None:  # came while this one was in flight
                    self._queue(newer).append(rig_id)
                    self._wake.set()

    async def _send(self, p: _Pending) -> None:
        cmd = p.cmd
        rig = self.rigs[cmd.rig_id]
        p.attempt += 1
        self.stats.sent += 1
        route = self.route(cmd.rig_id)
        error = ""
        try:
            async with self.clock.timeout(route.limit_s):
                await rig.apply(cmd)
        except TimeoutError:
            where = f"{cmd.rig_id} at {route.endpoint}" if route.endpoint else cmd.rig_id
            error = f"{where}: no answer to {cmd.action} within {route.limit_s:g}s"
        except DeviceError as e:
            error = str(e)
        except Exception as e:  # CancelledError is no Exception: it still ends the worker
            error = str(driver_fault(cmd.rig_id, route.endpoint, e))
            self._log(cmd.rig_id, "driver error on %s to %s", cmd.action, cmd.rig_id, exc=e)
        if not error:
            self._warned.discard(cmd.rig_id)
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
            p.retrying = True
            self.clock.call_later(delay_s, lambda: self._requeue(p))
            return
        self.stats.failed += 1
        self._outcome(p.journal_id, False, error)
        self._log(cmd.rig_id, "command %s to %s failed: %s", cmd.action, cmd.rig_id, error)

    def _log(self, rig_id: str, msg: str, *args: object, exc: Exception | None = None) -> None:
        """Once per rig at WARNING, then at DEBUG until a command to it succeeds."""
        level = logging.DEBUG if rig_id in self._warned else logging.WARNING
        self._warned.add(rig_id)
        log.log(level, msg, *args, exc_info=exc)

    def _requeue(self, p: _Pending) -> None:
        p.retrying = False
        if p.superseded or p.cmd.rig_id in self._pending:
            self._release(p)  # never sent again: it holds no gate
            return  # a newer command took its place meanwhile
        self._pending[p.cmd.rig_id] = p
        self._queue(p).append(p.cmd.rig_id)
        self._wake.set()
