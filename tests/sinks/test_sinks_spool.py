"""The telemetry spool: order, bounds, drop priority, survival across reopen."""

from __future__ import annotations

from pathlib import Path

from minerd.storage.db import Database
from minerd.storage.spool import PointClass, SpoolChunk, TelemetrySpool


def chunk(cls: PointClass, first: int, n: int) -> SpoolChunk:
    body = "\n".join(f"m v={i}i {i}" for i in range(first, first + n))
    return SpoolChunk(cls, n, body.encode())


def values(body: bytes) -> list[int]:
    return [int(line.split()[-1]) for line in body.decode().split("\n")]


def test_fifo_replay_and_ack(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    spool = TelemetrySpool(db, "influx", 1000)
    spool.append([chunk(PointClass.CORE, 0, 10), chunk(PointClass.RIG, 10, 10)])
    spool.append([chunk(PointClass.EVENT, 20, 5)])
    assert spool.points == 25 and spool.fill_ratio == 0.025
    batch = spool.peek(15)
    assert batch is not None and values(batch.body) == list(range(10))  # whole rows only
    spool.ack(batch)
    batch = spool.peek(1000)
    assert batch is not None and values(batch.body) == list(range(10, 25))
    spool.ack(batch)
    assert spool.points == 0 and spool.peek(10) is None


def test_rig_points_dropped_first_oldest_first(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    spool = TelemetrySpool(db, "influx", 100)
    spool.append([chunk(PointClass.RIG, 0, 40), chunk(PointClass.CORE, 40, 20)])
    spool.append([chunk(PointClass.RIG, 60, 40)])
    assert spool.fill_ratio == 1.0
    dropped = spool.append([chunk(PointClass.CORE, 100, 30)])
    assert dropped == 40  # the oldest rig chunk, not the site/meter points
    assert spool.points_of(PointClass.CORE) == 50 and spool.points_of(PointClass.RIG) == 40
    batch = spool.peek(1000)
    assert batch is not None
    assert values(batch.body) == list(range(40, 60)) + list(range(60, 100)) + list(range(100, 130))
    # A rig chunk arriving at a spool full of better points is the one dropped.
    spool.append([chunk(PointClass.CORE, 130, 20)])  # drops the remaining rig chunk
    assert spool.points_of(PointClass.RIG) == 0
    assert spool.append([chunk(PointClass.RIG, 200, 70)]) == 70
    assert spool.points_of(PointClass.RIG) == 0


def test_spool_survives_reopen_and_is_per_sink(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    db = Database(path)
    TelemetrySpool(db, "a", 1000).append([chunk(PointClass.CORE, 0, 7)])
    TelemetrySpool(db, "b", 1000).append([chunk(PointClass.RIG, 7, 3)])
    db.close()
    db = Database(path)
    a = TelemetrySpool(db, "a", 1000)
    assert a.points == 7 and TelemetrySpool(db, "b", 1000).points == 3
    batch = a.peek(100)
    assert batch is not None and values(batch.body) == list(range(7))


def test_zero_max_points_disables_the_spool(tmp_path: Path) -> None:
    spool = TelemetrySpool(Database(tmp_path / "m.db"), "influx", 0)
    assert spool.append([chunk(PointClass.CORE, 0, 5)]) == 5
    assert spool.points == 0 and spool.fill_ratio == 0.0 and spool.dropped_points == 5
