"""`minerd backup`: an online copy of a database in use, checked, named by its UTC stamp,
0600; old copies pruned by their stamp; `--verify` is the restore test."""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from minerd.cli import backup
from minerd.model import Quota, QuotaSource
from minerd.storage import Database, Stores

AT_S = datetime(2026, 11, 29, 21, 0, 0, tzinfo=UTC).timestamp()
DAY_S = 86400.0
REPO = Path(__file__).parents[2]


def _cli(*argv: str) -> int:
    """`minerd backup ARGS` in process, without the CLI's logging setup."""
    parser = argparse.ArgumentParser(prog="minerd backup")
    backup.add_arguments(parser)
    return backup.run(parser.parse_args(list(argv)))


def _live(tmp_path: Path) -> tuple[Database, Path]:
    """A database held open by its stores, as the running daemon holds it."""
    path = tmp_path / "state" / "minerd.sqlite"
    path.parent.mkdir()
    db = Database(path)
    stores = Stores.open(db)
    stores.quotas.add(Quota("q-1", 400.0, AT_S, None, QuotaSource.API, AT_S, "grid"))
    stores.audit.record(AT_S, "grid", "quota.create", "q-1", "{}")
    return db, path


def test_backup_of_a_live_database_is_a_checked_0600_copy(tmp_path: Path) -> None:
    db, path = _live(tmp_path)
    out = tmp_path / "backups"
    out.mkdir()
    try:
        report = backup.backup(path, out, AT_S)
    finally:
        db.close()
    assert report.path == out / "minerd-20261129T210000Z.sqlite"
    assert report.path.stat().st_mode & 0o777 == 0o600
    assert dict(report.rows)["quota"] == 1 and dict(report.rows)["audit"] == 1
    assert report.schema_version >= 1
    assert sorted(p.name for p in out.iterdir()) == [report.path.name]  # no .partial left
    # The live directory got nothing new from the backup.
    assert sorted(p.name for p in path.parent.iterdir() if "sqlite" not in p.name) == []


def test_prune_deletes_only_our_copies_older_than_keep_days(tmp_path: Path) -> None:
    db_path = tmp_path / "minerd.sqlite"
    names = [backup.backup_name(db_path, AT_S - d * DAY_S) for d in (0, 13, 15, 40)]
    for name in [*names, "minerd-notes.sqlite", "other-20200101T000000Z.sqlite"]:
        (tmp_path / name).write_bytes(b"")
    removed = backup.prune(db_path, tmp_path, 14, AT_S)
    assert sorted(p.name for p in removed) == sorted(names[2:])
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {*names[:2], "minerd-notes.sqlite", "other-20200101T000000Z.sqlite"}


def test_cli_backup_from_config_then_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = _live(tmp_path)
    db.close()
    config = tmp_path / "site.toml"
    config.write_text('[storage]\npath = "state/minerd.sqlite"\n')
    out = tmp_path / "backups"
    out.mkdir()
    code = _cli("-c", str(config), "--dir", str(out), "--keep-days", "14")
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    (copy,) = out.glob("minerd-*.sqlite")
    assert printed[0].startswith(f"backup {copy}: integrity ok, schema v")
    assert _cli("--verify", str(copy)) == 0
    assert capsys.readouterr().out.startswith(f"{copy}: integrity ok")
    assert sorted(p.name for p in out.iterdir()) == [copy.name]  # verify left no -wal/-shm


def test_verify_refuses_a_damaged_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, path = _live(tmp_path)
    db.close()
    damaged = tmp_path / "damaged.sqlite"
    with (
        contextlib.closing(sqlite3.connect(path)) as src,
        contextlib.closing(sqlite3.connect(damaged)) as dest,
    ):
        src.backup(dest)
        dest.execute("PRAGMA journal_mode=DELETE")
    data = bytearray(damaged.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # scribble over the second page
    damaged.write_bytes(bytes(data))
    assert _cli("--verify", str(damaged)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"minerd backup: {damaged}: ")
    missing = tmp_path / "nope.sqlite"
    assert _cli("--verify", str(missing)) == 1
    assert capsys.readouterr().err == f"minerd backup: {missing}: no such database file\n"


def test_minerd_backup_is_a_command(tmp_path: Path) -> None:
    db, path = _live(tmp_path)
    db.close()
    proc = subprocess.run(
        [sys.executable, "-m", "minerd", "backup", "--db", str(path), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"backup {tmp_path}/minerd-")
