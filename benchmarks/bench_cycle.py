"""One control cycle at 50,000 rigs: snapshot, limit, loop, plan, diff, verify, journal.

No network: readings are fed straight into FleetState, so this measures the daemon's own
per-cycle cost, which must stay well under the 1 s control interval. Baseline in the same
run: building one frozen RigSetpoint per rig (the least any planner must do).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

from minerd.clock import ManualClock
from minerd.control.loop import LoopConfig
from minerd.control.planner import PlanConstraints
from minerd.model import (
    MeterReading,
    MeterRole,
    RigProtocol,
    RigReading,
    RigSetpoint,
    RigState,
)
from minerd.profiles import load_rig_model
from minerd.runtime.cycle import CycleConfig
from minerd.runtime.devices import MeterInfo, RigInfo
from minerd.runtime.site import Site
from minerd.storage import Database, Stores

RIGS = 50_000
MODELS = ("bitmain-s19jpro", "bitmain-s21", "microbt-m50s")


class _NoDevice:
    """Never read or commanded: the poller and executor are not started here."""

    def __init__(self, name: str) -> None:
        self.rig_id = self.name = name


def build(tmp: Path) -> tuple[Site, ManualClock]:
    models = {name: load_rig_model(name) for name in MODELS}
    infos = [
        RigInfo(
            rig_id=f"r{i:05d}",
            model=MODELS[i % 3],
            container=f"c{i // 250:03d}",
            host=f"127.{1 + i // 62500}.{(i // 250) % 250}.{i % 250 + 1}",
            port=4028,
            protocol=RigProtocol.LUXOS,
            interval_s=30.0,
            timeout_s=3.0,
            stale_after_s=95.0,
        )
        for i in range(RIGS)
    ]
    meter = MeterInfo("grid", MeterRole.GRID, "", "tcp://127.0.0.1:5020", 1.0, 0.5, 5.0)
    clock = ManualClock()
    stores = Stores.open(Database(tmp / "bench.sqlite"))
    nominal_kw = sum(models[i.model].nominal_power_w for i in infos) / 1000
    site = Site(
        rig_infos=infos,
        rigs=[_NoDevice(i.rig_id) for i in infos],  # type: ignore[misc]
        models={i.rig_id: models[i.model] for i in infos},
        meter_infos=[meter],
        meters=[_NoDevice("grid")],  # type: ignore[list-item]
        stores=stores,
        clock=clock,
        config=CycleConfig(
            site="bench",
            contracted_limit_kw=nominal_kw * 1.1,
            failsafe_limit_kw=nominal_kw * 0.3,
            settlement_interval_s=900.0,
            loop=LoopConfig(
                margin_kw=100.0,
                aux_base_kw=50.0,
                aux_fraction=0.06,
                ramp_up_kw_per_s=2000.0,
                failsafe_limit_kw=nominal_kw * 0.3,
            ),
            constraints=PlanConstraints(min_on_s=60, min_off_s=60, max_wakes_per_cycle=500),
            warmup_s=0.0,
        ),
    )
    now = clock.now_s()
    for i, info in enumerate(infos):
        m = models[info.model]
        site.fleet.update_rig(
            i,
            RigReading(
                rig=info.rig_id,
                taken_at_s=now,
                state=RigState.HASHING,
                reason="",
                hashrate_ths=m.nominal_hashrate_ths,
                power_w=m.nominal_power_w,
                boards_ok=3,
                boards_total=3,
                chip_temp_max_c=70.0,
            ),
        )
    return site, clock


def feed_meter(site: Site, clock: ManualClock) -> None:
    last = site.cycle.last
    rig_w = last.plan.planned_power_w if last and last.plan else site.fleet.snapshot(0).rig_power_w
    site.fleet.update_meter(MeterReading("grid", clock.now_s(), rig_w * 1.06 + 50_000))


async def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        site, clock = build(Path(tmp))
        gc.freeze()
        cycle = site.cycle
        cycle.restore()
        durations: list[float] = []
        # A limit cut to 30 % at cycle 5, then steady state.
        for n in range(30):
            if n == 5:
                cap = site.config.contracted_limit_kw * 0.3
                cycle.set_operator_cap(cap)
            feed_meter(site, clock)
            t0 = time.perf_counter()
            result = cycle.run_once()
            durations.append(time.perf_counter() - t0)
            if n in (0, 5, 6, 29):
                d = result.dispatch
                print(
                    f"cycle {n:2d}: {durations[-1] * 1000:7.1f} ms, "
                    f"budget {result.decision.rig_budget_w / 1e6:7.2f} MW, "
                    f"commands {len(d.shed)} shed / {len(d.raise_)} raise"
                )
            clock.advance(1.0)
        t0 = time.perf_counter()
        _ = [RigSetpoint(f"r{i:05d}", True, 3000.0, None, "x") for i in range(RIGS)]
        baseline_s = time.perf_counter() - t0
        steady = durations[10:]
        med = statistics.median(steady)
        print(f"rigs: {RIGS}")
        print(f"steady-state cycle median: {med * 1000:.1f} ms (max {max(steady) * 1000:.1f} ms)")
        print(f"cut cycle (shed 70 %): {durations[5] * 1000:.1f} ms")
        print(f"baseline: {RIGS} RigSetpoint objects: {baseline_s * 1000:.1f} ms")
        print(f"ratio steady cycle / baseline: {med / baseline_s:.2f}")
        print(f"share of a 1 s control interval: {med:.1%}")
        site.stores.db.close()


def main() -> int:
    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
