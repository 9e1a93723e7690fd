"""Model values for the sink tests and the sink benchmark."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from waiting import wait_until as wait_until  # shared by the sink tests

from minerd.clock import SystemClock
from minerd.model import (
    EffectiveLimit,
    FleetSnapshot,
    MeterReading,
    MeterRole,
    MeterStatus,
    RigProtocol,
    RigReading,
    RigState,
    RigStatus,
)
from minerd.sinks import SinkHub
from minerd.storage.db import Database
from minerd.storage.spool import TelemetrySpool

# Recent: VictoriaMetrics refuses samples far from now (retention, max future time).
T0_S = float(int(SystemClock().now_s()) - 3600)
LIMIT = EffectiveLimit(limit_kw=1000.0, origin="quota", quota_id="q-1")


def make_rigs(n: int, t_s: float, *, power_w: float = 3250.0) -> tuple[RigStatus, ...]:
    states = (RigState.HASHING, RigState.HASHING, RigState.HASHING, RigState.SLEEPING)
    rigs = []
    for i in range(n):
        state = states[i % len(states)]
        hashing = state is RigState.HASHING
        reading = RigReading(
            rig=f"rig-{i:05d}",
            taken_at_s=t_s,
            state=state,
            reason="" if hashing else "asleep",
            hashrate_ths=100.0 + i % 7 if hashing else 0.0,
            power_w=power_w if hashing else 15.0,
            chip_temp_max_c=70.0 + i % 10 if hashing else None,
            fan_rpm_min=4800 + i % 100 if hashing else None,
            profile="stock" if hashing else None,
        )
        rigs.append(
            RigStatus(
                rig_id=reading.rig,
                model="bitmain-s19jpro",
                container=f"C{i // 200:03d}",
                host=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                port=4028,
                protocol=RigProtocol.LUXOS,
                reading=reading,
                fresh=True,
            )
        )
    return tuple(rigs)


def make_snapshot(
    t_s: float, n_rigs: int = 4, *, grid_w: float = 500_000.0, rigs: tuple[RigStatus, ...] = ()
) -> FleetSnapshot:
    meter = MeterStatus(
        meter="grid main",
        role=MeterRole.GRID,
        container="",
        reading=MeterReading(
            meter="grid main",
            taken_at_s=t_s,
            power_w=grid_w,
            voltage_l1_v=230.5,
            voltage_l2_v=231.0,
            voltage_l3_v=229.5,
            current_l1_a=700.0,
            current_l2_a=710.0,
            current_l3_a=705.0,
            energy_import_kwh=123456.5,
        ),
        fresh=True,
        age_s=0.2,
    )
    return FleetSnapshot(taken_at_s=t_s, rigs=rigs or make_rigs(n_rigs, t_s), meters=(meter,))


@contextlib.asynccontextmanager
async def running(hub: SinkHub) -> AsyncIterator[SinkHub]:
    """Run the hub's sinks in a task for the duration of the block, then stop them."""
    task = asyncio.create_task(hub.run())
    try:
        yield hub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def open_spool(path: Path, max_points: int = 1_000_000, sink: str = "influx") -> TelemetrySpool:
    return TelemetrySpool(Database(path), sink, max_points)
