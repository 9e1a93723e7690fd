"""The database on a full or read-only disk: failures are counted where the daemon can see
them, the parts on the control path degrade instead of raising, and catch up afterwards.

Disk full is SQLite's own SQLITE_FULL ("database or disk is full"): the file may not grow
past `PRAGMA max_page_count`, and filler rows take the free space left in its pages.
Read-only is SQLITE_READONLY ("attempt to write a readonly database") from `PRAGMA
query_only`: the error a read-only file gives, which root cannot get from file modes.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from minerd.api.quota_orders import QuotaNotDurable, submit_quota
from minerd.api.schemas import QuotaRequest
from minerd.clock import ManualClock
from minerd.errors import StorageError
from minerd.model import QuotaSource, RigAction, RigCommand
from minerd.runtime.held_journal import RETRY_S, HeldJournal
from minerd.runtime.sessions import PREFIX, StoredSessions
from minerd.storage import Database, StateStore, Stores


def fill_disk(db: Database) -> None:
    """Make every write that needs a new page, or room in a page, fail with SQLITE_FULL."""
    db.query("CREATE TABLE IF NOT EXISTS filler (b BLOB)")
    pages = int(db.query("PRAGMA page_count")[0][0])
    db.query(f"PRAGMA max_page_count = {pages}")
    for size in (4096, 512, 64, 8, 1):
        while True:
            try:
                db.query("INSERT INTO filler VALUES (zeroblob(?))", (size,))
            except StorageError:
                break


def free_disk(db: Database) -> None:
    db.query("PRAGMA max_page_count = 1073741823")
    db.query("DELETE FROM filler")


def test_storage_file_and_wal_created_private(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    db = Database(path)
    StateStore(db).set("k", 1)
    for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    db.close()


def test_storage_existing_world_readable_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    Database(path).close()
    path.chmod(0o644)
    Database(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_storage_health_sees_failing_writes_and_their_end(tmp_path: Path, fault: str) -> None:
    db = Database(tmp_path / "m.sqlite")
    stores = Stores.open(db)
    assert stores.health.ok
    if fault == "full":
        fill_disk(db)
    else:
        db.query("PRAGMA query_only = ON")
    with pytest.raises(StorageError, match="full" if fault == "full" else "readonly"):
        stores.journal.intents([RigCommand(f"r{i}", RigAction.SLEEP) for i in range(200)], 1.0)
    assert not stores.health.ok
    assert stores.health.error_counts() == {"journal intents": 1}
    assert "journal intents failing" in stores.health.summary()
    if fault == "full":
        free_disk(db)
    else:
        db.query("PRAGMA query_only = OFF")
    stores.journal.intents([RigCommand("r1", RigAction.SLEEP)], 2.0)
    assert stores.health.ok and stores.health.summary() == ""
    assert stores.health.error_counts() == {"journal intents": 1}  # a counter stays
    db.close()


def test_storage_user_error_inside_a_transaction_is_no_storage_failure(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.sqlite")
    stores = Stores.open(db)
    with pytest.raises(StorageError, match="no journal entry"):
        stores.journal.outcomes([(12345, True, None)], 1.0)
    assert stores.health.ok
    db.close()


def test_storage_held_journal_keeps_commands_and_writes_them_later(tmp_path: Path) -> None:
    db = Database(tmp_path / "m.sqlite")
    stores = Stores.open(db)
    clock = ManualClock(0.0)
    journal = HeldJournal(stores.journal, clock.monotonic_s)
    before = journal.intents([RigCommand("r0", RigAction.WAKE)], 1.0)
    assert before[0] > 0
    fill_disk(db)
    cmds = [RigCommand(f"r{i}", RigAction.SLEEP, reason="cut") for i in range(300)]
    ids = journal.intents(cmds, 10.0)  # never raises: the commands must still go out
    assert len(ids) == 300 and all(i < 0 for i in ids)
    journal.outcomes([(ids[0], True, ""), (ids[1], False, "timeout"), (before[0], True, "")], 11)
    again = journal.intents([RigCommand("r2", RigAction.WAKE)], 12.0)  # replaces r2's
    assert journal.stats.dropped_intents == 1
    assert journal.holding == 300 + 1  # one per rig, and one outcome of a row on disk
    assert not journal.catch_up()
    assert not stores.health.ok
    errors = stores.health.error_counts()
    free_disk(db)
    assert not journal.catch_up()  # not tried again so soon: no write on every call
    assert stores.health.error_counts() == errors
    clock.advance(RETRY_S)
    journal.outcomes([(again[0], True, "")], 13.0)  # the next journal call catches up
    assert journal.holding == 0
    latest = stores.journal.latest_intent_per_rig()
    assert len(latest) == 300
    assert latest["r0"].ok is True and latest["r0"].command.action is RigAction.SLEEP
    assert latest["r1"].ok is False and latest["r1"].error == "timeout"
    assert latest["r2"].command.action is RigAction.WAKE and latest["r2"].ok is True
    assert latest["r299"].intent_at_s == 10.0 and latest["r299"].ok is None
    assert stores.journal.get(before[0]) is not None
    assert stores.journal.get(before[0]).ok is True  # type: ignore[union-attr]
    # An intent written late still takes its outcome when that comes after the catch-up.
    journal.outcomes([(ids[299], True, "")], 14.0)
    assert stores.journal.latest_intent_per_rig()["r299"].ok is True
    db.close()


def test_storage_sessions_live_in_memory_while_the_disk_refuses(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    db = Database(path)
    state = StateStore(db)
    sessions = StoredSessions(state)
    db.query("PRAGMA query_only = ON")
    sessions.put("r1", "s-1")  # must not raise: a command depends on it
    sessions.put("r2", "s-2")
    assert sessions.get("r1") == "s-1" and sessions.unsaved == 2
    assert state.with_prefix(PREFIX) == {}
    db.query("PRAGMA query_only = OFF")
    sessions.put("r3", "s-3")
    assert sessions.unsaved == 0
    db.close()
    again = StoredSessions(StateStore(Database(path)))
    assert [again.get(r) for r in ("r1", "r2", "r3")] == ["s-1", "s-2", "s-3"]


class _Service:
    """Just what submit_quota needs: the stores, a clock, a cycle to wake."""

    def __init__(self, stores: Stores) -> None:
        from minerd.clock import ManualClock

        self.stores = stores
        self.clock = ManualClock(1_800_000_000.0)
        self.woken = 0

    def quotas_changed(self) -> None:
        self.woken += 1


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_storage_quota_accepted_only_once_durable(tmp_path: Path, fault: str) -> None:
    """A quota is on disk when accepted, or refused (HTTP 503): never accepted in memory
    only. On a full disk a row that still fits a page is durable, so it is accepted."""
    db = Database(tmp_path / "m.sqlite")
    stores = Stores.open(db)
    service = _Service(stores)
    grid, api = "grid", QuotaSource.API
    submit_quota(service, QuotaRequest(limit_kw=50.0), actor=grid, source=api)  # type: ignore[arg-type]
    if fault == "full":
        fill_disk(db)
    else:
        db.query("PRAGMA query_only = ON")
    accepted, refused = 1, 0
    for n in range(300):
        req = QuotaRequest(limit_kw=20.0 + n / 100, reference=f"cut-{n}")
        try:
            submit_quota(service, req, actor=grid, source=api)  # type: ignore[arg-type]
        except QuotaNotDurable as exc:
            assert "cannot be stored durably" in str(exc)
            refused += 1
        else:
            accepted += 1
    assert refused >= 1
    if fault == "read-only":
        assert accepted == 1
    assert service.woken == accepted  # a refused quota never reaches control
    assert len(stores.quotas.all()) == accepted
    db.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: a disk that really fills up (skipped where tmpfs cannot be mounted)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_storage_opens_on_a_full_disk_and_writes_once_there_is_room(tiny_disk: Path) -> None:
    """A restart while the disk is full: the daemon must start and control, not die."""
    path = tiny_disk / "m.sqlite"
    db = Database(path)
    stores = Stores.open(db)
    stores.state.set("control.operator_cap_kw", 500.0)
    db.close()  # checkpointed: the WAL is gone and must be created again
    filler = tiny_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    for chunk in (4096, 1):
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * chunk)
    os.close(fd)
    db = Database(path)  # raised "disk I/O error" before: no room for the -shm file
    stores = Stores.open(db)
    assert stores.state.get_float("control.operator_cap_kw") == 500.0  # reads work
    with pytest.raises(StorageError, match="full"):
        stores.journal.intents([RigCommand("r1", RigAction.SLEEP)], 1.0)
    assert not stores.health.ok
    filler.unlink()
    stores.journal.intents([RigCommand("r1", RigAction.SLEEP)], 2.0)
    assert stores.health.ok
    db.close()


@pytest.fixture
def ro_view(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(rw, ro): one directory, and a read-only bind mount of it (skipped if not root)."""
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    done = subprocess.run(["mount", "--bind", str(rw), str(ro)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        yield rw, ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


_CRASH = """
import os, signal, sys
from minerd.storage import Stores, Database
stores = Stores.open(Database(sys.argv[1]))
stores.state.set("control.operator_cap_kw", 400.0)
os.kill(os.getpid(), signal.SIGKILL)  # -wal and -shm stay behind
"""


@pytest.mark.parametrize("how", ["crashed", "closed"])
def test_storage_opens_on_a_read_only_file_system(ro_view: tuple[Path, Path], how: str) -> None:
    """The file system went read-only (ext4 errors=remount-ro) and systemd restarts minerd:
    it must start and control with what the database holds, WAL included."""
    rw, ro = ro_view
    if how == "crashed":
        subprocess.run([sys.executable, "-c", _CRASH, str(rw / "m.sqlite")], check=False)
        assert (rw / "m.sqlite-wal").exists()
    else:
        db = Database(rw / "m.sqlite")
        Stores.open(db).state.set("control.operator_cap_kw", 400.0)
        db.close()
        assert not (rw / "m.sqlite-wal").exists()
    db = Database(ro / "m.sqlite", reopen_every_s=0.0)  # refused before: not writable
    stores = Stores.open(db)
    assert db.read_only
    assert stores.state.get_float("control.operator_cap_kw") == 400.0
    with pytest.raises(StorageError, match="readonly"):
        stores.state.set("control.operator_cap_kw", 300.0)
    assert not stores.health.ok
    subprocess.run(["mount", "-o", "remount,rw,bind", str(ro)], check=True)
    stores.state.set("control.operator_cap_kw", 300.0)  # reopened for writing
    assert not db.read_only and stores.health.ok
    assert stores.state.get_float("control.operator_cap_kw") == 300.0
    db.close()
