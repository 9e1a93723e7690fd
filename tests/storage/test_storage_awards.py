"""AwardStore: idempotency by award id and by key, latest per interval wins, restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerd.model import EnergyAward, QuotaSource, SettlementRecord
from minerd.storage import AwardConflict, AwardStore, Database, NotFoundError, Stores
from minerd.storage.migrations import SCHEMA_VERSION, file_version

H = 3600.0


def _a(award_id: str, start_s: float, energy_kwh: float, **kw: object) -> EnergyAward:
    base: dict[str, object] = {
        "end_s": start_s + H,
        "source": QuotaSource.API,
        "issued_at_s": 100.0,
        "issued_by": "grid",
    }
    base.update(kw)
    return EnergyAward(award_id=award_id, start_s=start_s, energy_kwh=energy_kwh, **base)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> AwardStore:
    return AwardStore(Database(tmp_path / "a.db"))


def test_storage_award_same_id_same_content_is_a_replay(store: AwardStore) -> None:
    a = _a("m-1", 0.0, 42_000.0)
    first = store.put([a], "grid", 100.0)
    again = store.put([_a("m-1", 0.0, 42_000.0, issued_at_s=200.0)], "grid", 200.0)
    assert first.created == (True,) and first.changed
    assert again.created == (False,) and not again.changed
    assert again.awards == (a,)  # answered with what was stored first
    assert store.in_range(0.0, H) == [a]


def test_storage_award_same_id_other_content_is_a_conflict(store: AwardStore) -> None:
    store.put([_a("m-1", 0.0, 42_000.0)], "grid", 100.0)
    with pytest.raises(AwardConflict) as exc:
        store.put([_a("m-2", H, 1.0), _a("m-1", 0.0, 41_000.0)], "grid", 200.0)
    assert exc.value.field == "award_id"
    assert "42 MWh, not 41 MWh" in exc.value.message
    # nothing of the batch was stored
    assert store.get("m-2") is None
    assert [x.energy_kwh for x in store.in_range(0.0, 2 * H)] == [42_000.0]


def test_storage_award_later_issue_replaces_earlier_for_its_interval(store: AwardStore) -> None:
    store.put([_a("m-1", 0.0, 42_000.0), _a("m-2", H, 10_000.0)], "grid", 100.0)
    out = store.put([_a("m-3", 0.0, 40_000.0, issued_at_s=150.0)], "grid", 150.0)
    assert [a.award_id for a in out.superseded] == ["m-1"]
    assert [a.award_id for a in store.in_range(0.0, 2 * H)] == ["m-3", "m-2"]
    assert store.at(10.0) is not None and store.at(10.0).energy_kwh == 40_000.0  # type: ignore[union-attr]
    hist = store.history(0.0, H)
    assert [(a.award_id, a.withdrawn_at_s) for a in hist] == [("m-1", 150.0), ("m-3", None)]
    # a late duplicate of the replaced award changes nothing
    late = store.put([_a("m-1", 0.0, 42_000.0)], "grid", 160.0)
    assert late.created == (False,)
    assert store.at(10.0).award_id == "m-3"  # type: ignore[union-attr]


def test_storage_award_generated_ids_replay_by_interval(store: AwardStore) -> None:
    store.put([_a("g-1", 0.0, 5_000.0)], "grid", 100.0, generated_ids=frozenset({"g-1"}))
    same = store.put([_a("g-2", 0.0, 5_000.0)], "grid", 110.0, generated_ids=frozenset({"g-2"}))
    assert same.created == (False,) and same.awards[0].award_id == "g-1"
    other = store.put([_a("g-3", 0.0, 6_000.0)], "grid", 120.0, generated_ids=frozenset({"g-3"}))
    assert other.created == (True,)
    assert store.at(0.0).award_id == "g-3"  # type: ignore[union-attr]


def test_storage_award_idempotency_key(store: AwardStore) -> None:
    batch = [_a("g-1", 0.0, 5_000.0), _a("g-2", H, 6_000.0)]
    ids = frozenset({"g-1", "g-2"})
    first = store.put(batch, "grid", 100.0, idempotency_key="k1", generated_ids=ids)
    # the same request again: new generated ids, same content, same key
    batch2 = [_a("g-8", 0.0, 5_000.0), _a("g-9", H, 6_000.0)]
    again = store.put(
        batch2, "grid", 200.0, idempotency_key="k1", generated_ids=frozenset({"g-8", "g-9"})
    )
    assert again.replayed_key and again.awards == first.awards and not again.changed
    with pytest.raises(AwardConflict) as exc:
        store.put([_a("g-7", 0.0, 1.0)], "grid", 300.0, idempotency_key="k1", generated_ids=ids)
    assert exc.value.field == "idempotency_key"


def test_storage_award_replace_span_and_withdraw(store: AwardStore) -> None:
    store.put([_a("d1-0", 0.0, 1.0), _a("d1-1", H, 2.0), _a("d1-2", 2 * H, 3.0)], "grid", 1.0)
    out = store.put([_a("d1-1b", H, 2.5)], "grid", 2.0, replace_span=(0.0, 3 * H))
    assert [a.award_id for a in out.superseded] == ["d1-1"]
    assert sorted(a.award_id for a in out.withdrawn) == ["d1-0", "d1-2"]
    assert [a.award_id for a in store.in_range(0.0, 3 * H)] == ["d1-1b"]
    w = store.withdraw("d1-1b", 3.0, "grid")
    assert w.withdrawn_at_s == 3.0
    assert store.withdraw("d1-1b", 9.0, "grid").withdrawn_at_s == 3.0  # first one kept
    assert store.in_range(0.0, 3 * H) == []
    with pytest.raises(NotFoundError):
        store.withdraw("nope", 3.0, "grid")


def test_storage_awards_and_settlement_survive_restart(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    db = Database(path)
    stores = Stores.open(db)
    assert file_version(db) == SCHEMA_VERSION == 3
    a = _a("m-1", 0.0, 42_000.0, reference="KOREM-2026-11-30")
    stores.awards.put([a], "grid", 100.0, idempotency_key="k")
    rec = SettlementRecord(
        0.0, H, 41_900.0, 41_950.0, 41_900.0, 45_000.0, 12.0, H, 3600, 42_000.0, "m-1"
    )
    stores.awards.put_settlement(rec)
    db.close()

    db = Database(path)
    stores = Stores.open(db)
    assert stores.awards.in_range(0.0, H) == [a]
    assert stores.awards.settlements(0.0, H) == [rec]
    assert rec.deviation_kwh == pytest.approx(-100.0)
    assert rec.deviation_pct == pytest.approx(-100 * 100 / 42_000)
    again = stores.awards.put([a], "grid", 200.0, idempotency_key="k")
    assert again.replayed_key
    db.close()
