"""`minerd backup`: a consistent copy of the live database, checked, and old copies pruned.

The copy uses SQLite's online backup API through a read-only connection, so it runs beside
the daemon (WAL: readers never block it) and never writes to the database or creates files
next to it. Each copy is written under a temporary name, checked (PRAGMA integrity_check),
and only then renamed to <db-stem>-<UTC stamp>.sqlite, mode 0600 (it holds LuxOS session
ids). `--verify FILE` runs the same check on any copy: the restore test of the runbook.
Exit status: 0 ok, 2 on a usage or config error, 1 when the copy or its check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import tomllib
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from minerd.clock import system_clock

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_COUNTED = ("quota", "award", "compliance", "settlement", "audit", "command_journal")
DEFAULT_DB = "minerd.sqlite"  # StorageSettings.path's default


class BackupError(Exception):
    """The copy or its check failed; the message names the file."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    schema_version: int
    rows: tuple[tuple[str, int], ...]  # (table, row count) of the tables that exist
    size_bytes: int

    def line(self) -> str:
        counts = ", ".join(f"{n} {table}" for table, n in self.rows)
        size_mb = self.size_bytes / 1e6
        return (
            f"{self.path}: integrity ok, schema v{self.schema_version}, {counts}, {size_mb:.1f} MB"
        )


def _open_read_only(path: Path, *, quiet: bool = False) -> sqlite3.Connection:
    """Read-only, with locking (a live database); if that fails and there is no -wal (closed
    cleanly), or when `quiet` and there is no -wal (a copy at rest), immutable: no -wal or
    -shm is then created next to the file."""
    if not path.is_file():
        raise BackupError(f"{path}: no such database file")
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    if quiet and not path.with_name(path.name + "-wal").exists():
        return sqlite3.connect(uri + "&immutable=1", uri=True)
    try:
        conn = sqlite3.connect(uri, uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.Error as exc:
        if path.with_name(path.name + "-wal").exists():
            raise BackupError(f"{path}: cannot open read-only: {exc}") from exc
    return sqlite3.connect(uri + "&immutable=1", uri=True)


def verify(path: Path) -> BackupReport:
    """Integrity check, schema version and row counts of a database file."""
    try:
        with contextlib.closing(_open_read_only(path, quiet=True)) as conn:
            problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupError(f"{path}: integrity check failed: {'; '.join(problems[:5])}")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
            rows = tuple(
                (t, int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]))
                for t in _COUNTED
                if t in tables
            )
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: not a readable SQLite database: {exc}") from exc
    return BackupReport(path, version, rows, path.stat().st_size)


def backup_name(db_path: Path, at_s: float) -> str:
    stamp = datetime.fromtimestamp(at_s, UTC).strftime(STAMP_FORMAT)
    return f"{db_path.stem}-{stamp}.sqlite"


def backup(db_path: Path, out_dir: Path, at_s: float) -> BackupReport:
    """Copy db_path into out_dir as <stem>-<stamp>.sqlite, checked before it gets its name."""
    if not out_dir.is_dir():
        raise BackupError(f"{out_dir}: no such directory (create it, writable by minerd)")
    target = out_dir / backup_name(db_path, at_s)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        with (
            contextlib.closing(_open_read_only(db_path)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dest,
        ):
            src.backup(dest)
            # The copy inherits the WAL flag: make it one self-contained file instead.
            dest.execute("PRAGMA journal_mode=DELETE")
        report = verify(partial)
        os.replace(partial, target)
    except (OSError, sqlite3.Error) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {db_path} to {target} failed: {exc}") from exc
    except BackupError:
        partial.unlink(missing_ok=True)
        raise
    return BackupReport(target, report.schema_version, report.rows, report.size_bytes)


def prune(db_path: Path, out_dir: Path, keep_days: float, now_s: float) -> list[Path]:
    """Delete this database's copies whose name stamp is older than keep_days."""
    removed = []
    prefix = f"{db_path.stem}-"
    for path in sorted(out_dir.glob(f"{prefix}*.sqlite")):
        try:
            stamp = datetime.strptime(path.stem.removeprefix(prefix), STAMP_FORMAT)
        except ValueError:
            continue  # not one of ours: never delete what we did not write
        if now_s - stamp.replace(tzinfo=UTC).timestamp() > keep_days * 86400.0:
            path.unlink()
            removed.append(path)
    return removed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("-c", "--config", type=Path, help="site config: back up its [storage] path")
    src.add_argument("--db", type=Path, help="the database file to back up")
    src.add_argument("--verify", type=Path, metavar="FILE", help="only check a copy")
    parser.add_argument("--dir", type=Path, help="where the copies go")
    parser.add_argument(
        "--keep-days", type=float, default=None, help="delete this database's older copies"
    )


def _db_path(args: argparse.Namespace) -> Path:
    """--db, or the config's [storage] path (relative to the config file, as minerd reads
    it); only that key is read, so a backup works even while the rest of the config is
    being edited."""
    if args.db is not None:
        return Path(args.db)
    config = Path(args.config)
    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BackupError(f"{config}: cannot read the config: {exc}") from None
    storage = raw.get("storage", {})
    value = storage.get("path", DEFAULT_DB) if isinstance(storage, dict) else DEFAULT_DB
    if not isinstance(value, str):
        raise BackupError(f"{config}: storage.path must be a string")
    path = Path(value).expanduser()
    return path if path.is_absolute() else config.absolute().parent / path


def run(args: argparse.Namespace) -> int:
    try:
        if args.verify is not None:
            print(verify(Path(args.verify)).line())
            return EXIT_OK
        if args.dir is None:
            print("minerd backup: --dir is required", file=sys.stderr)
            return EXIT_USAGE
        db_path = _db_path(args)
        now_s = system_clock.now_s()
        print(f"backup {backup(db_path, Path(args.dir), now_s).line()}")
        if args.keep_days is not None:
            for path in prune(db_path, Path(args.dir), args.keep_days, now_s):
                print(f"removed {path}")
    except BackupError as exc:
        print(f"minerd backup: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
