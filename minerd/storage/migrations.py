"""The schema version of the whole database file, and the upgrade run before the stores open.

Each store keeps its own ordered migrations (`Migration`, per component, in schema_version);
the file as a whole carries `PRAGMA user_version`, the schema release it was written by:

    0  unversioned: release 1f8bb88 and before (every component at version 1)
    1  the file version exists; every component at its latest migration
    2  compliance records carry utilization and the reason under 97 % (issue 19)
    3  energy awards per settlement interval and settlement records (issue 15)

`upgrade` runs once at open, before any store: it refuses a file from a newer minerd, and if
anything is to be migrated in a database that holds data, it first takes a backup copy next
to the file (`<db>.pre-v<N>.bak`, sqlite3 online backup API), then runs each step in its own
transaction. A failed step rolls back to the previous version, and the backup stays. To roll
back after an upgrade: stop minerd, install the previous release, and copy the backup over
the database file (docs/operator-guide.md, "Upgrades").

Changing a store's schema: append its Migration, and append a Step with the next version
(usually `_all_components_latest` again) so the file version moves with it. Forgetting the
Step is still safe (a pending component is migrated, with its copy, under the last step;
an older minerd refuses the component by its own version), but the file version is what an
operator reads in the log and in `minerd backup --verify`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from minerd.errors import StorageError
from minerd.storage import alert_state, audit, awards, compliance, journal, quotas, spool, state
from minerd.storage.db import Database, Migration

log = logging.getLogger("minerd.storage")

# Every store's migrations by component name: what "at the latest schema" means.
COMPONENTS: Mapping[str, Sequence[Migration]] = {
    "quotas": quotas.MIGRATIONS,
    "audit": audit.MIGRATIONS,
    "journal": journal.MIGRATIONS,
    "compliance": compliance.MIGRATIONS,
    "state": state.MIGRATIONS,
    "alerts": alert_state.MIGRATIONS,
    "awards": awards.MIGRATIONS,
    spool.COMPONENT: spool.MIGRATIONS,
}


@dataclass(frozen=True)
class Step:
    """One file-level schema step: `apply` runs inside the step's transaction."""

    version: int
    what: str
    apply: Callable[[Database], None]


def _all_components_latest(db: Database) -> None:
    for name, migrations in COMPONENTS.items():
        db.apply_migrations(name, migrations)  # nested: a savepoint in the step's transaction


STEPS: tuple[Step, ...] = (
    Step(1, "versioned file; every store at its latest schema", _all_components_latest),
    Step(2, "compliance: utilization and the reason under 97 %", _all_components_latest),
    Step(3, "energy awards and settlement records", _all_components_latest),
)
SCHEMA_VERSION = STEPS[-1].version


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade` did: versions before and after, and the backup it took (if any)."""

    from_version: int
    to_version: int
    backup: Path | None = None

    @property
    def changed(self) -> bool:
        return self.backup is not None or self.from_version != self.to_version


def file_version(db: Database) -> int:
    row = db.query_one("PRAGMA user_version", what="read schema version")
    return int(row[0]) if row is not None else 0


def upgrade(db: Database) -> Upgrade:
    """Bring the database to SCHEMA_VERSION with every store at its latest migration.

    Raises StorageError naming the file for a database written by a newer minerd, or when
    the backup or a step fails (the file then stays at the last completed version), unless
    every table is already current and only the version stamp could not be written."""
    current = file_version(db)
    if current > SCHEMA_VERSION:
        raise StorageError(
            f"storage {db.path}: the database has schema version {current}, newer than this "
            f"minerd knows ({SCHEMA_VERSION}); it was written by a newer release. Run that "
            "release, or restore the backup taken before the upgrade (<db>.pre-v<N>.bak)"
        )
    pending = _components_pending(db)
    if current == SCHEMA_VERSION and not pending:
        return Upgrade(current, current)  # nothing to write: opens on a read-only disk too
    try:
        return _migrate(db, current)
    except StorageError as exc:
        if pending or not _disk_trouble(exc):
            raise
        # Every table is already current; only the version stamp is missing. A full or
        # read-only disk must not stop control over that (the daemon opens degraded, as it
        # does for a current file): the stamp is written at a later start.
        log.warning(
            "storage %s: schema version %d not recorded yet (the tables are current): %s",
            db.path,
            SCHEMA_VERSION,
            exc,
        )
        return Upgrade(current, current)


def _migrate(db: Database, current: int) -> Upgrade:
    backup = _backup(db, SCHEMA_VERSION) if _holds_data(db) else None
    steps = [s for s in STEPS if s.version > current] or [STEPS[-1]]
    for step in steps:
        with db.transaction(f"migrate schema to v{step.version}") as conn:
            step.apply(db)
            conn.execute(f"PRAGMA user_version = {int(step.version)}")
        # An existing database upgraded is worth an operator's eye; a new file is not.
        log.log(
            logging.WARNING if backup else logging.INFO,
            "storage %s: schema v%d -> v%d (%s)%s",
            db.path,
            current,
            step.version,
            step.what,
            f"; backup of v{current} at {backup}" if backup else "",
        )
    return Upgrade(current, SCHEMA_VERSION, backup)


def _disk_trouble(exc: StorageError) -> bool:
    """The write failed for lack of space or a read-only file or disk, not on the schema."""
    cause = exc.__cause__
    if isinstance(cause, OSError):
        return cause.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES)
    code = getattr(cause, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR)


# Created when its sink first runs: a file without it is not behind for that reason alone.
_LAZY_COMPONENTS = frozenset({spool.COMPONENT})


def _components_pending(db: Database) -> bool:
    """A store's tables are missing or older than its latest migration."""
    versions = db.schema_versions()
    return any(
        versions.get(name, 0) != len(m)
        for name, m in COMPONENTS.items()
        if name in versions or name not in _LAZY_COMPONENTS
    )


def _holds_data(db: Database) -> bool:
    """A file with any store's tables in it (a new file needs no backup)."""
    return any(name != "db" for name in db.schema_versions())


def backup_path(db_path: Path, version: int) -> Path:
    """<db>.pre-v<N>.bak next to the database; .2, .3... if one is already there (the first
    copy is the state before the first attempt and is never overwritten)."""
    base = db_path.with_name(f"{db_path.name}.pre-v{version}")
    candidate = base.with_name(base.name + ".bak")
    n = 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}.{n}.bak")
        n += 1
    return candidate


def _backup(db: Database, version: int) -> Path:
    target = backup_path(db.path, version)
    db.backup_to(target)
    uri = f"file:{urllib.parse.quote(str(target))}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as check:
        ok = check.execute("PRAGMA quick_check").fetchone()[0]
    if ok != "ok":
        raise StorageError(f"storage {db.path}: the backup {target} fails its check: {ok}")
    return target
