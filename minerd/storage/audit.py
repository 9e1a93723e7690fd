"""Who did what, when: every quota, cap, maintenance and acknowledgement change."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from minerd.errors import StorageError
from minerd.storage.db import Database, Migration

MIGRATIONS = (
    Migration(
        1,
        (
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY,
                at_s REAL NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                subject TEXT NOT NULL,
                detail TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX audit_at ON audit(at_s)",
        ),
    ),
)


@dataclass(frozen=True)
class AuditEntry:
    entry_id: int
    at_s: float
    actor: str  # API token name, "mqtt", "schedule", "system"
    action: str  # "quota.create", "quota.withdraw", "operator_cap.set", "maintenance.on"...
    subject: str  # what the action was about: a quota id, a rig id, ""
    detail: str  # JSON text


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db
        db.apply_migrations("audit", MIGRATIONS)

    def record(
        self, at_s: float, actor: str, action: str, subject: str = "", detail: str = "{}"
    ) -> AuditEntry:
        """Append one entry; detail must be JSON text (it is shown and exported as is)."""
        try:
            json.loads(detail)
        except ValueError as exc:
            raise StorageError(f"audit {action}: detail is not JSON text: {exc}") from exc
        with self._db.transaction("record audit entry") as conn:
            cur = conn.execute(
                "INSERT INTO audit(at_s, actor, action, subject, detail) VALUES (?,?,?,?,?)",
                (at_s, actor, action, subject, detail),
            )
            entry_id = int(cur.lastrowid or 0)
        return AuditEntry(entry_id, at_s, actor, action, subject, detail)

    def query(
        self,
        from_s: float | None = None,
        to_s: float | None = None,
        limit: int = 100,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Entries with from_s <= at_s < to_s (either bound optional), newest first."""
        rows = self._db.query(
            "SELECT id, at_s, actor, action, subject, detail FROM audit "
            "WHERE (? IS NULL OR at_s >= ?) AND (? IS NULL OR at_s < ?) "
            "AND (? IS NULL OR action = ?) ORDER BY at_s DESC, id DESC LIMIT ?",
            (from_s, from_s, to_s, to_s, action, action, limit),
            what="query audit log",
        )
        return [_entry(r) for r in rows]


def _entry(r: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        entry_id=int(r["id"]),
        at_s=float(r["at_s"]),
        actor=r["actor"],
        action=r["action"],
        subject=r["subject"],
        detail=r["detail"],
    )
