"""The command journal: intent before a command is sent, outcome after.

After a restart `latest_intent_per_rig()` says what every rig was last told, and entries
without an outcome are commands that may or may not have reached the rig.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from minerd.model import RigAction, RigCommand
from minerd.storage.db import Database, Migration, NotFoundError
from minerd.storage.health import StorageHealth

MIGRATIONS = (
    Migration(
        1,
        (
            """CREATE TABLE command_journal (
                id INTEGER PRIMARY KEY,
                rig_id TEXT NOT NULL,
                action TEXT NOT NULL,
                profile TEXT,
                power_w REAL,
                reason TEXT NOT NULL DEFAULT '',
                intent_at_s REAL NOT NULL,
                outcome_at_s REAL,
                ok INTEGER,
                error TEXT
            )""",
            "CREATE INDEX journal_rig ON command_journal(rig_id, id)",
            "CREATE INDEX journal_intent_at ON command_journal(intent_at_s)",
        ),
    ),
)

_COLS = "id, rig_id, action, profile, power_w, reason, intent_at_s, outcome_at_s, ok, error"
_INSERT = (
    "INSERT INTO command_journal(rig_id, action, profile, power_w, reason, intent_at_s) "
    "VALUES (?,?,?,?,?,?)"
)


@dataclass(frozen=True)
class JournalEntry:
    journal_id: int
    command: RigCommand
    intent_at_s: float
    outcome_at_s: float | None = None  # None: no outcome recorded (sent or not, unknown)
    ok: bool | None = None
    error: str | None = None


@dataclass(frozen=True)
class HeldEntry:
    """An intent (and its outcome, once known) that waited in memory for the disk."""

    command: RigCommand
    intent_at_s: float
    outcome_at_s: float | None = None
    ok: bool | None = None
    error: str | None = None


class CommandJournal:
    def __init__(self, db: Database) -> None:
        self._db = db
        db.apply_migrations("journal", MIGRATIONS)

    @property
    def health(self) -> StorageHealth:
        return self._db.health

    def record(self, entries: Sequence[HeldEntry]) -> list[int]:
        """Write intents held in memory while storage failed, each with its outcome if it
        has one, in one transaction; ids in input order."""
        ids: list[int] = []
        with self._db.transaction("journal held") as conn:
            for e in entries:
                c = e.command
                cur = conn.execute(
                    "INSERT INTO command_journal(rig_id, action, profile, power_w, reason, "
                    "intent_at_s, outcome_at_s, ok, error) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        c.rig_id,
                        c.action.value,
                        c.profile,
                        c.power_w,
                        c.reason,
                        e.intent_at_s,
                        e.outcome_at_s,
                        None if e.ok is None else int(e.ok),
                        e.error,
                    ),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def intent(self, cmd: RigCommand, at_s: float) -> int:
        """Record a command about to be sent; returns its journal id."""
        return self.intents((cmd,), at_s)[0]

    def intents(self, cmds: Sequence[RigCommand], at_s: float) -> list[int]:
        """Record a batch of intents in one transaction (one fsync); ids in input order."""
        ids: list[int] = []
        with self._db.transaction("journal intents") as conn:
            for c in cmds:
                cur = conn.execute(
                    _INSERT, (c.rig_id, c.action.value, c.profile, c.power_w, c.reason, at_s)
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def outcome(self, journal_id: int, ok: bool, error: str | None, at_s: float) -> None:
        self.outcomes(((journal_id, ok, error),), at_s)

    def outcomes(self, results: Iterable[tuple[int, bool, str | None]], at_s: float) -> None:
        """Record (journal_id, ok, error) outcomes in one transaction; an unknown id raises
        NotFoundError and records none of them."""
        with self._db.transaction("journal outcomes") as conn:
            for journal_id, ok, error in results:
                cur = conn.execute(
                    "UPDATE command_journal SET outcome_at_s = ?, ok = ?, error = ? WHERE id = ?",
                    (at_s, int(ok), error, journal_id),
                )
                if cur.rowcount == 0:
                    raise NotFoundError("journal entry", str(journal_id))

    def outcomes_timed(self, results: Iterable[tuple[int, bool, str | None, float]]) -> None:
        """Record (journal_id, ok, error, at_s) outcomes, each at its own time, in one
        transaction; an unknown id raises NotFoundError and records none of them."""
        with self._db.transaction("journal outcomes") as conn:
            for journal_id, ok, error, at_s in results:
                cur = conn.execute(
                    "UPDATE command_journal SET outcome_at_s = ?, ok = ?, error = ? WHERE id = ?",
                    (at_s, int(ok), error, journal_id),
                )
                if cur.rowcount == 0:
                    raise NotFoundError("journal entry", str(journal_id))

    def get(self, journal_id: int) -> JournalEntry | None:
        row = self._db.query_one(
            f"SELECT {_COLS} FROM command_journal WHERE id = ?", (journal_id,), what="journal"
        )
        return _entry(row) if row else None

    def latest_intent_per_rig(self) -> dict[str, JournalEntry]:
        """What every rig was last told (the newest intent per rig, with its outcome)."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM command_journal WHERE id IN "
            "(SELECT max(id) FROM command_journal GROUP BY rig_id)",
            what="latest intent per rig",
        )
        return {r["rig_id"]: _entry(r) for r in rows}

    def latest_switch_per_rig(self) -> dict[str, float]:
        """When every rig was last told to sleep or wake, answered or not: min on/off times
        hold across a restart. Scans the journal: call it once, at start."""
        rows = self._db.query(
            "SELECT rig_id, max(intent_at_s) FROM command_journal "
            "WHERE action IN ('sleep', 'wake') GROUP BY rig_id",
            what="latest switch per rig",
        )
        return {str(r[0]): float(r[1]) for r in rows}

    def recent(self, rig_id: str, limit: int = 20) -> list[JournalEntry]:
        """One rig's newest entries first."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM command_journal WHERE rig_id = ? ORDER BY id DESC LIMIT ?",
            (rig_id, limit),
            what="rig journal",
        )
        return [_entry(r) for r in rows]

    def without_outcome(self, limit: int = 10_000) -> list[JournalEntry]:
        """Intents never given an outcome (the daemon died between intent and outcome)."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM command_journal WHERE outcome_at_s IS NULL ORDER BY id LIMIT ?",
            (limit,),
            what="journal without outcome",
        )
        return [_entry(r) for r in rows]

    def prune(self, before_s: float) -> int:
        """Delete entries whose intent is older than before_s, except each rig's newest
        (restart needs it however old it is). Returns the number of rows deleted. Scans:
        call it through asyncio.to_thread."""
        with self._db.transaction("prune journal") as conn:
            cur = conn.execute(
                "DELETE FROM command_journal WHERE intent_at_s < ? AND id NOT IN "
                "(SELECT max(id) FROM command_journal GROUP BY rig_id)",
                (before_s,),
            )
            return cur.rowcount

    def count(self) -> int:
        row = self._db.query_one("SELECT count(*) FROM command_journal", what="count journal")
        return int(row[0]) if row else 0


def _entry(r: sqlite3.Row) -> JournalEntry:
    return JournalEntry(
        journal_id=int(r["id"]),
        command=RigCommand(
            rig_id=r["rig_id"],
            action=RigAction(r["action"]),
            profile=r["profile"],
            power_w=None if r["power_w"] is None else float(r["power_w"]),
            reason=r["reason"],
        ),
        intent_at_s=float(r["intent_at_s"]),
        outcome_at_s=None if r["outcome_at_s"] is None else float(r["outcome_at_s"]),
        ok=None if r["ok"] is None else bool(r["ok"]),
        error=r["error"],
    )
