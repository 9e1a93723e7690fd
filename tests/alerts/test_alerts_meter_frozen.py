"""A grid meter that answers with the same values every time fires MeterFrozen, the alert
docs/alerts.md lists for it, not MeterOffline: the real FleetState classifies it (it goes
stale with a "frozen" error) and the alert engine reads that snapshot (issue 18)."""

from __future__ import annotations

from pathlib import Path

from alerts_helpers import FACTS, make_engine, rig

from minerd.alerts import AlertChange, ChangeKind
from minerd.clock import ManualClock
from minerd.model import MeterReading, MeterRole, Severity
from minerd.runtime.devices import MeterInfo
from minerd.runtime.fleet import FleetState

T0 = 1_800_000_000.0
STALE_AFTER_S = 5.0


def grid_reading(t: float, power_w: float, energy_kwh: float) -> MeterReading:
    return MeterReading(
        meter="grid-main",
        taken_at_s=t,
        power_w=power_w,
        voltage_l1_v=230.0,
        voltage_l2_v=231.0,
        voltage_l3_v=229.0,
        energy_import_kwh=energy_kwh,
    )


def test_a_frozen_grid_meter_fires_meter_frozen_not_meter_offline(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    info = MeterInfo("grid-main", MeterRole.GRID, "", "tcp://127.0.0.1:5020", 1.0, 0.5, 5.0)
    fleet = FleetState([], [info])
    changes: list[AlertChange] = []
    for second in range(40):  # live for 5 s, then the gateway repeats its last answer
        clock.advance(1.0)
        t = clock.now_s()
        if second < 5:
            fleet.update_meter(grid_reading(t, 500_000.0 + second, T0 + second))
        else:
            fleet.update_meter(grid_reading(t, 500_004.0, T0 + 4))
        snapshot = fleet.snapshot(t)
        rigs = tuple(rig(f"r{i}", t=t) for i in range(3))
        snapshot = type(snapshot)(snapshot.taken_at_s, rigs, snapshot.meters)
        changes += engine.evaluate(snapshot, FACTS, t)
    (grid,) = snapshot.meters
    assert not grid.fresh and grid.error.startswith("frozen")  # what the controller sees
    fired = [(c.alert.rule, c.alert.severity) for c in changes if c.kind is ChangeKind.FIRED]
    assert fired == [("MeterFrozen", Severity.CRITICAL)]
    assert "identical values" in changes[0].alert.description
    db.close()
