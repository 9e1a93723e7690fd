"""Builders for alert tests: rigs, meters and snapshots straight from the model types."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from minerd.alerts import AlertEngine, AlertThresholds, DeliverySettings, RuleTiming, SiteFacts
from minerd.clock import ManualClock
from minerd.model import (
    ControlMode,
    CurvePoint,
    FleetSnapshot,
    MeterReading,
    MeterRole,
    MeterStatus,
    PowerProfile,
    RigModel,
    RigProtocol,
    RigReading,
    RigState,
    RigStatus,
)
from minerd.storage import AlertStore, Database

SITE = "kz-alatau-1"

S19 = RigModel(
    name="test-s19",
    vendor="test",
    model="S19",
    nominal_power_w=3250.0,
    nominal_hashrate_ths=100.0,
    sleep_power_w=10.0,
    min_power_w=1500.0,
    max_power_w=3500.0,
    modes=frozenset({ControlMode.SLEEP_WAKE, ControlMode.POWER_TARGET, ControlMode.PROFILES}),
    profiles=(PowerProfile("eco", 2400.0, 80.0), PowerProfile("std", 3250.0, 100.0)),
    curve=(CurvePoint(1500.0, 55.0), CurvePoint(3250.0, 100.0), CurvePoint(3500.0, 104.0)),
    wake_time_s=10.0,
    sleep_time_s=5.0,
    chip_temp_derate_c=85.0,
    chip_temp_max_c=95.0,
    boards=3,
    fans=4,
    fan_rpm_nominal=6000,
)
MODELS = {S19.name: S19}


def rig(
    rid: str,
    container: str = "C1",
    *,
    t: float = 0.0,
    state: RigState = RigState.HASHING,
    hashrate_ths: float = 100.0,
    power_w: float = 3250.0,
    chip_temp_c: float | None = 70.0,
    fan_rpm: int | None = 5800,
    boards_ok: int = 3,
    fresh: bool = True,
    unresponsive: bool = False,
    maintenance: bool = False,
    profile: str | None = None,
) -> RigStatus:
    return RigStatus(
        rig_id=rid,
        model=S19.name,
        container=container,
        host="10.0.0.1",
        port=4028,
        protocol=RigProtocol.LUXOS,
        reading=RigReading(
            rig=rid,
            taken_at_s=t,
            state=state,
            reason="",
            hashrate_ths=hashrate_ths,
            power_w=power_w,
            chip_temp_max_c=chip_temp_c,
            fan_rpm_min=fan_rpm,
            boards_ok=boards_ok,
            boards_total=3,
            profile=profile,
            uptime_s=3600.0,
        ),
        fresh=fresh,
        maintenance=maintenance,
        unresponsive=unresponsive,
    )


def meter(
    name: str = "grid",
    *,
    t: float,
    power_w: float = 500_000.0,
    role: MeterRole = MeterRole.GRID,
    container: str = "",
    volts: tuple[float, float, float] = (230.0, 231.0, 229.0),
    amps: tuple[float, float, float] = (700.0, 720.0, 710.0),
    fresh: bool = True,
    error: str = "",
    energy_kwh: float | None = None,
) -> MeterStatus:
    reading = MeterReading(
        meter=name,
        taken_at_s=t,
        power_w=power_w,
        voltage_l1_v=volts[0],
        voltage_l2_v=volts[1],
        voltage_l3_v=volts[2],
        current_l1_a=amps[0],
        current_l2_a=amps[1],
        current_l3_a=amps[2],
        energy_import_kwh=energy_kwh if energy_kwh is not None else t / 10.0,
    )
    return MeterStatus(
        meter=name,
        role=role,
        container=container,
        reading=reading,
        fresh=fresh,
        age_s=0.0,
        error=error,
    )


def snap(t: float, rigs: list[RigStatus], meters: list[MeterStatus] | None = None) -> FleetSnapshot:
    ms = meters if meters is not None else [meter(t=t)]
    return FleetSnapshot(taken_at_s=t, rigs=tuple(rigs), meters=tuple(ms))


def retime(rs: list[RigStatus], t: float) -> list[RigStatus]:
    """The same rigs read again at t."""
    return [
        dataclasses.replace(r, reading=dataclasses.replace(r.reading, taken_at_s=t)) for r in rs
    ]


FACTS = SiteFacts(effective_limit_kw=1000.0)

FAST = {name: RuleTiming(10.0, 20.0) for name in (
    "RigOffline", "RigHashrateLow", "RigChipTempHigh", "RigFanFailure", "RigBoardDead",
    "RigIgnoresCommands", "MeterOffline", "MeterStale", "MeterVoltageOutOfRange",
    "MeterPhaseImbalance", "QuotaBreach", "SpoolFilling", "TsdbUnreachable",
)}  # fmt: skip


def make_engine(
    db_path: Path,
    clock: ManualClock,
    delivery: DeliverySettings | None = None,
    thresholds: AlertThresholds | None = None,
) -> tuple[AlertEngine, Database]:
    db = Database(db_path)
    store = AlertStore(db)
    engine = AlertEngine(
        SITE,
        store,
        MODELS,
        thresholds or AlertThresholds(timings=FAST),
        delivery or DeliverySettings(log=False),
        clock=clock,
        db=db,
    )
    return engine, db
