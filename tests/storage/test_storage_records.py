"""AuditLog, ComplianceStore, StateStore and MaintenanceStore round trips and durability."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minerd.errors import StorageError
from minerd.model import ComplianceRecord
from minerd.storage import Database, Stores


def test_storage_audit_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = Database(path)
    s = Stores.open(db)
    e1 = s.audit.record(10.0, "grid-dso", "quota.create", "q1", json.dumps({"limit_kw": 500}))
    s.audit.record(20.0, "op1", "operator_cap.set", "", '{"cap_kw": 800}')
    s.audit.record(30.0, "op1", "maintenance.on", "rig-7")
    with pytest.raises(StorageError, match="detail is not JSON"):
        s.audit.record(40.0, "op1", "x", "", "not json")
    db.close()

    s = Stores.open(Database(path))
    got = s.audit.query()
    assert [e.action for e in got] == ["maintenance.on", "operator_cap.set", "quota.create"]
    assert got[-1] == e1
    assert [e.at_s for e in s.audit.query(from_s=15.0, to_s=30.0)] == [20.0]
    assert [e.subject for e in s.audit.query(limit=1)] == ["rig-7"]
    assert [e.actor for e in s.audit.query(action="quota.create")] == ["grid-dso"]
    s.db.close()


def _rec(start_s: float, interval_s: float, avg_kw: float) -> ComplianceRecord:
    return ComplianceRecord(start_s, interval_s, avg_kw, 500.0, 0.0, 0.0, 0.0, 60)


def test_storage_compliance_upsert_and_query(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    s = Stores.open(Database(path))
    for k in range(30):
        s.compliance.upsert(_rec(60.0 * k, 60.0, 400.0 + k), "minute")
    s.compliance.upsert(_rec(0.0, 900.0, 410.0), "interval")
    s.compliance.upsert(_rec(0.0, 900.0, 420.0), "interval")  # recomputed: replaces
    s.compliance.upsert_many([_rec(900.0, 900.0, 430.0)], "interval")
    s.db.close()

    s = Stores.open(Database(path))
    minutes = s.compliance.query(120.0, 300.0, 60.0)
    assert [r.interval_start_s for r in minutes] == [120.0, 180.0, 240.0]
    assert minutes[0] == _rec(120.0, 60.0, 402.0)
    intervals = s.compliance.query(0.0, 10_000.0, 900.0, kind="interval")
    assert [r.avg_import_kw for r in intervals] == [420.0, 430.0]
    assert s.compliance.latest("minute") == _rec(1740.0, 60.0, 429.0)
    assert s.compliance.latest("interval") == _rec(900.0, 900.0, 430.0)
    s.db.close()


def test_storage_state_and_maintenance(tmp_path: Path) -> None:
    path = tmp_path / "st.db"
    s = Stores.open(Database(path))
    s.state.set("operator_cap_kw", 750.5)
    s.state.set("pi_integral_kw", -3)
    s.state.set("last_effective_limit", {"limit_kw": 500.0, "origin": "quota"})
    s.state.set("operator_cap_kw", 700.0)
    with pytest.raises(StorageError, match="not JSON-serialisable"):
        s.state.set("bad", float("nan"))
    assert s.maintenance.add("rig-2", "op1", 100.0, "fan swap").note == "fan swap"
    assert s.maintenance.add("rig-2", "op2", 200.0).by == "op1"  # first pin kept
    s.maintenance.add("rig-1", "op1", 150.0)
    s.db.close()

    s = Stores.open(Database(path))
    assert s.state.get_float("operator_cap_kw") == 700.0
    assert s.state.get_float("pi_integral_kw") == -3.0
    assert s.state.get_float("missing", 1.5) == 1.5
    assert s.state.get("last_effective_limit") == {"limit_kw": 500.0, "origin": "quota"}
    assert s.state.get("missing", "dflt") == "dflt"
    s.state.set("text", "abc")
    with pytest.raises(StorageError, match="not a number"):
        s.state.get_float("text")
    assert s.state.delete("text") and not s.state.delete("text")
    assert s.state.keys() == ["last_effective_limit", "operator_cap_kw", "pi_integral_kw"]
    assert s.maintenance.rig_ids() == frozenset({"rig-1", "rig-2"})
    assert [e.rig_id for e in s.maintenance.all()] == ["rig-1", "rig-2"]
    assert s.maintenance.remove("rig-2") and not s.maintenance.remove("rig-2")
    assert s.maintenance.rig_ids() == frozenset({"rig-1"})
    s.db.close()
