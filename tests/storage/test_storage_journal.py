"""CommandJournal: intents before sending, outcomes after, restart view, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from minerd.model import RigAction, RigCommand
from minerd.storage import CommandJournal, Database, NotFoundError

ROOT = Path(__file__).resolve().parents[2]


def test_storage_journal_round_trip_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    db = Database(path)
    j = CommandJournal(db)
    c1 = RigCommand("r1", RigAction.SLEEP, reason="shed")
    c2 = RigCommand("r2", RigAction.SET_POWER, power_w=2500.0)
    c3 = RigCommand("r1", RigAction.SET_PROFILE, profile="eco", reason="raise")
    i1 = j.intent(c1, 10.0)
    i2, i3 = j.intents([c2, c3], 11.0)
    assert i1 < i2 < i3
    j.outcome(i1, True, None, 10.5)
    j.outcomes([(i2, False, "r2 at 10.0.0.2:4028: timeout")], 12.0)
    with pytest.raises(NotFoundError):
        j.outcome(99999, True, None, 13.0)
    db.close()

    db = Database(path)
    j = CommandJournal(db)
    latest = j.latest_intent_per_rig()
    assert set(latest) == {"r1", "r2"}
    assert latest["r1"].command == c3 and latest["r1"].ok is None
    assert latest["r2"].command == c2 and latest["r2"].ok is False
    assert latest["r2"].error == "r2 at 10.0.0.2:4028: timeout"
    assert [e.journal_id for e in j.without_outcome()] == [i3]
    e1 = j.get(i1)
    assert e1 is not None and e1.ok is True and e1.outcome_at_s == 10.5
    assert [e.journal_id for e in j.recent("r1")] == [i3, i1]
    db.close()


def test_storage_journal_prune_keeps_latest_per_rig(tmp_path: Path) -> None:
    db = Database(tmp_path / "j.db")
    j = CommandJournal(db)
    j.intents([RigCommand(f"r{k}", RigAction.WAKE) for k in range(3)], 0.0)
    j.intents([RigCommand("r0", RigAction.SLEEP)], 5.0)
    j.intents([RigCommand("r1", RigAction.SLEEP)], 100.0)
    deleted = j.prune(before_s=50.0)
    assert deleted == 2  # r0@0 and r1@0; r2@0 is r2's latest, r0@5 is r0's latest
    latest = j.latest_intent_per_rig()
    assert latest["r0"].command.action is RigAction.SLEEP
    assert latest["r2"].intent_at_s == 0.0
    assert j.count() == 3
    db.close()


_WRITER = """
import sys
sys.path.insert(0, {root!r})
from minerd.model import RigAction, RigCommand
from minerd.storage import CommandJournal, Database
db = Database({path!r})
j = CommandJournal(db)
batch = 0
while True:
    ids = j.intents([RigCommand(f"r{{k}}", RigAction.SET_POWER, power_w=float(batch))
                     for k in range(50)], float(batch))
    print(batch, ids[0], ids[-1], flush=True)  # printed only after the commit returned
    batch += 1
"""


def test_storage_journal_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER.format(root=str(ROOT), path=str(path))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acked: list[tuple[int, int, int]] = []
    while len(acked) < 40:  # a hung writer is ended by the test timeout
        line = proc.stdout.readline()
        if not line:
            break  # the writer died: the assertion below says so
        b, first, last = (int(x) for x in line.split())
        acked.append((b, first, last))
    os.kill(proc.pid, signal.SIGKILL)  # mid-loop, likely inside a transaction
    proc.wait()
    assert len(acked) >= 40

    db = Database(path)
    j = CommandJournal(db)
    assert db.integrity_check() == ["ok"]
    for b, first, last in acked:
        rows = db.query(
            "SELECT count(*), min(intent_at_s), max(intent_at_s) FROM command_journal "
            "WHERE id BETWEEN ? AND ?",
            (first, last),
        )
        assert tuple(rows[0]) == (50, float(b), float(b))
    # No torn batch: whatever was committed after the last ack is a whole batch.
    assert j.count() % 50 == 0
    latest = j.latest_intent_per_rig()
    assert len(latest) == 50
    assert min(e.intent_at_s for e in latest.values()) >= acked[-1][0]
    db.close()
