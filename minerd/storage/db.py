"""The one SQLite database of minerd: one file, WAL, one guarded connection, versioned schema.

Durability: the connection runs `synchronous=FULL`. In WAL mode NORMAL never corrupts the
file but a power cut can drop the last commits; FULL fsyncs the WAL at every commit, so a
quota the grid authority was told is accepted, a command intent written before the command
went out, an audit line or an alert acknowledgement survive a power cut. That is the point
of these tables, so FULL is the default. Bulk data whose loss costs nothing (the telemetry
spool) may commit with `transaction(durable=False)`, which runs that one transaction at
NORMAL; the next FULL commit syncs its frames as well.

Threads and asyncio: the methods are synchronous and one short statement or a small
transaction costs well under a millisecond of CPU (plus one fsync per commit), so the
daemon may call single-row writes from the event loop. Anything that scans (history
queries, pruning, reading thousands of rows) should go through `asyncio.to_thread`; the
connection is shared by all threads behind one lock.

Failures: every write transaction reports to `health` (a StorageHealth), so the daemon sees
a full or read-only disk in one place. A minerd database already at the current schema
still opens when the disk is full or the file read-only (SQLITE_FULL, SQLITE_READONLY at
the open probe): reads work, writes raise StorageError, health says so, and the daemon
controls the site with its records degraded rather than not starting at all. A database
file that is not writable (read-only, immutable) opens read-only, and is opened again for
writing once it is writable (tried at most every `reopen_every_s`).

The file and its -wal/-shm are created 0600: they hold live LuxOS session ids.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from minerd.clock import system_clock
from minerd.errors import StorageError
from minerd.storage.health import OPEN_OP, StorageHealth, op_label

# PRAGMA application_id marks a file as ours: "mnrd".
MINERD_APPLICATION_ID = 0x6D6E7264
FILE_MODE = 0o600
_SIDE_FILES = ("-wal", "-shm")

log = logging.getLogger("minerd.storage")

SqlParams: TypeAlias = Sequence[object] | dict[str, object]


class NotFoundError(StorageError):
    """A row the caller named (quota, journal entry, alert, outbox item) does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"no {kind} {key!r}")


@dataclass(frozen=True)
class Migration:
    """One schema step of one component: its statements run in one transaction."""

    version: int  # 1, 2, 3... per component
    statements: tuple[str, ...]


class Database:
    """One SQLite file (never ":memory:": WAL needs a file), migrated as stores attach."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 5.0,
        reopen_every_s: float = 5.0,
    ) -> None:
        self._path = _check_path(path)
        self.health = StorageHealth()
        self._lock = threading.RLock()
        self._depth = 0  # transaction nesting; only the lock holder reads or writes it
        self._conn: sqlite3.Connection | None = None
        self._busy_timeout_s = busy_timeout_s
        self._reopen_every_s = reopen_every_s
        self._reopen_at_s = 0.0
        self._probe_ok = True  # the last open's write probe worked
        self.read_only = False  # opened read-only: the file was not writable
        if self._path.exists() and not os.access(self._path, os.W_OK):
            self._conn = self._open_read_only()
            return
        try:
            self._conn = self._open(busy_timeout_s)
        except StorageError as exc:
            if not _disk_trouble(exc) or not self._path.exists():
                raise
            # A full disk has no room for the -shm file WAL readers share: without it, in
            # exclusive locking mode, this one connection still reads, and writes once
            # there is room again. Other processes cannot open the file until a restart.
            log.warning("storage %s: opened in exclusive mode after: %s", self._path, exc)
            self._conn = self._open(busy_timeout_s, exclusive=True)

    # ------------------------------------------------------------ lifecycle

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close. Safe to call twice."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # a busy reader elsewhere: the WAL is replayed at the next open
            finally:
                conn.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ transactions and queries

    @contextmanager
    def transaction(
        self, what: str = "transaction", *, durable: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """Run the block in one write transaction (BEGIN IMMEDIATE); nested blocks are
        savepoints. Any exception rolls the block back; sqlite3 errors become StorageError
        naming the file and `what`."""
        with self._lock:
            conn = self._connection(what)
            if self._depth > 0:
                yield from self._savepoint(conn, what)
                return
            if self.read_only:
                conn = self._reopen() or conn
            yield from self._top_transaction(conn, what, durable)

    def _top_transaction(
        self, conn: sqlite3.Connection, what: str, durable: bool
    ) -> Iterator[sqlite3.Connection]:
        op = op_label(what)
        if not durable:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._failed(op, what, exc) from exc
            self._depth = 1
            try:
                yield conn
            except sqlite3.Error as exc:
                conn.rollback()
                raise self._failed(op, what, exc) from exc
            except BaseException:
                conn.rollback()
                raise
            try:
                conn.commit()
            except sqlite3.Error as exc:
                conn.rollback()
                raise self._failed(op, what, exc) from exc
            self.health.succeeded(op)
        finally:
            self._depth = 0
            if not durable:
                conn.execute("PRAGMA synchronous=FULL")

    def _failed(self, op: str, what: str, exc: sqlite3.Error) -> StorageError:
        """The error to raise for a failed write, counted where the daemon can see it."""
        error = self.error(what, exc)
        self.health.failed(op, error)
        return error

    def _savepoint(self, conn: sqlite3.Connection, what: str) -> Iterator[sqlite3.Connection]:
        name = f"sp{self._depth}"
        conn.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield conn
        except BaseException as exc:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            if isinstance(exc, sqlite3.Error):
                raise self._failed(op_label(what), what, exc) from exc
            raise
        else:
            conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def query(self, sql: str, params: SqlParams = (), *, what: str = "query") -> list[sqlite3.Row]:
        """Run one read statement and return every row (columns by name)."""
        with self._lock:
            conn = self._connection(what)
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self.error(what, exc) from exc

    def query_one(
        self, sql: str, params: SqlParams = (), *, what: str = "query"
    ) -> sqlite3.Row | None:
        rows = self.query(sql, params, what=what)
        return rows[0] if rows else None

    def error(self, what: str, exc: BaseException) -> StorageError:
        """The StorageError for a failed operation: names the file and what failed."""
        return StorageError(f"storage {self._path}: {what} failed: {exc}")

    # ------------------------------------------------------------ schema

    def apply_migrations(self, component: str, migrations: Sequence[Migration]) -> int:
        """Bring `component`'s tables to its latest version; idempotent, run at every open.

        Returns the component's schema version. A database written by a newer minerd (a
        version above the latest known here) is refused rather than guessed at."""
        versions = [m.version for m in migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise StorageError(f"storage: migrations of {component} must be numbered 1..n")
        if self._version(component) == len(migrations):
            return len(migrations)  # nothing to write: opens on a read-only or full disk too
        with self.transaction(f"migrate {component}") as conn:
            row = conn.execute(
                "SELECT version FROM schema_version WHERE component = ?", (component,)
            ).fetchone()
            current = int(row[0]) if row else 0
            if current > len(migrations):
                raise StorageError(
                    f"storage {self._path}: {component} schema is version {current}, newer "
                    f"than this minerd knows ({len(migrations)}); refusing to touch it"
                )
            for m in migrations[current:]:
                for stmt in m.statements:
                    conn.execute(stmt)
            if current < len(migrations):
                conn.execute(
                    "INSERT INTO schema_version(component, version) VALUES (?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (component, len(migrations)),
                )
        return len(migrations)

    def _version(self, component: str) -> int | None:
        try:
            row = self.query_one(
                "SELECT version FROM schema_version WHERE component = ?",
                (component,),
                what="read schema",
            )
        except StorageError:
            return None
        return None if row is None else int(row[0])

    def schema_versions(self) -> dict[str, int]:
        rows = self.query("SELECT component, version FROM schema_version", what="read schema")
        return {str(r[0]): int(r[1]) for r in rows}

    def backup_to(self, target: Path) -> None:
        """A consistent copy of the whole database at `target` (sqlite3 online backup API),
        created 0600 like the database; a failed copy leaves no file behind."""
        with self._lock:
            conn = self._connection("backup")
            try:
                fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
            except OSError as exc:
                raise StorageError(f"storage {self._path}: backup to {target}: {exc}") from exc
            os.close(fd)
            try:
                with contextlib.closing(sqlite3.connect(target)) as dest:
                    conn.backup(dest)
                    # The copy inherits the WAL flag: make it one self-contained file.
                    dest.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.Error as exc:
                target.unlink(missing_ok=True)
                raise self.error(f"backup to {target}", exc) from exc

    def integrity_check(self) -> list[str]:
        """PRAGMA integrity_check plus foreign_key_check; ["ok"] when the file is sound."""
        rows = self.query("PRAGMA integrity_check", what="integrity check")
        problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
        fk = self.query("PRAGMA foreign_key_check", what="foreign key check")
        problems += [f"foreign key: {tuple(r)}" for r in fk]
        return problems or ["ok"]

    # ------------------------------------------------------------ internals

    def _connection(self, what: str) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"storage {self._path}: {what}: database is closed")
        return self._conn

    def _open_read_only(self) -> sqlite3.Connection:
        if not os.access(self._path, os.R_OK):
            raise StorageError(f"storage {self._path}: the database file is not readable")
        conn = self._connect_read_only()
        self.read_only = True
        self._reopen_at_s = system_clock.monotonic_s() + self._reopen_every_s
        log.warning(
            "storage %s: the database file is not writable: opened read-only; control goes "
            "on, writes wait until the file is writable again",
            self._path,
        )
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        try:
            return self._open(self._busy_timeout_s, read_only=True)
        except StorageError:
            # A read-only file system and no -shm to share (closed cleanly): with no -wal
            # either, every row is in the main file and it cannot change under us.
            if self._path.with_name(self._path.name + "-wal").exists():
                raise
            return self._open(self._busy_timeout_s, read_only=True, immutable=True)

    def _reopen(self) -> sqlite3.Connection | None:
        """The file may be writable again: open it for writing instead (lock held).

        The read-only connection is closed first: connections of one process share the
        -shm mapping, which it opened read-only."""
        now_s = system_clock.monotonic_s()
        if now_s < self._reopen_at_s or not os.access(self._path, os.W_OK):
            return None
        self._reopen_at_s = now_s + self._reopen_every_s
        if self._conn is not None:
            self._conn.close()
        try:
            conn = self._open(self._busy_timeout_s)
            if self._probe_ok:
                self._conn, self.read_only = conn, False
                log.warning("storage %s: the database file is writable again", self._path)
                return conn
            conn.close()
        except StorageError as exc:
            log.debug("storage %s still not writable: %s", self._path, exc)
        self._conn = None  # "database is closed" if even reading fails now
        self._conn = self._connect_read_only()
        return self._conn

    def _open(
        self,
        busy_timeout_s: float,
        *,
        exclusive: bool = False,
        read_only: bool = False,
        immutable: bool = False,
    ) -> sqlite3.Connection:
        if read_only:
            target = f"file:{urllib.parse.quote(str(self._path))}?mode=ro"
            target += "&immutable=1" if immutable else ""
        else:
            self._restrict_mode()
            target = str(self._path)
        try:
            conn = sqlite3.connect(
                target,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
                uri=read_only,
            )
        except sqlite3.Error as exc:
            raise self.error("open", exc) from exc
        conn.row_factory = sqlite3.Row
        if exclusive:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")  # before the first access
        try:
            self._claim(conn)
            # Immutable: no journal is read or written, whatever the file's mode says.
            mode = "wal" if immutable else conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(
                    f"storage {self._path}: cannot switch to WAL (journal_mode is {mode})"
                )
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            self._probe_ok = self._probe(conn)
        except StorageError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            msg = str(exc)
            if "readonly" in msg or "read-only" in msg or "unable to open" in msg:
                raise StorageError(
                    f"storage {self._path}: the database is not writable ({msg}); minerd "
                    "needs write access to the file and its directory (-wal, -shm files)"
                ) from exc
            if "not a database" in msg:
                raise StorageError(
                    f"storage {self._path}: the file is not an SQLite database ({msg})"
                ) from exc
            raise self.error("open", exc) from exc
        return conn

    def _probe(self, conn: sqlite3.Connection) -> bool:
        """The core table, and a write at every open so a read-only file fails here, unless
        it is a minerd database already: then it opens degraded (see the module doc)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version("
                "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            conn.execute(
                "INSERT INTO schema_version(component, version) VALUES ('db', 1) "
                "ON CONFLICT(component) DO UPDATE SET version = excluded.version"
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY) or not _has_schema(conn):
                raise
            self.health.failed(OPEN_OP, self.error("open", exc))
            return False
        return True

    def _restrict_mode(self) -> None:
        """Create the file 0600 before SQLite does (it gives -wal and -shm the mode of the
        database file), and take group and world access from one created looser."""
        try:
            fd = os.open(self._path, os.O_CREAT | os.O_RDWR, FILE_MODE)
        except OSError as exc:
            raise StorageError(f"storage {self._path}: cannot create the file: {exc}") from exc
        try:
            mode = os.fstat(fd).st_mode & 0o777
            if mode & 0o077:
                os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
        for suffix in _SIDE_FILES:
            side = self._path.with_name(self._path.name + suffix)
            if side.exists() and side.stat().st_mode & 0o077:
                side.chmod(FILE_MODE)

    def _claim(self, conn: sqlite3.Connection) -> None:
        """Refuse a file that belongs to someone else; mark a new empty file as ours."""
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        if app_id == MINERD_APPLICATION_ID:
            return
        tables = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        if app_id != 0 or tables > 0:
            raise StorageError(
                f"storage {self._path}: not a minerd database (application_id {app_id:#x}, "
                f"{tables} schema objects); refusing to use it"
            )
        conn.execute(f"PRAGMA application_id={MINERD_APPLICATION_ID}")


def _disk_trouble(exc: StorageError) -> bool:
    """The open failed on I/O or space, not on what the file is."""
    cause = exc.__cause__
    code = getattr(cause, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL)


def _has_schema(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    return bool(row[0])


def _check_path(path: str | os.PathLike[str]) -> Path:
    """Catch the usual mistakes before SQLite reports them as 'unable to open'."""
    raw = os.fspath(path)
    if raw in ("", ":memory:") or raw.startswith("file:"):
        raise StorageError(
            f"storage {raw!r}: a file path is required (WAL mode does not work in memory)"
        )
    p = Path(raw).expanduser().absolute()
    parent = p.parent
    if not parent.is_dir():
        raise StorageError(f"storage {p}: directory {parent} does not exist or is not a directory")
    if p.exists():
        if not p.is_file():
            raise StorageError(f"storage {p}: exists and is not a regular file")
        if not os.access(p, os.R_OK):
            raise StorageError(f"storage {p}: the database file is not readable")
        if not os.access(p, os.W_OK):
            return p  # opened read-only (see Database): its directory need not be writable
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StorageError(
            f"storage {p}: directory {parent} is not writable (SQLite creates the database "
            "and its -wal and -shm files there)"
        )
    return p
