"""AlertStore: alert state and the at-least-once notification outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerd.errors import StorageError
from minerd.model import Alert, Severity
from minerd.storage import AlertStore, Database, NotFoundError


def _alert(aid: str, starts_at_s: float, ends_at_s: float | None = None) -> Alert:
    return Alert(
        alert_id=aid,
        rule="grid_meter_stale",
        severity=Severity.CRITICAL,
        labels=(("site", "s1"), ("meter", "grid-1")),
        summary="grid meter stale",
        description="no reading for 6 s",
        starts_at_s=starts_at_s,
        ends_at_s=ends_at_s,
        extra=(("age_s", "6.0"),),
    )


def test_storage_alert_round_trip_ack_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    db = Database(path)
    store = AlertStore(db)
    a = _alert("a1", 100.0)
    assert store.upsert(a) == a
    store.upsert(_alert("a2", 50.0, 80.0))
    assert store.active() == [a]
    acked = store.acknowledge("a1", "tech1", 120.0)
    assert acked.acknowledged_by == "tech1" and acked.acknowledged_at_s == 120.0
    assert store.acknowledge("a1", "tech2", 130.0).acknowledged_by == "tech1"
    # The rule engine resolves the alert without knowing of the ack: the ack stays.
    resolved = store.upsert(_alert("a1", 100.0, 200.0))
    assert resolved.ends_at_s == 200.0 and resolved.acknowledged_by == "tech1"
    with pytest.raises(NotFoundError):
        store.acknowledge("nope", "x", 1.0)
    db.close()

    db = Database(path)
    store = AlertStore(db)
    assert store.active() == []
    assert store.get("a1") == resolved
    assert store.get("zz") is None
    assert [x.alert_id for x in store.history(0.0, 1000.0)] == ["a1", "a2"]
    assert [x.alert_id for x in store.history(85.0, 1000.0)] == ["a1"]
    assert [x.alert_id for x in store.history(0.0, 1000.0, limit=1)] == ["a1"]
    db.close()


def test_storage_outbox_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    db = Database(path)
    store = AlertStore(db)
    store.upsert(_alert("a1", 100.0))
    i1 = store.enqueue("webhook", "a1", '{"status": "firing"}', 100.0, dedupe_key="a1:firing")
    i2 = store.enqueue("mqtt", "a1", '{"status": "firing"}', 100.0)
    # The engine re-evaluates after a restart and enqueues the same notification: no repeat.
    assert store.enqueue("webhook", "a1", '{"status": "firing"}', 101.0, "a1:firing") == i1
    with pytest.raises(StorageError, match="not JSON"):
        store.enqueue("webhook", "a1", "{broken")
    with pytest.raises(StorageError, match="FOREIGN KEY"):
        store.enqueue("webhook", "no-such-alert", "{}")
    assert [x.outbox_id for x in store.due("webhook", 100.0)] == [i1]
    assert store.due("webhook", 99.0) == []
    # The webhook is down: the item waits and is retried later.
    store.mark_failed(i1, next_attempt_s=160.0, error="connection refused")
    assert store.due("webhook", 150.0) == []
    db.close()

    db = Database(path)  # restart while the channel is down
    store = AlertStore(db)
    assert store.pending_count() == 2
    (item,) = store.due("webhook", 160.0)
    assert item.outbox_id == i1 and item.attempts == 1 and item.last_error == "connection refused"
    assert item.payload_json == '{"status": "firing"}'
    store.mark_sent(i1, at_s=161.0)
    store.mark_sent(i2, at_s=161.0)
    store.mark_failed(i1, 999.0)  # a late failure report does not resurrect a sent item
    assert store.due("webhook", 10_000.0) == [] and store.pending_count() == 0
    with pytest.raises(NotFoundError):
        store.mark_sent(12345)
    assert store.prune_sent(before_s=200.0) == 2
    db.close()
