"""QuotaStore: idempotent add, withdraw, atomic schedule replacement, durability."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerd.errors import QuotaError, StorageError
from minerd.model import Quota, QuotaSource
from minerd.storage import Database, NotFoundError, QuotaStore


def _q(qid: str, limit_kw: float, start_s: float, end_s: float | None, **kw: object) -> Quota:
    base: dict[str, object] = {
        "source": QuotaSource.API,
        "issued_at_s": 100.0,
        "issued_by": "grid",
    }
    base.update(kw)
    return Quota(qid, limit_kw, start_s, end_s, **base)  # type: ignore[arg-type]


def test_storage_quota_round_trip_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    db = Database(path)
    store = QuotaStore(db)
    a = _q("a", 500.0, 1000.0, 2000.0, reference="DSO-1")
    b = _q("b", 300.0, 1500.0, None)
    assert store.add(a).created
    assert store.add(b, idempotency_key="k-b").created
    assert store.active_at(1200.0) == [a]
    assert store.active_at(1700.0) == [a, b]
    assert store.active_at(2500.0) == [b]
    assert store.active_at(999.0) == []
    db.close()

    db = Database(path)  # restart
    store = QuotaStore(db)
    assert store.all() == [a, b]
    assert store.find_by_key("k-b") == b
    assert store.find_by_key("nope") is None
    assert store.get("a") == a
    db.close()


def test_storage_quota_add_is_idempotent(tmp_path: Path) -> None:
    db = Database(tmp_path / "q.db")
    store = QuotaStore(db)
    first = _q("q1", 400.0, 10.0, 20.0, reference="R-7")
    assert store.add(first, idempotency_key="key-1").created
    # Same key, new server-side id: the stored quota comes back, nothing is added.
    replay = store.add(_q("q2", 400.0, 10.0, 20.0), idempotency_key="key-1")
    assert replay.created is False and replay.quota == first
    # Same reference without a key.
    assert store.add(_q("q3", 400.0, 10.0, 20.0, reference="R-7")).quota == first
    assert len(store.all()) == 1
    with pytest.raises(QuotaError, match=r"idempotency_key: 'key-1' was already used.*limit_kw"):
        store.add(_q("q4", 450.0, 10.0, 20.0), idempotency_key="key-1")
    with pytest.raises(QuotaError, match="reference"):
        store.add(_q("q5", 400.0, 10.0, 30.0, reference="R-7"))
    assert len(store.all()) == 1
    db.close()


def test_storage_quota_withdraw(tmp_path: Path) -> None:
    db = Database(tmp_path / "q.db")
    store = QuotaStore(db)
    store.add(_q("a", 500.0, 0.0, None))
    w = store.withdraw("a", at_s=50.0, by="operator1")
    assert w.withdrawn_at_s == 50.0
    assert store.withdraw("a", at_s=80.0, by="other").withdrawn_at_s == 50.0  # first one kept
    assert store.withdrawn_by("a") == "operator1"
    assert store.active_at(49.0) == [w]
    assert store.active_at(50.0) == []
    assert store.covering(0.0, 10.0) == [w]
    assert store.covering(60.0, 100.0) == []
    with pytest.raises(NotFoundError, match="no quota 'zzz'"):
        store.withdraw("zzz", at_s=1.0, by="x")
    db.close()


def _sched(qid: str, start_s: float, end_s: float, limit_kw: float = 100.0) -> Quota:
    return _q(qid, limit_kw, start_s, end_s, source=QuotaSource.SCHEDULE, issued_by="sched")


def test_storage_schedule_replacement(tmp_path: Path) -> None:
    db = Database(tmp_path / "q.db")
    store = QuotaStore(db)
    old = [_sched("s1", 0, 900), _sched("s2", 900, 1800), _sched("s3", 5000, 6000)]
    api = _q("api1", 700.0, 0.0, 3000.0)
    for q in [*old, api]:
        store.add(q)
    new = [_sched("n1", 600, 1200, 200.0), _sched("n2", 1200, 2400, 250.0)]
    result = store.replace_schedule(new, by="sched", at_s=500.0)
    assert {q.quota_id for q in result.withdrawn} == {"s1", "s2"}
    assert all(q.withdrawn_at_s == 500.0 for q in result.withdrawn)
    assert result.added == tuple(new)
    by_id = {q.quota_id: q for q in store.all()}
    assert by_id["s1"].withdrawn_at_s == 500.0 and by_id["s2"].withdrawn_at_s == 500.0
    assert by_id["s3"].withdrawn_at_s is None  # outside the new span
    assert by_id["api1"].withdrawn_at_s is None  # not a schedule quota
    assert [q.quota_id for q in store.active_at(1000.0)] == ["api1", "n1"]
    db.close()


def test_storage_schedule_replacement_is_atomic(tmp_path: Path) -> None:
    db = Database(tmp_path / "q.db")
    store = QuotaStore(db)
    store.add(_sched("s1", 0, 900))
    store.add(_q("taken", 1.0, 0.0, 1.0))
    before = store.all()
    # The second block collides with an existing quota id: the insert fails mid-way.
    blocks = [_sched("n1", 0, 600), _sched("taken", 600, 1200)]
    with pytest.raises(StorageError, match="replace schedule failed: UNIQUE"):
        store.replace_schedule(blocks, by="sched", at_s=10.0)
    assert store.all() == before
    assert store.get("n1") is None
    db.close()
