"""Compliance records: per minute and per settlement interval, the evidence for the grid."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Literal

from minerd.model import ComplianceRecord
from minerd.storage.db import Database, Migration

ComplianceKind = Literal["minute", "interval"]

MIGRATIONS = (
    Migration(
        1,
        (
            """CREATE TABLE compliance (
                kind TEXT NOT NULL CHECK (kind IN ('minute', 'interval')),
                interval_start_s REAL NOT NULL,
                interval_s REAL NOT NULL CHECK (interval_s > 0),
                avg_import_kw REAL NOT NULL,
                limit_kw REAL NOT NULL,
                max_excess_kw REAL NOT NULL,
                seconds_over REAL NOT NULL,
                energy_over_kwh REAL NOT NULL,
                samples INTEGER NOT NULL,
                PRIMARY KEY (kind, interval_s, interval_start_s)
            )""",
        ),
    ),
    # Issue 19: mean import / limit per record, and why it stayed under 97 %.
    Migration(
        2,
        (
            "ALTER TABLE compliance ADD COLUMN utilization REAL NOT NULL DEFAULT 0",
            "ALTER TABLE compliance ADD COLUMN under_reason TEXT NOT NULL DEFAULT ''",
        ),
    ),
)

_COLS = (
    "interval_start_s, interval_s, avg_import_kw, limit_kw, max_excess_kw, seconds_over, "
    "energy_over_kwh, samples, utilization, under_reason"
)


class ComplianceStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        db.apply_migrations("compliance", MIGRATIONS)

    def upsert(self, record: ComplianceRecord, kind: ComplianceKind) -> None:
        """Insert or replace the record of (kind, interval_s, interval_start_s)."""
        self.upsert_many((record,), kind)

    def upsert_many(self, records: Iterable[ComplianceRecord], kind: ComplianceKind) -> None:
        with self._db.transaction("upsert compliance") as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO compliance(kind, {_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        kind,
                        r.interval_start_s,
                        r.interval_s,
                        r.avg_import_kw,
                        r.limit_kw,
                        r.max_excess_kw,
                        r.seconds_over,
                        r.energy_over_kwh,
                        r.samples,
                        r.utilization,
                        r.under_reason,
                    )
                    for r in records
                ],
            )

    def query(
        self, from_s: float, to_s: float, interval_s: float, kind: ComplianceKind | None = None
    ) -> list[ComplianceRecord]:
        """Records of that interval length starting in [from_s, to_s), oldest first."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM compliance WHERE interval_s = ? AND interval_start_s >= ? "
            "AND interval_start_s < ? AND (? IS NULL OR kind = ?) "
            "ORDER BY interval_start_s, kind",
            (interval_s, from_s, to_s, kind, kind),
            what="query compliance",
        )
        return [_record(r) for r in rows]

    def latest(self, kind: ComplianceKind) -> ComplianceRecord | None:
        """The newest record of that kind (a restart resumes after it)."""
        row = self._db.query_one(
            f"SELECT {_COLS} FROM compliance WHERE kind = ? ORDER BY interval_start_s DESC LIMIT 1",
            (kind,),
            what="latest compliance",
        )
        return _record(row) if row else None


def _record(r: sqlite3.Row) -> ComplianceRecord:
    return ComplianceRecord(
        interval_start_s=float(r["interval_start_s"]),
        interval_s=float(r["interval_s"]),
        avg_import_kw=float(r["avg_import_kw"]),
        limit_kw=float(r["limit_kw"]),
        max_excess_kw=float(r["max_excess_kw"]),
        seconds_over=float(r["seconds_over"]),
        energy_over_kwh=float(r["energy_over_kwh"]),
        samples=int(r["samples"]),
        under_reason=str(r["under_reason"]),
    )
