"""The telemetry spool: line-protocol chunks a time-series sink could not deliver.

Rows are chunks (up to a batch of lines joined by newlines), kept in insertion order and
replayed oldest first. The spool is bounded in points; when full, the lowest class goes
first, oldest first: per-rig points before dispatch and alert events, and those before the
site, meter and compliance points that a grid operator may ask for later.

Commits run at synchronous=NORMAL (`durable=False`): a killed process loses nothing that
was committed, only a power cut may drop the last commits, which costs telemetry, not
safety. All calls are synchronous and short (one transaction each), fine on the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from minerd.errors import StorageError
from minerd.storage.db import Database, Migration

COMPONENT = "telemetry_spool"
_PEEK_ROWS = 1024  # rows read per peek; chunks hold up to a batch each

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            "CREATE TABLE telemetry_spool ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " sink TEXT NOT NULL,"
            " class INTEGER NOT NULL,"
            " points INTEGER NOT NULL,"
            " body BLOB NOT NULL)",
            "CREATE INDEX telemetry_spool_sink ON telemetry_spool(sink, id, points)",
            "CREATE INDEX telemetry_spool_class ON telemetry_spool(sink, class, id)",
        ),
    ),
)


class PointClass(IntEnum):
    """Drop priority in a full spool: the lowest value goes first."""

    RIG = 0  # per-rig points: many, least valuable one by one
    EVENT = 1  # dispatch commands and alerts
    CORE = 2  # site, meter and compliance points


@dataclass(frozen=True)
class SpoolChunk:
    """Newline-joined line protocol (no trailing newline) of one class."""

    point_class: PointClass
    points: int
    body: bytes


@dataclass(frozen=True)
class SpooledBatch:
    """The oldest rows of a sink's spool, ready to send; `ack` it once written."""

    first_id: int
    last_id: int
    points: int
    body: bytes


class TelemetrySpool:
    """One sink's share of the spool table in the minerd database."""

    def __init__(self, db: Database, sink: str, max_points: int) -> None:
        if max_points < 0:
            raise StorageError(f"spool {sink}: max_points must be >= 0, got {max_points}")
        self._db = db
        self.sink = sink
        self.max_points = max_points
        self.dropped_points = 0  # dropped to stay under max_points since this process started
        db.apply_migrations(COMPONENT, MIGRATIONS)
        rows = db.query(
            "SELECT class, COALESCE(SUM(points), 0) FROM telemetry_spool WHERE sink = ? "
            "GROUP BY class",
            (sink,),
            what=f"spool {sink}: count",
        )
        self._by_class = dict.fromkeys(PointClass, 0)
        for r in rows:
            self._by_class[PointClass(int(r[0]))] = int(r[1])
        self._points = sum(self._by_class.values())

    # ------------------------------------------------------------ figures

    @property
    def points(self) -> int:
        return self._points

    @property
    def fill_ratio(self) -> float:
        """Spooled points over max_points, 0..1: raise an alert above 0.8. A disabled spool
        (max_points 0) always reads 0; what it drops shows in dropped_points."""
        if self.max_points == 0:
            return 0.0
        return min(1.0, self._points / self.max_points)

    def points_of(self, point_class: PointClass) -> int:
        return self._by_class[point_class]

    # ------------------------------------------------------------ writes

    def append(self, chunks: Sequence[SpoolChunk]) -> int:
        """Store chunks at the tail, in order; make room by dropping the lowest class first.

        Returns the number of points dropped (old ones, or new ones that outrank nothing)."""
        if not chunks:
            return 0
        dropped = 0
        with self._db.transaction(f"spool {self.sink}: append", durable=False) as conn:
            for chunk in chunks:
                if chunk.points <= 0:
                    continue
                need = self._points + chunk.points - self.max_points
                if need > 0:
                    freed = self._make_room(conn, need, chunk.point_class)
                    dropped += freed
                    if self._points + chunk.points > self.max_points:
                        # Only better points are left: this chunk is the one to lose.
                        dropped += chunk.points
                        continue
                conn.execute(
                    "INSERT INTO telemetry_spool(sink, class, points, body) VALUES (?, ?, ?, ?)",
                    (self.sink, int(chunk.point_class), chunk.points, chunk.body),
                )
                self._add(chunk.point_class, chunk.points)
        self.dropped_points += dropped
        return dropped

    def _make_room(self, conn: sqlite3.Connection, need: int, incoming: PointClass) -> int:
        """Delete oldest rows of classes up to `incoming`, lowest class first."""
        freed = 0
        for cls in PointClass:
            if cls > incoming or freed >= need:
                break
            while freed < need and self._by_class[cls] > 0:
                rows = conn.execute(
                    "SELECT id, points FROM telemetry_spool WHERE sink = ? AND class = ? "
                    "ORDER BY id LIMIT 64",
                    (self.sink, int(cls)),
                ).fetchall()
                if not rows:
                    self._by_class[cls] = 0
                    break
                ids: list[int] = []
                for row_id, pts in rows:
                    ids.append(int(row_id))
                    freed += int(pts)
                    self._add(cls, -int(pts))
                    if freed >= need:
                        break
                conn.execute(
                    f"DELETE FROM telemetry_spool WHERE id IN ({','.join('?' * len(ids))})",
                    ids,
                )
        return freed

    def _add(self, cls: PointClass, points: int) -> None:
        self._by_class[cls] += points
        self._points += points

    # ------------------------------------------------------------ replay

    def peek(self, max_points: int) -> SpooledBatch | None:
        """The oldest rows up to about max_points (at least one row), None when empty."""
        if self._points == 0:
            return None
        what = f"spool {self.sink}: read"
        # Sizes first (the index covers them), bodies only for the rows taken.
        heads = self._db.query(
            "SELECT id, points FROM telemetry_spool WHERE sink = ? ORDER BY id LIMIT ?",
            (self.sink, _PEEK_ROWS),
            what=what,
        )
        if not heads:
            return None
        first_id = last_id = int(heads[0][0])
        total = 0
        for row_id, pts in heads:
            if total and total + int(pts) > max_points:
                break
            total += int(pts)
            last_id = int(row_id)
        rows = self._db.query(
            "SELECT points, body FROM telemetry_spool WHERE sink = ? AND id BETWEEN ? AND ? "
            "ORDER BY id",
            (self.sink, first_id, last_id),
            what=what,
        )
        body = b"\n".join(bytes(r[1]) for r in rows)
        return SpooledBatch(first_id, last_id, sum(int(r[0]) for r in rows), body)

    def ack(self, batch: SpooledBatch) -> None:
        """Forget a batch that was written (rows dropped meanwhile are simply gone)."""
        with self._db.transaction(f"spool {self.sink}: ack", durable=False) as conn:
            rows = conn.execute(
                "SELECT class, SUM(points) FROM telemetry_spool "
                "WHERE sink = ? AND id BETWEEN ? AND ? GROUP BY class",
                (self.sink, batch.first_id, batch.last_id),
            ).fetchall()
            conn.execute(
                "DELETE FROM telemetry_spool WHERE sink = ? AND id BETWEEN ? AND ?",
                (self.sink, batch.first_id, batch.last_id),
            )
        for cls, pts in rows:
            self._add(PointClass(int(cls)), -int(pts))
