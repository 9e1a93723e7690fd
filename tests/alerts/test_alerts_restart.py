"""A restart (a new engine on the same database) neither repeats nor loses alerts;
acknowledgements persist."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alerts_helpers import FACTS, FAST, MODELS, SITE, make_engine, meter, rig, snap

from minerd.alerts import AlertEngine, AlertNotFound, AlertThresholds, ChangeKind, DeliverySettings
from minerd.clock import ManualClock
from minerd.model import MeterStatus, RigStatus
from minerd.storage import AlertStore, Database

T0 = 1_800_000_000.0
HOOK = DeliverySettings(log=False, webhook_url="http://127.0.0.1:9/hook")


def fleet(t: float, fan_rpm: int) -> list[RigStatus]:
    return [rig("r1", t=t, fan_rpm=fan_rpm)] + [rig(f"r{i}", t=t) for i in range(2, 6)]


def over_limit(t: float) -> list[MeterStatus]:
    return [meter(t=t, power_w=1_200_000.0 + t % 3)]


def test_restart_keeps_active_alerts_without_repeating_them(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    e1, db1 = make_engine(tmp_path / "a.db", clock, HOOK)
    fired = []
    for _ in range(12):
        clock.advance(1)
        t = clock.now_s()
        fired += e1.evaluate(snap(t, fleet(t, 0), over_limit(t)), FACTS, t)
    assert sorted(c.alert.rule for c in fired) == ["QuotaBreach", "RigFanFailure"]
    before = {a.alert_id: a for a in e1.active()}
    queued = e1.store.pending_count("webhook")
    assert queued == 2
    db1.close()

    # Restart 30 s later; the faults are still there.
    clock.advance(30)
    e2, db2 = make_engine(tmp_path / "a.db", clock, HOOK)
    assert {a.alert_id: a for a in e2.active()} == before
    for _ in range(60):
        clock.advance(1)
        t = clock.now_s()
        assert e2.evaluate(snap(t, fleet(t, 0), over_limit(t)), FACTS, t) == []
    assert e2.store.pending_count("webhook") == queued  # nothing queued twice
    # The faults clear: the same alerts resolve (same ids).
    resolved = []
    for _ in range(25):
        clock.advance(1)
        t = clock.now_s()
        resolved += e2.evaluate(snap(t, fleet(t, 5800)), FACTS, t)
    assert {c.alert.alert_id for c in resolved} == set(before)
    assert {c.kind for c in resolved} == {ChangeKind.RESOLVED}
    assert e2.active() == []
    assert e2.store.pending_count("webhook") == queued + 2
    db2.close()


def test_fault_cleared_while_down_resolves_after_restart(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    e1, db1 = make_engine(tmp_path / "a.db", clock)
    for _ in range(12):
        clock.advance(1)
        t = clock.now_s()
        e1.evaluate(snap(t, fleet(t, 0)), FACTS, t)
    (active,) = e1.active()
    db1.close()
    clock.advance(100)
    e2, db2 = make_engine(tmp_path / "a.db", clock)
    assert [a.alert_id for a in e2.active()] == [active.alert_id]
    resolved_at = clock.now_s() + 1
    changes = []
    for _ in range(21):
        clock.advance(1)
        t = clock.now_s()
        changes += e2.evaluate(snap(t, fleet(t, 5800)), FACTS, t)
    assert [(c.kind, c.alert.alert_id) for c in changes] == [(ChangeKind.RESOLVED, active.alert_id)]
    assert changes[0].alert.ends_at_s == resolved_at
    db2.close()


def test_acknowledgement_persists_across_restart(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    e1, db1 = make_engine(tmp_path / "a.db", clock, HOOK)
    for _ in range(12):
        clock.advance(1)
        t = clock.now_s()
        e1.evaluate(snap(t, fleet(t, 0)), FACTS, t)
    (a,) = e1.active()
    acked = e1.acknowledge(a.alert_id, "tech-anna")
    assert (acked.acknowledged_by, acked.acknowledged_at_s) == ("tech-anna", clock.now_s())
    assert e1.active()[0].acknowledged_by == "tech-anna"
    again = e1.acknowledge(a.alert_id, "tech-bob")  # the first acknowledgement is kept
    assert again.acknowledged_by == "tech-anna"
    assert e1.store.pending_count("webhook") == 2  # fired + acknowledged, not twice
    with pytest.raises(AlertNotFound):
        e1.acknowledge("no-such-alert", "tech-anna")
    db1.close()
    e2, db2 = make_engine(tmp_path / "a.db", clock, HOOK)
    assert e2.active()[0].acknowledged_by == "tech-anna"
    assert e2.get(a.alert_id).acknowledged_by == "tech-anna"
    db2.close()


def test_database_locked_for_a_while_loses_no_alert(tmp_path: Path) -> None:
    """Another process holds the database: changes are kept and stored once it is free."""
    clock = ManualClock(T0)
    db = Database(tmp_path / "a.db", busy_timeout_s=0.05)
    engine = AlertEngine(SITE, AlertStore(db), MODELS, AlertThresholds(timings=FAST), HOOK,
                         clock=clock, db=db)  # fmt: skip
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    fired = []
    for _ in range(12):
        clock.advance(1)
        t = clock.now_s()
        fired += engine.evaluate(snap(t, fleet(t, 0)), FACTS, t)
    assert [c.alert.rule for c in fired] == ["RigFanFailure"]
    assert [a.alert_id for a in engine.active()] == [fired[0].alert.alert_id]
    other.execute("ROLLBACK")
    other.close()
    clock.advance(1)
    t = clock.now_s()
    assert engine.evaluate(snap(t, fleet(t, 0)), FACTS, t) == []
    assert engine.store.get(fired[0].alert.alert_id) == fired[0].alert
    assert engine.store.pending_count("webhook") == 1
    db.close()
