"""Use the limit (issue 19), full form: 1,000 LuxOS S19j Pro rigs under a day-ahead schedule of
four uneven blocks (60 %, 30 %, 75 %, 45 % of full load), judged by the simulator's truth once
each block has settled. Two runs: 5 % of the rigs offline (still drawing power) and 5 %
ignoring commands; then every rig healthy.

Targets: settled mean import >= 97 % of each block's limit (faulted) and >= 98.5 %
(healthy); settled maximum <= the limit; energy over the limit <= 0.1 % of the energy allowed.
The rigs run in two simulator worker processes; the daemon in this one, at real speed.
Prints each block with the daemon's gap breakdown (control.utilization terms, kW).
Run: .venv/bin/python benchmarks/bench_utilization.py [faulted|healthy]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "scenarios")]

from scenario_kit import Tuning  # noqa: E402
from targets import at_least, at_most, finish  # noqa: E402
from utilization_kit import Plan, run_plan  # noqa: E402

RIGS = 1000
# 1 % of the lowest block (30 % of about 3,300 kW): the sim's default margin (1 % of the
# nominal power, 31 kW) alone would be 3 % of that block.
TUNING = Tuning(
    ramp_up_kw_per_s=500.0, min_on_s=60.0, min_off_s=60.0, max_wakes_per_cycle=50, margin_kw=10.0
)
RUNS = {"faulted": (0.05, 0.97, 241), "healthy": (0.0, 0.985, 243)}


def main() -> int:
    only = set(sys.argv[1:])
    for name, (share, floor, octet) in RUNS.items():
        if only and name not in only:
            continue
        plan = Plan(
            rigs=RIGS,
            speed=1.0,
            block_s=100.0,
            settle_s=40.0,
            offline_fraction=share,
            ignoring_fraction=share,
            base_octet=octet,
            workers=2,
            tuning=TUNING,
        )
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="bench-utilization-") as tmp:
            result = asyncio.run(run_plan(plan, Path(tmp)))
        print(
            f"\n{name}: {RIGS} rigs, full load {result.full_kw:.0f} kW, "
            f"{len(result.faulted)} faulted, {time.monotonic() - started:.0f} s wall"
        )
        print(result.table(), flush=True)
        for i, b in enumerate(result.blocks):
            at_least(f"utilization.{name}.block{i}_{b.share:.0%}.used", 100 * b.used, 100 * floor)
            at_most(f"utilization.{name}.block{i}.max_over_limit_kw", b.max_kw - b.limit_kw, 0.0)
        at_most(f"utilization.{name}.energy_over_pct", 100 * result.energy_over_share, 0.1)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
