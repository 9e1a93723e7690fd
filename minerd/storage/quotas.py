"""Quotas from the grid authority, operators and schedules: durable, idempotent, auditable."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace

from minerd.errors import QuotaError
from minerd.model import Quota, QuotaSource
from minerd.storage.db import Database, Migration, NotFoundError

MIGRATIONS = (
    Migration(
        1,
        (
            """CREATE TABLE quota (
                quota_id TEXT PRIMARY KEY,
                limit_kw REAL NOT NULL CHECK (limit_kw >= 0),
                start_s REAL NOT NULL,
                end_s REAL CHECK (end_s IS NULL OR end_s > start_s),
                source TEXT NOT NULL,
                issued_at_s REAL NOT NULL,
                issued_by TEXT NOT NULL,
                reference TEXT,
                idempotency_key TEXT UNIQUE,
                withdrawn_at_s REAL,
                withdrawn_by TEXT
            )""",
            "CREATE INDEX quota_start ON quota(start_s)",
            "CREATE INDEX quota_reference ON quota(reference) WHERE reference IS NOT NULL",
        ),
    ),
)

_COLS = (
    "quota_id, limit_kw, start_s, end_s, source, issued_at_s, issued_by, reference, withdrawn_at_s"
)


class QuotaConflict(QuotaError):
    """An idempotency key or reference was reused for a different quota (HTTP 409)."""


@dataclass(frozen=True)
class QuotaAdded:
    quota: Quota  # as stored: on a replay, the quota first stored under that key/reference
    created: bool  # False when the request was a replay of one already stored


@dataclass(frozen=True)
class ScheduleReplaced:
    withdrawn: tuple[Quota, ...]  # scheduled quotas the new blocks superseded
    added: tuple[Quota, ...]


class QuotaStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        db.apply_migrations("quotas", MIGRATIONS)

    def add(
        self, quota: Quota, idempotency_key: str | None = None, *, immediate: bool = False
    ) -> QuotaAdded:
        """Store a quota once: the one idempotency rule of minerd.

        A replay (same idempotency key, else same reference, else same quota_id) returns the
        stored quota with created=False, as long as it asks for the same limit_kw, start and
        end; one that asks for another raises QuotaConflict naming the key it reused.
        immediate: the request said "start now", so a replay matches a stored quota that
        also started when issued, whatever the clock says now."""
        with self._db.transaction("add quota") as conn:
            existing = self._replay_of(conn, quota, idempotency_key, immediate)
            if existing is not None:
                return QuotaAdded(existing, created=False)
            _insert(conn, quota, idempotency_key)
        return QuotaAdded(quota, created=True)

    def replay_of(
        self, quota: Quota, idempotency_key: str | None = None, *, immediate: bool = False
    ) -> Quota | None:
        """The stored quota that add() would answer this one with (None: add would store
        it), by the same rule; lets a caller check a new quota before it adds it in the same
        transaction."""
        with self._db.transaction("find quota replay") as conn:
            return self._replay_of(conn, quota, idempotency_key, immediate)

    def find_by_key(self, idempotency_key: str) -> Quota | None:
        row = self._db.query_one(
            f"SELECT {_COLS} FROM quota WHERE idempotency_key = ?",
            (idempotency_key,),
            what="find quota by key",
        )
        return _quota(row) if row else None

    def get(self, quota_id: str) -> Quota | None:
        row = self._db.query_one(
            f"SELECT {_COLS} FROM quota WHERE quota_id = ?", (quota_id,), what="get quota"
        )
        return _quota(row) if row else None

    def withdraw(self, quota_id: str, at_s: float, by: str) -> Quota:
        """Withdraw a quota from at_s on; withdrawing twice keeps the first withdrawal."""
        with self._db.transaction("withdraw quota") as conn:
            conn.execute(
                "UPDATE quota SET withdrawn_at_s = ?, withdrawn_by = ? "
                "WHERE quota_id = ? AND withdrawn_at_s IS NULL",
                (at_s, by, quota_id),
            )
            row = conn.execute(
                f"SELECT {_COLS} FROM quota WHERE quota_id = ?", (quota_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError("quota", quota_id)
            return _quota(row)

    def withdrawn_by(self, quota_id: str) -> str | None:
        row = self._db.query_one(
            "SELECT withdrawn_by FROM quota WHERE quota_id = ?", (quota_id,), what="get quota"
        )
        return None if row is None else row[0]

    def replace_schedule(
        self, blocks: Sequence[Quota], by: str, at_s: float | None = None
    ) -> ScheduleReplaced:
        """Atomically withdraw (at at_s, default the latest issued_at_s of the blocks) every
        SCHEDULE quota still in force that overlaps the span of the new blocks, then insert
        the blocks. If anything fails nothing changes."""
        if not blocks:
            return ScheduleReplaced((), ())
        when = at_s if at_s is not None else max(b.issued_at_s for b in blocks)
        span_from = min(b.start_s for b in blocks)
        ends = [math.inf if b.end_s is None else b.end_s for b in blocks]
        span_to = max(ends)
        with self._db.transaction("replace schedule") as conn:
            rows = conn.execute(
                f"SELECT {_COLS} FROM quota WHERE source = ? AND withdrawn_at_s IS NULL "
                "AND start_s < ? AND (end_s IS NULL OR end_s > ?)",
                (QuotaSource.SCHEDULE.value, span_to, span_from),
            ).fetchall()
            old = [_quota(r) for r in rows]
            conn.executemany(
                "UPDATE quota SET withdrawn_at_s = ?, withdrawn_by = ? WHERE quota_id = ?",
                [(when, by, q.quota_id) for q in old],
            )
            for b in blocks:
                _insert(conn, b, None)
        withdrawn = tuple(replace(q, withdrawn_at_s=when) for q in old)
        return ScheduleReplaced(withdrawn, tuple(blocks))

    def active_at(self, t_s: float) -> list[Quota]:
        """Every quota in force at t_s, oldest issued first (control picks among them)."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM quota WHERE start_s <= ? AND (end_s IS NULL OR end_s > ?) "
            "AND (withdrawn_at_s IS NULL OR withdrawn_at_s > ?) ORDER BY issued_at_s, rowid",
            (t_s, t_s, t_s),
            what="active quotas",
        )
        return [_quota(r) for r in rows]

    def covering(self, from_s: float, to_s: float) -> list[Quota]:
        """Every quota in force at some instant of [from_s, to_s), withdrawn ones included
        if they were still in force then; ordered by start."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM quota WHERE start_s < ? AND (end_s IS NULL OR end_s > ?) "
            "AND (withdrawn_at_s IS NULL OR (withdrawn_at_s > ? AND withdrawn_at_s > start_s))"
            " ORDER BY start_s, issued_at_s, rowid",
            (to_s, from_s, from_s),
            what="quotas covering a span",
        )
        return [_quota(r) for r in rows]

    def all(self) -> list[Quota]:
        rows = self._db.query(
            f"SELECT {_COLS} FROM quota ORDER BY start_s, issued_at_s, rowid", what="all quotas"
        )
        return [_quota(r) for r in rows]

    def _replay_of(
        self, conn: sqlite3.Connection, quota: Quota, key: str | None, immediate: bool
    ) -> Quota | None:
        probes: list[tuple[str, str, str]] = []
        if key is not None:
            probes.append(("idempotency_key", "idempotency_key", key))
        if quota.reference is not None:
            probes.append(("reference", "reference", quota.reference))
        probes.append(("quota_id", "quota_id", quota.quota_id))
        for name, column, value in probes:
            row = conn.execute(
                f"SELECT {_COLS} FROM quota WHERE {column} = ? ORDER BY rowid LIMIT 1", (value,)
            ).fetchone()
            if row is None:
                continue
            stored = _quota(row)
            differs = _first_difference(stored, quota, immediate)
            if differs is not None:
                raise QuotaConflict(
                    name,
                    f"{value!r} was already used for quota {stored.quota_id} with a "
                    f"different {differs}; send a new {name} for a new quota",
                )
            return stored
        return None


def _first_difference(stored: Quota, asked: Quota, immediate: bool) -> str | None:
    """The first of limit_kw, end, start in which a replay differs from the stored quota."""
    if stored.limit_kw != asked.limit_kw:
        return f"limit_kw ({stored.limit_kw:g} kW, not {asked.limit_kw:g} kW)"
    if stored.end_s != asked.end_s:
        return "end"
    if immediate:
        # "now" then and "now" again: the same order, though the clock moved on.
        if stored.start_s > stored.issued_at_s:
            return "start (it was scheduled, not immediate)"
    elif stored.start_s != asked.start_s:
        return "start"
    return None


def _insert(conn: sqlite3.Connection, q: Quota, key: str | None) -> None:
    conn.execute(
        "INSERT INTO quota(quota_id, limit_kw, start_s, end_s, source, issued_at_s, issued_by, "
        "reference, idempotency_key, withdrawn_at_s) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            q.quota_id,
            q.limit_kw,
            q.start_s,
            q.end_s,
            q.source.value,
            q.issued_at_s,
            q.issued_by,
            q.reference,
            key,
            q.withdrawn_at_s,
        ),
    )


def _quota(r: sqlite3.Row) -> Quota:
    return Quota(
        quota_id=r["quota_id"],
        limit_kw=float(r["limit_kw"]),
        start_s=float(r["start_s"]),
        end_s=None if r["end_s"] is None else float(r["end_s"]),
        source=QuotaSource(r["source"]),
        issued_at_s=float(r["issued_at_s"]),
        issued_by=r["issued_by"],
        reference=r["reference"],
        withdrawn_at_s=None if r["withdrawn_at_s"] is None else float(r["withdrawn_at_s"]),
    )
