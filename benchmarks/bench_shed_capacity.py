"""Shed capacity (control.shed_capacity) at 50,000 rigs: its cost inside one control cycle.

The cycle computes it every interval, so it must not add measurable cost: measured alone on
the cycle's own snapshot, against the steady-state cycle it is part of (bench_cycle's site,
mixed over firmware families so the per-family classes are exercised), and against the
least any per-snapshot figure costs: the sinks' C-level fleet sums (sinks.events.fleet_totals)
on the same snapshot, measured in the same run.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench_cycle import RIGS, build, feed_meter
from targets import at_most, finish

from minerd.control.shed_capacity import shed_capacity
from minerd.model import RigModel, RigProtocol
from minerd.sinks.events import fleet_totals

FAMILIES = (RigProtocol.LUXOS, RigProtocol.STOCK, RigProtocol.VNISH, RigProtocol.BRAIINS)


async def run() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        site, clock = build(Path(tmp))
        fleet = site.fleet
        # Rigs spread over families; one model object per (model, family), shared by its
        # rigs, as the assembly builds them (the planner's classes stay few).
        models = site.cycle.models
        shared: dict[tuple[str, RigProtocol], RigModel] = {}
        for i, info in enumerate(fleet.rig_infos):
            fam = FAMILIES[i % len(FAMILIES)]
            base = models[info.rig_id]
            key = (base.name, fam)
            if key not in shared:
                shared[key] = base.for_family(fam)
            models[info.rig_id] = shared[key]
        fleet.rig_infos = tuple(
            replace(info, protocol=FAMILIES[i % len(FAMILIES)])
            for i, info in enumerate(fleet.rig_infos)
        )
        gc.freeze()
        cycle = site.cycle
        cycle.restore()
        durations: list[float] = []
        for _ in range(25):
            feed_meter(site, clock)
            t0 = time.perf_counter()
            cycle.run_once()
            durations.append(time.perf_counter() - t0)
            clock.advance(1.0)
        cycle_s = statistics.median(durations[10:])
        last = cycle.last
        assert last is not None and last.shed is not None
        snap = last.snapshot
        aux = site.config.loop.aux_fraction
        shed_runs: list[float] = []
        for _ in range(15):
            t0 = time.perf_counter()
            cap = shed_capacity(snap.rigs, models, aux_fraction=aux)
            shed_runs.append(time.perf_counter() - t0)
        shed_s = statistics.median(shed_runs)
        base_runs: list[float] = []
        for _ in range(15):
            t0 = time.perf_counter()
            fleet_totals(snap.rigs)
            base_runs.append(time.perf_counter() - t0)
        base_s = statistics.median(base_runs)
        print(f"rigs: {RIGS}, classes: {len(cap.classes)}")
        print("shed within 5/60/600 s: " + " / ".join(f"{kw:,.0f} kW" for kw in cap.site_kw))
        print(f"steady-state cycle median: {cycle_s * 1000:.1f} ms")
        print(f"shed capacity median: {shed_s * 1000:.2f} ms ({shed_s / cycle_s:.1%} of a cycle)")
        print(f"baseline fleet_totals median: {base_s * 1000:.2f} ms")
        at_most("shed_capacity_vs_fleet_totals", shed_s / base_s, 2.0)
        at_most("shed_capacity_share_of_cycle", shed_s / cycle_s, 0.10)
        site.stores.db.close()
    return finish()


def main() -> int:
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
