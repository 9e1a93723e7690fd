"""Schema upgrade at open: the previous release's database keeps its rows, gets a backup first,
and a database from a newer minerd is refused."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from pathlib import Path

import pytest

from minerd.errors import StorageError
from minerd.model import Quota, QuotaSource, RigAction, RigCommand
from minerd.storage import Database, Stores, migrations
from minerd.storage.migrations import SCHEMA_VERSION, Step

PREVIOUS_RELEASE = Path(__file__).parent / "fixtures" / "schema_release_1f8bb88.sql"


def _previous_release_db(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(PREVIOUS_RELEASE.read_text())
    return path


def _user_version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_previous_release_database_upgrades_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = _previous_release_db(tmp_path / "minerd.sqlite")
    assert _user_version(path) == 0
    with Database(path) as db:
        stores = Stores.open(db)
        quota = stores.quotas.get("q-fixture-1")
        assert quota is not None
        assert (quota.limit_kw, quota.issued_by, quota.reference) == (
            400.0,
            "grid-operator",
            "ref-1",
        )
        assert [e.subject for e in stores.audit.query()] == ["q-fixture-1"]
        entry = stores.journal.get(1)
        assert entry is not None and (entry.command.rig_id, entry.ok) == ("rig-001", True)
        assert stores.state.get_float("operator_cap_kw") == 350.0
        assert stores.maintenance.rig_ids() == frozenset({"rig-007"})
        latest = stores.compliance.latest("interval")
        assert latest is not None and latest.avg_import_kw == 380.0
        # the stores work on the upgraded file: new rows next to the old ones
        stores.quotas.add(
            Quota("q-new", 300.0, 1_800_010_000.0, None, QuotaSource.API, 1_800_009_000.0, "ops")
        )
        new_id = stores.journal.intent(RigCommand("rig-002", RigAction.WAKE), 1_800_010_001.0)
        assert new_id == 2
        assert {q.quota_id for q in stores.quotas.all()} == {"q-fixture-1", "q-new"}
        assert db.integrity_check() == ["ok"]
    assert _user_version(path) == SCHEMA_VERSION


def test_upgrade_keeps_a_checked_backup_of_the_old_file_next_to_it(tmp_path: Path) -> None:
    path = _previous_release_db(tmp_path / "minerd.sqlite")
    with Database(path) as db:
        done = migrations.upgrade(db)
    backup = tmp_path / f"minerd.sqlite.pre-v{SCHEMA_VERSION}.bak"
    assert done.backup == backup
    assert (done.from_version, done.to_version) == (0, SCHEMA_VERSION)
    assert backup.stat().st_mode & 0o777 == 0o600
    assert _user_version(backup) == 0
    assert not list(tmp_path.glob("*.bak-*"))  # one self-contained file: no -wal/-shm
    with contextlib.closing(sqlite3.connect(backup)) as conn:
        rows = conn.execute("SELECT quota_id FROM quota").fetchall()
    assert rows == [("q-fixture-1",)]
    # Opened again: nothing to migrate, no second backup.
    with Database(path) as db:
        again = migrations.upgrade(db)
    assert (again.changed, again.backup) == (False, None)
    assert sorted(p.name for p in tmp_path.glob("*.bak")) == [backup.name]


def test_a_new_database_needs_no_backup(tmp_path: Path) -> None:
    with Database(tmp_path / "new.sqlite") as db:
        done = migrations.upgrade(db)
        Stores.open(db)
    assert done.backup is None
    assert _user_version(tmp_path / "new.sqlite") == SCHEMA_VERSION
    assert list(tmp_path.glob("*.bak")) == []


def test_a_database_from_a_newer_minerd_is_refused_untouched(tmp_path: Path) -> None:
    path = _previous_release_db(tmp_path / "minerd.sqlite")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with Database(path) as db, pytest.raises(StorageError) as info:
        Stores.open(db)
    message = str(info.value)
    assert str(path) in message
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this minerd" in message
    assert _user_version(path) == SCHEMA_VERSION + 1
    assert list(tmp_path.glob("*.bak")) == []


def test_a_failing_step_rolls_back_to_the_last_version_and_keeps_the_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _previous_release_db(tmp_path / "minerd.sqlite")

    def broken(db: Database) -> None:
        with db.transaction("half a step") as conn:
            conn.execute("CREATE TABLE half_done (a INTEGER)")
            conn.execute("INSERT INTO no_such_table VALUES (1)")

    steps = (*migrations.STEPS, Step(SCHEMA_VERSION + 1, "broken", broken))
    monkeypatch.setattr(migrations, "STEPS", steps)
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Database(path) as db:
        with pytest.raises(StorageError, match="no_such_table"):
            migrations.upgrade(db)
        tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half_done" not in tables
    assert _user_version(path) == SCHEMA_VERSION  # the steps before the broken one held
    assert (tmp_path / f"minerd.sqlite.pre-v{SCHEMA_VERSION + 1}.bak").is_file()


def test_backup_names_never_overwrite_an_earlier_backup(tmp_path: Path) -> None:
    db_path = tmp_path / "minerd.sqlite"
    first = migrations.backup_path(db_path, 3)
    first.write_bytes(b"older")
    second = migrations.backup_path(db_path, 3)
    assert (first.name, second.name) == ("minerd.sqlite.pre-v3.bak", "minerd.sqlite.pre-v3.2.bak")


def test_a_full_disk_does_not_stop_a_current_schema_from_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The tables are current already, only the stamp is missing: when the backup (or the
    version stamp) cannot be written, the stores still open, and the stamp waits."""
    path = _previous_release_db(tmp_path / "minerd.sqlite")
    # Bring every store's tables to this release's schema, without the file stamp.
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for name, steps in migrations.COMPONENTS.items():
            row = conn.execute(
                "SELECT version FROM schema_version WHERE component = ?", (name,)
            ).fetchone()
            for m in steps[int(row[0]) if row else 0 :]:
                for stmt in m.statements:
                    conn.execute(stmt)
            conn.execute(
                "INSERT OR REPLACE INTO schema_version(component, version) VALUES (?, ?)",
                (name, len(steps)),
            )
        conn.commit()

    def disk_full(db: Database, version: int) -> Path:
        no_space = OSError(errno.ENOSPC, "No space left on device")
        raise StorageError(f"storage {db.path}: backup: {no_space}") from no_space

    monkeypatch.setattr(migrations, "_backup", disk_full)
    with Database(path) as db:
        stores = Stores.open(db)
        assert stores.quotas.get("q-fixture-1") is not None
    assert _user_version(path) == 0
    assert (
        f"schema version {SCHEMA_VERSION} not recorded yet (the tables are current)" in caplog.text
    )
    monkeypatch.undo()
    with Database(path) as db:
        assert migrations.upgrade(db).to_version == SCHEMA_VERSION


def test_a_failed_backup_stops_a_real_schema_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _previous_release_db(tmp_path / "minerd.sqlite")
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE schema_version SET version = 0 WHERE component = 'audit'")
        conn.execute("DROP TABLE audit")

    def disk_full(db: Database, version: int) -> Path:
        no_space = OSError(errno.ENOSPC, "No space left on device")
        raise StorageError(f"storage {db.path}: backup: {no_space}") from no_space

    monkeypatch.setattr(migrations, "_backup", disk_full)
    with Database(path) as db, pytest.raises(StorageError, match="No space left"):
        Stores.open(db)
    assert _user_version(path) == 0
