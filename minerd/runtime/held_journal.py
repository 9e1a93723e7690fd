"""The command journal as the executor sees it: it never fails a command.

While the disk refuses writes (full, read-only) commands still go out: their intents wait
in memory under negative ids, and are written with their outcomes once a write works
again. What waits is bounded by the number of rigs: only each rig's newest intent is kept
(the one a restart needs); older ones are counted and named in the log when writing
resumes. Outcomes of intents already on disk wait in a bounded list. While the disk keeps
refusing, catching up is tried at most every RETRY_S: a 50,000-rig backlog is not written
(and rolled back) on the event loop every few hundred milliseconds.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from minerd.errors import StorageError
from minerd.model import RigCommand
from minerd.storage import CommandJournal, NotFoundError
from minerd.storage.journal import HeldEntry

log = logging.getLogger("minerd.executor")

MAX_HELD_OUTCOMES = 100_000
RETRY_S = 2.0


@dataclass
class HeldStats:
    held_intents: int = 0  # intents that went to memory instead of the disk
    dropped_intents: int = 0  # held intents replaced by a newer one for the same rig
    dropped_outcomes: int = 0  # outcomes lost because the wait list was full
    written_late: int = 0  # held intents written once the disk took writes again


class HeldJournal:
    def __init__(self, journal: CommandJournal, monotonic_s: Callable[[], float]) -> None:
        self.journal = journal
        self._mono = monotonic_s
        self._failed_at_s = -math.inf  # when catching up last failed
        self.stats = HeldStats()
        self._ids = itertools.count(-1, -1)
        self._held: dict[str, tuple[int, HeldEntry]] = {}  # rig_id -> (local id, entry)
        self._rig_of: dict[int, str] = {}  # local id -> rig_id, while held
        self._written: dict[int, int] = {}  # local id -> journal id, until its outcome
        self._outcomes: list[tuple[int, bool, str | None, float]] = []  # for journal ids

    @property
    def holding(self) -> int:
        """Intents and outcomes waiting in memory for the disk."""
        return len(self._held) + len(self._outcomes)

    # ------------------------------------------------------------ executor's Journal

    def intents(self, cmds: Sequence[RigCommand], at_s: float) -> list[int]:
        if not self._held and not self._outcomes:
            try:
                return self.journal.intents(cmds, at_s)
            except StorageError as exc:
                self._failed_at_s = self._mono()
                log.debug("intents held in memory: %s", exc)
        elif self.catch_up():
            return self.intents(cmds, at_s)
        return [self._hold(c, at_s) for c in cmds]

    def outcomes(self, results: Sequence[tuple[int, bool, str]], at_s: float) -> None:
        durable: list[tuple[int, bool, str | None, float]] = []
        for journal_id, ok, error in results:
            if journal_id > 0:
                durable.append((journal_id, ok, error, at_s))
            elif journal_id in self._written:
                durable.append((self._written.pop(journal_id), ok, error, at_s))
            else:
                self._settle(journal_id, ok, error, at_s)
        self._outcomes.extend(durable)
        if len(self._outcomes) > MAX_HELD_OUTCOMES:
            drop = len(self._outcomes) - MAX_HELD_OUTCOMES
            self.stats.dropped_outcomes += drop
            del self._outcomes[:drop]
        self.catch_up()

    def catch_up(self) -> bool:
        """Write what waits in memory; True when nothing waits any more."""
        if not self._held and not self._outcomes:
            return True
        if self._mono() - self._failed_at_s < RETRY_S:
            return False
        if not self._write():
            self._failed_at_s = self._mono()
            return False
        return True

    def _write(self) -> bool:
        if self._held:
            entries = sorted(self._held.items(), key=lambda kv: kv[1][0], reverse=True)
            try:
                ids = self.journal.record([e for _, (_, e) in entries])
            except StorageError as exc:
                log.debug("held intents still not written: %s", exc)
                return False
            for (_, (local_id, entry)), journal_id in zip(entries, ids, strict=True):
                del self._rig_of[local_id]
                if entry.outcome_at_s is None:
                    self._written[local_id] = journal_id
            self._held.clear()
            self.stats.written_late += len(ids)
            log.info(
                "command journal written again: %d held intents (%d older ones were not kept)",
                len(ids),
                self.stats.dropped_intents,
            )
        return not self._outcomes or self._write_outcomes()

    # ------------------------------------------------------------ internals

    def _hold(self, cmd: RigCommand, at_s: float) -> int:
        local_id = next(self._ids)
        old = self._held.get(cmd.rig_id)
        if old is not None:
            self.stats.dropped_intents += 1
            del self._rig_of[old[0]]
        self._held[cmd.rig_id] = (local_id, HeldEntry(cmd, at_s))
        self._rig_of[local_id] = cmd.rig_id
        self.stats.held_intents += 1
        return local_id

    def _settle(self, local_id: int, ok: bool, error: str | None, at_s: float) -> None:
        rig_id = self._rig_of.get(local_id)
        if rig_id is None:
            return  # replaced by a newer intent of the same rig: its outcome is moot
        held = self._held[rig_id]
        self._held[rig_id] = (
            local_id,
            replace(held[1], outcome_at_s=at_s, ok=ok, error=error),
        )

    def _write_outcomes(self) -> bool:
        try:
            self.journal.outcomes_timed(self._outcomes)
        except NotFoundError as exc:
            # A row pruned meanwhile: the batch cannot be written as it is; drop it.
            log.warning("command outcomes dropped, a journal row is gone: %s", exc)
        except StorageError as exc:
            log.debug("command outcomes still not written: %s", exc)
            return False
        self._outcomes = []
        return True
