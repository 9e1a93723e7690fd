"""The real daemon on a 2,000-rig mixed fleet of every firmware family (issue 13, "Done when").

Fleet: scenario_kit.FLEET_SHARES scaled to 2,000 (LuxOS 400, stock Antminer 800, Vnish 400,
Whatsminer 200, Braiins OS+ 100, read-only cgminer 100); the simulator in 2 worker processes
(family servers on fixed ports of each rig's own address), the daemon in this process on the
simulator's clock at 1x; rigs read every 5 s, meter every 1 s, one control cycle per second.
Judged on the simulator's truth (site import), in simulated seconds. Three sites, one per row:
1. cut to 30 % from full load: under the new limit within the slowest commanded family's
   sleep time (stock, 45 s) plus 2 control cycles, and never back over it (75 s judged);
2. the same cut with 10 % of the rigs ignoring commands, spread over the commanded families:
   under the limit from twice the slowest sleep time + 10 s on (seen to disobey after its
   family's time, then others are shed), judged for 30 s more; time to first under printed;
3. the day-ahead schedule of test_scenario_mixed_fleet (24 blocks of 12 s) with 10 % of the
   rigs faulted at block 12: energy over the limit <= 0.1 % of the energy allowed.
Also checked: the commandable share of the fleet's power in /api/v1/site >= 90 %.
The short versions (80 and 60 rigs, 5x and 8x) are tests/scenarios/test_scenario_mixed_fleet.py.

Env: BENCH_MIXED_FLEET_RIGS (2000), BENCH_MIXED_FLEET_ROWS (cut,ignore,schedule).
Run: .venv/bin/python benchmarks/bench_mixed_fleet.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

from targets import at_least, at_most, finish

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "scenarios")]

from scenario_kit import (  # noqa: E402
    Running,
    Sample,
    Tuning,
    energy_over,
    fleet_counts,
    mixed_site_spec,
    running_site,
)
from test_scenario_mixed_fleet import (  # noqa: E402
    BLOCK_S,
    SHAPE,
    SLOWEST_SLEEP_S,
    cut_to_30_percent,
    fault_rigs,
    ignoring_rigs,
    site_api,
)

from minerd.model import Quota, QuotaSource  # noqa: E402

RIGS = int(os.environ.get("BENCH_MIXED_FLEET_RIGS", "2000"))
ROWS = os.environ.get("BENCH_MIXED_FLEET_ROWS", "cut,ignore,schedule").split(",")
SPEED = 1.0
WORKERS = 2
CYCLE_S = 1.0
# Reads every 5 s (2,000 rigs: 400 reads/s); ramp and wakes sized to the site (~6 MW).
TUNING = Tuning(
    rig_interval_s=5.0,
    rig_timeout_s=5.0,
    ramp_up_kw_per_s=RIGS * 0.05,
    max_wakes_per_cycle=max(50, RIGS // 10),
)
OCTETS = {"cut": 186, "ignore": 187, "schedule": 188}


def worst_over(samples: list[Sample], limit_kw: float) -> float:
    return max((s.power_kw - limit_kw for s in samples), default=float("-inf"))


async def row_cut(tmp: Path) -> None:
    spec = mixed_site_spec(fleet_counts(RIGS), OCTETS["cut"], SPEED, workers=WORKERS)
    async with running_site(spec, tmp, TUNING) as run:
        await run.sleep_sim(3.0)
        site = await site_api(run)
        share = float(str(site["commandable_share"]))
        print(
            f"/api/v1/site: commandable {100 * share:.1f} % of the fleet's nominal power, "
            f"{site['commandable_power_kw']} of {site['rig_power_kw']} kW drawn now",
            flush=True,
        )
        at_least("commandable share of the fleet's power", 100 * share, 90.0, " %")
        full_kw, limit_kw, t_cut = await cut_to_30_percent(run)
        await run.sleep_sim(SLOWEST_SLEEP_S + 30.0)
        bound_s = SLOWEST_SLEEP_S + 2 * CYCLE_S
        under_s = first_under_s(run, limit_kw, t_cut)
        after = run.recorder.between(t_cut + under_s)
        over_kw = worst_over(after, limit_kw)
        print(
            f"cut {full_kw:.0f} -> {limit_kw:.0f} kW: under after {under_s:.1f} s (bound "
            f"{bound_s:.0f} s: stock sleep + 2 cycles), worst afterwards {over_kw:+.1f} kW "
            f"against the limit",
            flush=True,
        )
        at_most("cut to 30 %: under the limit after (sim s)", under_s, bound_s, " s")
        at_most("cut to 30 %: worst over the limit afterwards", over_kw, 0.0, " kW")
        if over_kw > 0.0:
            print(trace_at_worst(run, after, limit_kw), flush=True)


async def row_ignore(tmp: Path) -> None:
    spec = mixed_site_spec(fleet_counts(RIGS), OCTETS["ignore"], SPEED, workers=WORKERS)
    async with running_site(spec, tmp, TUNING) as run:
        ignoring = ignoring_rigs(run, 0.10)
        for rig_id in ignoring:
            await run.sim.inject(rig_id, "ignores_commands")
        full_kw, limit_kw, t_cut = await cut_to_30_percent(run)
        settle_s = 2 * SLOWEST_SLEEP_S + 10.0
        await run.sleep_sim(settle_s + 30.0)
        under_s = first_under_s(run, limit_kw, t_cut)
        late = run.recorder.between(t_cut + settle_s)
        over_kw = worst_over(late, limit_kw)
        print(
            f"cut {full_kw:.0f} -> {limit_kw:.0f} kW with {len(ignoring)} rigs ignoring: first "
            f"under after {under_s:.1f} s; from {settle_s:.0f} s on worst {over_kw:+.1f} kW "
            f"against the limit, mean {run.recorder.mean_kw(t_cut + settle_s, run.now_s()):.0f}"
            " kW",
            flush=True,
        )
        at_most("10 % ignoring: worst over the limit after settling", over_kw, 0.0, " kW")
        if over_kw > 0.0:
            print(trace_at_worst(run, late, limit_kw), flush=True)


async def row_schedule(tmp: Path) -> None:
    spec = mixed_site_spec(fleet_counts(RIGS), OCTETS["schedule"], SPEED, workers=WORKERS)
    async with running_site(spec, tmp, TUNING) as run:
        faults = fault_rigs(run, share=0.10)
        await run.sleep_sim(3.0)
        full_kw = await run.truth_kw()
        issued = run.now_s()
        start = issued + 10.0
        blocks = [
            Quota(
                quota_id=f"block-{i:02d}-{uuid.uuid4().hex[:6]}",
                limit_kw=round(share * full_kw, 1),
                start_s=start + i * BLOCK_S,
                end_s=start + (i + 1) * BLOCK_S,
                source=QuotaSource.SCHEDULE,
                issued_at_s=issued,
                issued_by="bench-grid",
                reference=f"day-ahead block {i}",
            )
            for i, share in enumerate(SHAPE)
        ]
        run.site.stores.quotas.replace_schedule(blocks, by="bench-grid")
        run.site.quotas_changed()
        end = start + len(SHAPE) * BLOCK_S
        await run.sleep_sim(start + 12 * BLOCK_S - run.now_s())
        for rig_id, fault in faults:
            await run.sim.inject(rig_id, fault)
        await run.sleep_sim(end - run.now_s() + 0.5)

        def limit_at(t_s: float) -> float:
            return blocks[min(len(blocks) - 1, int((t_s - start) // BLOCK_S))].limit_kw

        samples = run.recorder.between(start, end)
        over_kws, allowed_kws = energy_over(samples, limit_at)
        used = sum(s.power_kw for s in samples) / sum(limit_at(s.t_s) for s in samples)
        worst = max(samples, key=lambda s: s.power_kw - limit_at(s.t_s))
        print(
            f"schedule {len(blocks)} x {BLOCK_S:.0f} s, {len(faults)} rigs faulted at block 12: "
            f"energy over {over_kws / 3600:.3f} kWh of {allowed_kws / 3600:.1f} kWh allowed = "
            f"{100 * over_kws / allowed_kws:.4f} %, worst excess "
            f"{worst.power_kw - limit_at(worst.t_s):+.1f} kW, import / limit {100 * used:.1f} %",
            flush=True,
        )
        at_most("schedule: energy over / allowed", 100 * over_kws / allowed_kws, 0.1, " %")


def first_under_s(run: Running, limit_kw: float, t_cut: float) -> float:
    try:
        return run.recorder.first_under(limit_kw, t_cut) - t_cut
    except AssertionError:
        return float("inf")


def trace_at_worst(run: Running, samples: list[Sample], limit_kw: float) -> str:
    worst = max(samples, key=lambda s: s.power_kw)
    return f"over {limit_kw:.0f} kW at t={worst.t_s:.1f}:\n" + run.trace(
        worst.t_s - 20.0, worst.t_s + 2.0
    )


async def main_async() -> None:
    counts = fleet_counts(RIGS)
    print(
        f"mixed fleet of {RIGS} rigs: " + ", ".join(f"{f.value} {n}" for f, n in counts.items()),
        flush=True,
    )
    rows = {"cut": row_cut, "ignore": row_ignore, "schedule": row_schedule}
    for name in ROWS:
        with tempfile.TemporaryDirectory(prefix=f"bench-mixed-{name}-") as tmp:
            await rows[name](Path(tmp))


def main() -> int:
    asyncio.run(main_async())
    return finish()


if __name__ == "__main__":
    sys.exit(main())
