"""Alert state and the notification outbox.

The outbox is at-least-once: a notification is enqueued in the same durable store as the
alert, a channel takes what is due, and marks it sent or failed (retried later). A channel
that is down loses nothing; a restart resends only an item that was sent but not yet
marked (the crash window between the two), and `dedupe_key` stops the rule engine from
enqueueing the same notification twice after a restart.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from minerd.errors import StorageError
from minerd.model import Alert, Severity
from minerd.storage.db import Database, Migration, NotFoundError

MIGRATIONS = (
    Migration(
        1,
        (
            """CREATE TABLE alert (
                alert_id TEXT PRIMARY KEY,
                rule TEXT NOT NULL,
                severity TEXT NOT NULL,
                labels TEXT NOT NULL,
                summary TEXT NOT NULL,
                description TEXT NOT NULL,
                starts_at_s REAL NOT NULL,
                ends_at_s REAL,
                acknowledged_by TEXT,
                acknowledged_at_s REAL,
                extra TEXT NOT NULL
            )""",
            "CREATE INDEX alert_active ON alert(alert_id) WHERE ends_at_s IS NULL",
            "CREATE INDEX alert_starts ON alert(starts_at_s)",
            """CREATE TABLE alert_outbox (
                id INTEGER PRIMARY KEY,
                channel TEXT NOT NULL,
                alert_id TEXT NOT NULL REFERENCES alert(alert_id),
                payload TEXT NOT NULL,
                dedupe_key TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_s REAL NOT NULL,
                sent_at_s REAL,
                last_error TEXT NOT NULL DEFAULT '',
                UNIQUE (channel, dedupe_key)
            )""",
            "CREATE INDEX outbox_due ON alert_outbox(channel, next_attempt_s) "
            "WHERE sent_at_s IS NULL",
        ),
    ),
)

_COLS = (
    "alert_id, rule, severity, labels, summary, description, starts_at_s, ends_at_s, "
    "acknowledged_by, acknowledged_at_s, extra"
)
_OUTBOX_COLS = "id, channel, alert_id, payload, attempts, next_attempt_s, last_error"


@dataclass(frozen=True)
class OutboxItem:
    outbox_id: int
    channel: str
    alert_id: str
    payload_json: str
    attempts: int  # failed attempts so far
    next_attempt_s: float
    last_error: str = ""


class AlertStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        db.apply_migrations("alerts", MIGRATIONS)

    # ------------------------------------------------------------ alerts

    def upsert(self, alert: Alert) -> Alert:
        """Insert or update by alert_id. An acknowledgement already stored is kept when the
        incoming alert carries none (rules do not know about acknowledgements)."""
        with self._db.transaction("upsert alert") as conn:
            conn.execute(
                f"INSERT INTO alert({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(alert_id) DO UPDATE SET rule = excluded.rule, "
                "severity = excluded.severity, labels = excluded.labels, "
                "summary = excluded.summary, description = excluded.description, "
                "starts_at_s = excluded.starts_at_s, ends_at_s = excluded.ends_at_s, "
                "acknowledged_by = coalesce(excluded.acknowledged_by, acknowledged_by), "
                "acknowledged_at_s = coalesce(excluded.acknowledged_at_s, acknowledged_at_s), "
                "extra = excluded.extra",
                (
                    alert.alert_id,
                    alert.rule,
                    alert.severity.value,
                    json.dumps([list(p) for p in alert.labels]),
                    alert.summary,
                    alert.description,
                    alert.starts_at_s,
                    alert.ends_at_s,
                    alert.acknowledged_by,
                    alert.acknowledged_at_s,
                    json.dumps([list(p) for p in alert.extra]),
                ),
            )
            return _alert(
                conn.execute(
                    f"SELECT {_COLS} FROM alert WHERE alert_id = ?", (alert.alert_id,)
                ).fetchone()
            )

    def get(self, alert_id: str) -> Alert | None:
        row = self._db.query_one(
            f"SELECT {_COLS} FROM alert WHERE alert_id = ?", (alert_id,), what="get alert"
        )
        return _alert(row) if row else None

    def active(self) -> list[Alert]:
        rows = self._db.query(
            f"SELECT {_COLS} FROM alert WHERE ends_at_s IS NULL ORDER BY starts_at_s, alert_id",
            what="active alerts",
        )
        return [_alert(r) for r in rows]

    def history(self, from_s: float, to_s: float, limit: int = 100) -> list[Alert]:
        """Alerts that were firing at some instant of [from_s, to_s), newest start first."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM alert WHERE starts_at_s < ? "
            "AND (ends_at_s IS NULL OR ends_at_s > ?) "
            "ORDER BY starts_at_s DESC, alert_id LIMIT ?",
            (to_s, from_s, limit),
            what="alert history",
        )
        return [_alert(r) for r in rows]

    def acknowledge(self, alert_id: str, by: str, at_s: float) -> Alert:
        """Acknowledge an alert; a second acknowledgement keeps the first. NotFoundError
        if there is no such alert."""
        with self._db.transaction("acknowledge alert") as conn:
            conn.execute(
                "UPDATE alert SET acknowledged_by = ?, acknowledged_at_s = ? "
                "WHERE alert_id = ? AND acknowledged_by IS NULL",
                (by, at_s, alert_id),
            )
            row = conn.execute(
                f"SELECT {_COLS} FROM alert WHERE alert_id = ?", (alert_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError("alert", alert_id)
            return _alert(row)

    # ------------------------------------------------------------ outbox

    def enqueue(
        self,
        channel: str,
        alert_id: str,
        payload_json: str,
        not_before_s: float = 0.0,
        dedupe_key: str | None = None,
    ) -> int:
        """Queue one notification for a channel; returns its outbox id. With a dedupe_key
        already queued on that channel, returns the existing id and queues nothing."""
        try:
            json.loads(payload_json)
        except ValueError as exc:
            raise StorageError(f"outbox {channel}: payload is not JSON text: {exc}") from exc
        with self._db.transaction("enqueue notification") as conn:
            if dedupe_key is not None:
                row = conn.execute(
                    "SELECT id FROM alert_outbox WHERE channel = ? AND dedupe_key = ?",
                    (channel, dedupe_key),
                ).fetchone()
                if row is not None:
                    return int(row[0])
            cur = conn.execute(
                "INSERT INTO alert_outbox(channel, alert_id, payload, dedupe_key, next_attempt_s)"
                " VALUES (?,?,?,?,?)",
                (channel, alert_id, payload_json, dedupe_key, not_before_s),
            )
            return int(cur.lastrowid or 0)

    def due(self, channel: str, now_s: float, limit: int = 100) -> list[OutboxItem]:
        """Unsent items of the channel whose next attempt is due, oldest first."""
        rows = self._db.query(
            f"SELECT {_OUTBOX_COLS} FROM alert_outbox WHERE channel = ? AND sent_at_s IS NULL "
            "AND next_attempt_s <= ? ORDER BY id LIMIT ?",
            (channel, now_s, limit),
            what="due notifications",
        )
        return [_item(r) for r in rows]

    def pending_count(self, channel: str | None = None) -> int:
        row = self._db.query_one(
            "SELECT count(*) FROM alert_outbox WHERE sent_at_s IS NULL "
            "AND (? IS NULL OR channel = ?)",
            (channel, channel),
            what="count pending notifications",
        )
        return int(row[0]) if row else 0

    def mark_sent(self, outbox_id: int, at_s: float = 0.0) -> None:
        with self._db.transaction("mark notification sent") as conn:
            cur = conn.execute(
                "UPDATE alert_outbox SET sent_at_s = ? WHERE id = ?", (at_s, outbox_id)
            )
            if cur.rowcount == 0:
                raise NotFoundError("outbox item", str(outbox_id))

    def mark_failed(self, outbox_id: int, next_attempt_s: float, error: str = "") -> None:
        with self._db.transaction("mark notification failed") as conn:
            cur = conn.execute(
                "UPDATE alert_outbox SET attempts = attempts + 1, next_attempt_s = ?, "
                "last_error = ? WHERE id = ? AND sent_at_s IS NULL",
                (next_attempt_s, error, outbox_id),
            )
            if cur.rowcount == 0:
                exists = conn.execute(
                    "SELECT 1 FROM alert_outbox WHERE id = ?", (outbox_id,)
                ).fetchone()
                if exists is None:
                    raise NotFoundError("outbox item", str(outbox_id))

    def prune_sent(self, before_s: float) -> int:
        """Delete items sent before before_s; returns how many."""
        with self._db.transaction("prune outbox") as conn:
            return conn.execute(
                "DELETE FROM alert_outbox WHERE sent_at_s IS NOT NULL AND sent_at_s < ?",
                (before_s,),
            ).rowcount


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in json.loads(text))


def _alert(r: sqlite3.Row) -> Alert:
    return Alert(
        alert_id=r["alert_id"],
        rule=r["rule"],
        severity=Severity(r["severity"]),
        labels=_pairs(r["labels"]),
        summary=r["summary"],
        description=r["description"],
        starts_at_s=float(r["starts_at_s"]),
        ends_at_s=None if r["ends_at_s"] is None else float(r["ends_at_s"]),
        acknowledged_by=r["acknowledged_by"],
        acknowledged_at_s=None if r["acknowledged_at_s"] is None else float(r["acknowledged_at_s"]),
        extra=_pairs(r["extra"]),
    )


def _item(r: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        outbox_id=int(r["id"]),
        channel=r["channel"],
        alert_id=r["alert_id"],
        payload_json=r["payload"],
        attempts=int(r["attempts"]),
        next_attempt_s=float(r["next_attempt_s"]),
        last_error=r["last_error"],
    )
