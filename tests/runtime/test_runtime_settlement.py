"""The site's settlement keeper: closes each hour with its award and stores it, seconds over
from the compliance minutes, the interval in progress survives a restart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from minerd.model import (
    ComplianceRecord,
    EnergyAward,
    FleetSnapshot,
    MeterReading,
    MeterRole,
    MeterStatus,
    QuotaSource,
    SettlementRecord,
)
from minerd.runtime.settlement import SettlementKeeper
from minerd.storage import Database, Stores

ALMATY = ZoneInfo("Asia/Almaty")
START_S = 1_800_000_000.0  # 2027-01-15T08:00Z = 13:00 in Almaty: an interval start
H = 3600.0


@dataclass(frozen=True)
class Result:
    snapshot: FleetSnapshot
    compliance_minutes: tuple[ComplianceRecord, ...] = ()


def snap(t_s: float, kw: float, register_kwh: float | None, fresh: bool = True) -> FleetSnapshot:
    reading = MeterReading("grid", t_s, kw * 1000.0, energy_import_kwh=register_kwh)
    meter = MeterStatus("grid", MeterRole.GRID, "site", reading, fresh, 0.0)
    return FleetSnapshot(t_s, (), (meter,))


def minute(start_s: float, seconds_over: float) -> ComplianceRecord:
    return ComplianceRecord(start_s, 60.0, 900.0, 1000.0, 0.0, seconds_over, 0.0, 60)


def feed(keeper: SettlementKeeper, from_s: float, to_s: float, kw: float, reg0: float) -> None:
    t = from_s
    while t <= to_s:
        minutes = (minute(t - 60.0, 5.0),) if t > START_S and (t - START_S) % 60 == 0 else ()
        reg = reg0 + kw * (t - START_S) / H
        keeper.on_cycle(Result(snap(t, kw, reg), minutes))
        t += 10.0


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return Stores.open(Database(tmp_path / "s.sqlite"))


def award(energy_kwh: float) -> EnergyAward:
    return EnergyAward("k-13", START_S, START_S + H, energy_kwh, QuotaSource.API, 0.0, "grid")


def test_keeper_closes_the_hour_with_its_award(stores: Stores) -> None:
    stores.awards.put([award(810.0)], "grid", 0.0)
    keeper = SettlementKeeper(stores, H, ALMATY)
    closed: list[SettlementRecord] = []
    keeper.on_closed.append(closed.append)
    feed(keeper, START_S, START_S + H + 10, 800.0, 5000.0)
    assert len(closed) == 1
    r = closed[0]
    assert (r.interval_start_s, r.interval_s) == (START_S, H)
    assert r.imported_kwh == pytest.approx(800.0)
    assert r.register_kwh == pytest.approx(800.0)
    assert (r.awarded_kwh, r.award_id) == (810.0, "k-13")
    assert r.seconds_over == pytest.approx(60 * 5.0)  # 60 minutes closed, 5 s over in each
    assert r.deviation_pct == pytest.approx(-100 * 10 / 810)
    assert stores.awards.settlements(START_S, START_S + H) == [r]
    now = keeper.current(START_S + H + 10)
    assert now.start_s == START_S + H and now.award is None


def test_keeper_restart_mid_interval_keeps_the_energy_so_far(tmp_path: Path) -> None:
    db = Database(tmp_path / "r.sqlite")
    stores = Stores.open(db)
    stores.awards.put([award(1000.0)], "grid", 0.0)
    keeper = SettlementKeeper(stores, H, ALMATY)
    feed(keeper, START_S, START_S + 1800, 1000.0, 5000.0)
    keeper.save()
    half = keeper.current(START_S + 1800)
    assert half.imported_kwh == pytest.approx(500.0)
    assert half.remaining_kwh == pytest.approx(500.0)
    db.close()

    # down for 5 minutes; the register counts what the site drew meanwhile
    stores = Stores.open(Database(tmp_path / "r.sqlite"))
    keeper = SettlementKeeper(stores, H, ALMATY)
    keeper.restore(START_S + 2100)
    closed: list[SettlementRecord] = []
    keeper.on_closed.append(closed.append)
    feed(keeper, START_S + 2100, START_S + H + 10, 1000.0, 5000.0)
    r = closed[0]
    assert r.imported_kwh == pytest.approx(1000.0)  # from the register, over the gap
    assert r.integrated_kwh < 1000.0 - 60.0  # the integral misses most of the 300 s down
    assert "gap" in r.note
    assert r.awarded_kwh == 1000.0


def test_keeper_ignores_stale_meter_and_a_stale_saved_interval(stores: Stores) -> None:
    keeper = SettlementKeeper(stores, H, ALMATY)
    keeper.on_cycle(Result(snap(START_S, 900.0, None, fresh=False)))
    assert keeper.current(START_S).imported_kwh == 0.0
    feed(keeper, START_S, START_S + 600, 600.0, 0.0)
    keeper.save()
    later = SettlementKeeper(stores, H, ALMATY)
    later.restore(START_S + 2 * H)  # the saved interval is over: not restored
    assert later.current(START_S + 2 * H).imported_kwh == 0.0


def test_quarter_hour_awards_settle_in_their_hour(stores: Stores) -> None:
    quarters = [
        EnergyAward(
            f"q-{i}",
            START_S + i * 900,
            START_S + (i + 1) * 900,
            200.0,
            QuotaSource.API,
            0.0,
            "grid",
        )
        for i in range(4)
    ]
    stores.awards.put(quarters, "grid", 0.0)
    keeper = SettlementKeeper(stores, H, ALMATY)
    closed: list[SettlementRecord] = []
    keeper.on_closed.append(closed.append)
    feed(keeper, START_S, START_S + H + 10, 800.0, 5000.0)
    assert (closed[0].awarded_kwh, closed[0].award_id) == (800.0, None)
    assert closed[0].deviation_kwh == pytest.approx(0.0, abs=1e-6)


def test_samples_are_stamped_when_the_meter_was_read(stores: Stores) -> None:
    # The meter is read 2 s before each cycle. The site imports 1,000 kW in the first 60 s
    # interval, then 500 kW. Stamped at the cycle's time, the register carried to each
    # boundary fell short by the import over those 2 s: the first interval settled 15.97
    # of its 16.67 kWh.
    keeper = SettlementKeeper(stores, 60.0, ALMATY)
    closed: list[SettlementRecord] = []
    keeper.on_closed.append(closed.append)
    register_kwh = 100.0
    read_s = START_S
    while read_s <= START_S + 125.0:
        kw = 1000.0 if read_s < START_S + 60.0 else 500.0
        reading = MeterReading("grid", read_s, kw * 1000.0, energy_import_kwh=register_kwh)
        meter = MeterStatus("grid", MeterRole.GRID, "site", reading, True, 2.0)
        for cycle_s in (read_s + 2.0, read_s + 2.5):  # a second cycle sees the same reading
            keeper.on_cycle(Result(FleetSnapshot(cycle_s, (), (meter,))))
        register_kwh += kw * 5.0 / H
        read_s += 5.0
    assert [r.interval_start_s for r in closed] == [START_S, START_S + 60.0]
    assert closed[0].register_kwh == pytest.approx(1000.0 * 60.0 / H)
    assert closed[1].register_kwh == pytest.approx(500.0 * 60.0 / H)
    assert closed[1].imported_kwh == pytest.approx(500.0 * 60.0 / H)
    assert closed[1].samples == 12  # one per reading
