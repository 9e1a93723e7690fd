"""Database: open, migrations, WAL, transactions, refusal of foreign or unwritable files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from minerd.errors import StorageError
from minerd.storage import Database, Migration, Stores


def test_storage_migrates_an_empty_file_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "minerd.db"
    db = Database(path)
    Stores.open(db)
    versions = db.schema_versions()
    assert versions == {
        "db": 1,
        "quotas": 1,
        "audit": 1,
        "journal": 1,
        "compliance": 2,
        "state": 1,
        "alerts": 1,
        "telemetry_spool": 1,  # the upgrade at open brings every store, the spool too
        "awards": 1,  # energy awards and settlement (schema v3)
    }
    mode = db.query("PRAGMA journal_mode")[0][0]
    assert mode == "wal"
    assert db.query("PRAGMA synchronous")[0][0] == 2  # FULL
    assert db.query("PRAGMA foreign_keys")[0][0] == 1
    db.close()
    # Migrations are idempotent: a second open changes nothing and fails on nothing.
    db2 = Database(path)
    Stores.open(db2)
    assert db2.schema_versions() == versions
    assert db2.integrity_check() == ["ok"]
    db2.close()


def test_storage_new_migration_step_applies_once(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    v1 = (Migration(1, ("CREATE TABLE t (a INTEGER)",)),)
    v2 = (*v1, Migration(2, ("ALTER TABLE t ADD COLUMN b TEXT",)))
    assert db.apply_migrations("extra", v1) == 1
    assert db.apply_migrations("extra", v2) == 2
    assert db.apply_migrations("extra", v2) == 2  # nothing re-run (ALTER would fail twice)
    cols = [r[1] for r in db.query("PRAGMA table_info(t)")]
    assert cols == ["a", "b"]
    with pytest.raises(StorageError, match="newer than this minerd"):
        db.apply_migrations("extra", v1)
    db.close()


def test_storage_failed_migration_leaves_no_trace(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.db")
    bad = (Migration(1, ("CREATE TABLE ok_table (a INTEGER)", "CREATE TABLE broken (")),)
    with pytest.raises(StorageError, match="migrate extra"):
        db.apply_migrations("extra", bad)
    assert "extra" not in db.schema_versions()
    assert db.query("SELECT name FROM sqlite_master WHERE name = 'ok_table'") == []
    db.close()


def test_storage_refuses_memory_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="file path is required"):
        Database(":memory:")
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match=r"other\.db: not a minerd database"):
        Database(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is a text file, not SQLite at all" * 200)
    with pytest.raises(StorageError, match=r"junk\.db: the file is not an SQLite database"):
        Database(junk)


def test_storage_unwritable_path_error_names_path(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"nowhere.*does not exist"):
        Database(tmp_path / "nowhere" / "minerd.db")
    a_file = tmp_path / "plain"
    a_file.write_text("x")
    with pytest.raises(StorageError, match=r"plain.*not a directory"):
        Database(a_file / "minerd.db")
    with pytest.raises(StorageError, match="not a regular file"):
        Database(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_storage_read_only_file_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    Database(path).close()
    path.chmod(0o444)
    with pytest.raises(StorageError, match="not writable"):
        Database(path)
    ro_dir = tmp_path / "ro"
    ro_dir.mkdir()
    ro_dir.chmod(0o555)
    try:
        with pytest.raises(StorageError, match="is not writable"):
            Database(ro_dir / "minerd.db")
    finally:
        ro_dir.chmod(0o755)


def test_storage_immutable_file_opens_read_only_and_writes_once_writable(tmp_path: Path) -> None:
    # Works as root too: an immutable file refuses writes whatever the uid. The daemon must
    # still start and control (reads work); writes wait until the file is writable again.
    path = tmp_path / "imm.db"
    db = Database(path)
    db.apply_migrations("t", (Migration(1, ("CREATE TABLE t (a INTEGER)",)),))
    db.close()
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i not supported here")
    try:
        db = Database(path, reopen_every_s=0.0)
        assert db.read_only and not db.health.ok
        db.apply_migrations("t", (Migration(1, ("CREATE TABLE t (a INTEGER)",)),))
        assert db.query("SELECT count(*) FROM t")[0][0] == 0
        with (
            pytest.raises(StorageError, match=r"imm\.db: w failed: .*readonly"),
            db.transaction("w") as conn,
        ):
            conn.execute("INSERT INTO t VALUES (1)")
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    with db.transaction("w") as conn:  # opened for writing again
        conn.execute("INSERT INTO t VALUES (2)")
    assert not db.read_only and db.health.ok
    assert db.query("SELECT a FROM t")[0][0] == 2
    db.close()


def test_storage_failed_write_names_file_and_operation(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    db = Database(path)
    db.query("PRAGMA query_only=ON")
    with (
        pytest.raises(StorageError, match=r"q\.db: probe failed: .*readonly"),
        db.transaction("probe") as conn,
    ):
        conn.execute("INSERT INTO schema_version VALUES ('x', 1)")
    db.query("PRAGMA query_only=OFF")
    db.close()


def test_storage_transaction_rolls_back_and_nests(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.db")
    db.apply_migrations("t", (Migration(1, ("CREATE TABLE t (a INTEGER UNIQUE)",)),))
    with pytest.raises(RuntimeError), db.transaction("outer") as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    assert db.query("SELECT count(*) FROM t")[0][0] == 0
    with db.transaction("outer") as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        with (
            pytest.raises(StorageError, match="inner failed: UNIQUE"),
            db.transaction("inner") as c2,
        ):
            c2.execute("INSERT INTO t VALUES (2)")
            c2.execute("INSERT INTO t VALUES (1)")
        conn.execute("INSERT INTO t VALUES (3)")
    assert [r[0] for r in db.query("SELECT a FROM t ORDER BY a")] == [1, 3]
    with db.transaction("fast", durable=False) as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.query("PRAGMA synchronous")[0][0] == 2
    db.close()
    db.close()
    with pytest.raises(StorageError, match="database is closed"):
        db.query("SELECT 1")


def test_storage_threads_share_one_connection(tmp_path: Path) -> None:
    db = Database(tmp_path / "th.db")
    db.apply_migrations("t", (Migration(1, ("CREATE TABLE t (a INTEGER)",)),))
    errors: list[BaseException] = []

    def work(base: int) -> None:
        try:
            for i in range(200):
                with db.transaction("w") as conn:
                    conn.execute("INSERT INTO t VALUES (?)", (base + i,))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.query("SELECT count(DISTINCT a) FROM t")[0][0] == 800
    db.close()
