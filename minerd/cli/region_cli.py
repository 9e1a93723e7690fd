"""`minerd region forget`: clear a site's saved regional allocation (issue 16).

The site saves the last allocation it took (state key "region.allocation") so that after a
restart its coordinator revision still fences older coordinators. If the coordinator's
JetStream store is wiped, its leadership revisions restart at 1: the site refuses every
allocation as fenced and stays on its fail-safe limit (the safe side). With the daemon
stopped, `minerd region forget` deletes the saved allocation; the next start takes the
coordinator's allocations again (fail-safe until the first one arrives, as on a first start).
A coordinator that sends its store epoch is taken by itself once the site's lease has expired
(control.region_lease): the command is then only needed to re-join before that, or when the
coordinator or the saved allocation predates store epochs.

The daemon must be stopped: its lease lives in memory too and would go on fencing. A running
daemon holds the database open, so the command takes the database for itself alone (an
exclusive lock, never waited for) and deletes the key in that same transaction: either no
other process has the file open and the key is gone, or nothing changes. The removal is then
written to the audit log ("region.forgotten"). `--dry-run` only shows the saved allocation,
read-only, and works beside a running daemon.

Exit status: 0 removed (or nothing saved), 1 the database is in use or failed, 2 usage or
config error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from minerd.cli.backup import BackupError, _db_path
from minerd.clock import system_clock
from minerd.control.region_lease import STATE_KEY, SavedLease
from minerd.errors import StorageError
from minerd.storage.audit import AuditLog
from minerd.storage.db import MINERD_APPLICATION_ID, Database

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
ACTION = "region.forgotten"


class RegionCliError(Exception):
    """The command could not run; the message names the file. code: the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SavedAllocation:
    """What was saved under the state key: the lease, or why it could not be read."""

    region: str
    site: str
    lease: SavedLease | None  # None: unreadable (removed all the same)
    text: str  # the JSON as stored
    problem: str = ""

    def describe(self) -> str:
        if self.lease is None:
            return f"an unreadable saved regional allocation ({self.problem}): {self.text[:200]}"
        g = self.lease.grant
        end = datetime.fromtimestamp(self.lease.expires_at_s, UTC).isoformat(timespec="seconds")
        return (
            f"the saved regional allocation of site {self.site} in region {self.region}: "
            f"coordinator {g.coordinator_id}, revision {g.lease_revision}, seq {g.seq}, "
            f"{g.allocation_kw:g} kW, lease end {end}"
        )

    def audit_detail(self) -> dict[str, object]:
        detail: dict[str, object] = {"actor": "cli", "region": self.region, "site": self.site}
        if self.lease is None:
            return {**detail, "unreadable": self.problem}
        g = self.lease.grant
        return {
            **detail,
            "coordinator": g.coordinator_id,
            "lease_revision": g.lease_revision,
            "seq": g.seq,
            "allocation_kw": g.allocation_kw,
            "expires_at_s": self.lease.expires_at_s,
        }


def _parse(text: str) -> SavedAllocation:
    try:
        value = json.loads(text)
    except ValueError as exc:
        return SavedAllocation("?", "?", None, text, f"not JSON: {exc}")
    region = str(value.get("region", "?")) if isinstance(value, dict) else "?"
    site = str(value.get("site", "?")) if isinstance(value, dict) else "?"
    try:
        return SavedAllocation(region, site, SavedLease.from_state(value), text)
    except ValueError as exc:
        return SavedAllocation(region, site, None, text, str(exc))


def _read(conn: sqlite3.Connection, db_path: Path) -> SavedAllocation | None:
    """The saved allocation, after checking the file is a minerd database with state."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if app_id != MINERD_APPLICATION_ID:
        raise RegionCliError(f"{db_path}: not a minerd database (application_id {app_id:#x})")
    has_kv = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'kv'"
    ).fetchone()[0]
    if not has_kv:
        return None  # the daemon never saved state here
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (STATE_KEY,)).fetchone()
    return None if row is None else _parse(str(row[0]))


def show(db_path: Path) -> SavedAllocation | None:
    """The saved allocation, read-only (a running daemon is no obstacle)."""
    if not db_path.is_file():
        raise RegionCliError(f"{db_path}: no such database file")
    uri = f"file:{urllib.parse.quote(str(db_path))}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            return _read(conn, db_path)
    except sqlite3.Error as exc:
        raise RegionCliError(f"{db_path}: cannot read the database: {exc}") from exc


def forget(db_path: Path) -> SavedAllocation | None:
    """Delete the saved allocation (None: nothing was saved), only while no other process
    has the database open: RegionCliError otherwise, and nothing changes."""
    if not db_path.is_file():
        raise RegionCliError(f"{db_path}: no such database file")
    try:
        # timeout=0: a lock held elsewhere is an answer (the daemon runs), not a wait.
        conn = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    except sqlite3.Error as exc:
        raise RegionCliError(f"{db_path}: cannot open the database: {exc}") from exc
    with contextlib.closing(conn):
        try:
            # Held to the close: a daemon that starts meanwhile waits, then sees the result.
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            raise RegionCliError(
                f"{db_path}: the database is in use ({exc}): stop the daemon first "
                "(systemctl stop minerd), then run this again"
            ) from exc
        try:
            saved = _read(conn, db_path)
            if saved is not None:
                conn.execute("DELETE FROM kv WHERE key = ?", (STATE_KEY,))
            conn.execute("COMMIT")
        except (sqlite3.Error, RegionCliError) as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, RegionCliError):
                raise
            raise RegionCliError(f"{db_path}: removing the saved allocation failed: {exc}") from exc
    return saved


def _audit(db_path: Path, saved: SavedAllocation, at_s: float) -> None:
    with Database(db_path) as db:
        AuditLog(db).record(
            at_s, "cli", ACTION, saved.region, json.dumps(saved.audit_detail(), allow_nan=False)
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="region_command", metavar="ACTION", required=True)
    f = sub.add_parser(
        "forget",
        help="clear the site's saved regional allocation (after the coordinator's store was "
        "wiped: only needed to re-join before the current lease expires, or with a coordinator "
        "that sends no store epoch); the daemon must be stopped",
    )
    src = f.add_mutually_exclusive_group(required=True)
    src.add_argument("-c", "--config", type=Path, help="site config: its [storage] path")
    src.add_argument("--db", type=Path, help="the site's database file")
    f.add_argument(
        "--dry-run", action="store_true", help="only show the saved allocation (read-only)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        db_path = _db_path(args)
    except BackupError as exc:
        print(f"minerd region: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.dry_run:
            saved = show(db_path)
            print("no saved regional allocation" if saved is None else saved.describe())
            return EXIT_OK
        saved = forget(db_path)
    except RegionCliError as exc:
        print(f"minerd region forget: {exc}", file=sys.stderr)
        return exc.code
    if saved is None:
        print(f"{db_path}: no saved regional allocation: nothing to remove")
        return EXIT_OK
    print(f"removed {saved.describe()}")
    try:
        _audit(db_path, saved, system_clock.now_s())
    except StorageError as exc:  # removed all the same: the audit is the record, not the act
        print(f"minerd region forget: removed, but not audited: {exc}", file=sys.stderr)
    return EXIT_OK
