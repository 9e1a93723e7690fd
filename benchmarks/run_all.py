"""`make bench`: run every benchmarks/bench_*.py in its own process and print what each measured.

Each benchmark prints its figures and their ratios against a baseline measured in the same
run, because these machines are noisy and absolute numbers alone mislead. Targets are checked
with benchmarks/targets.py: a MISSED target makes its benchmark, and so this run, exit 1.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

TIMEOUT_S = 600
# Benchmarks that run a whole scenario series take longer (the fault matrix: 13 sites; the
# mixed fleet: 3 sites of 2,000 rigs in real time; the mixed poll: a 50,000-rig site).
TIMEOUTS_S = {
    "bench_fault_matrix": 1500,
    "bench_mixed_fleet": 1500,
    "bench_mixed_poll": 900,
    "bench_utilization": 1800,  # two runs of a 1,000-rig site through four blocks
    "bench_awards_day": 3600,  # 24 hourly awards at 30x: 48 min of simulated day
    "bench_cluster_scale": 2400,  # 200,000 rigs over 4 shard processes, then 50,000 in one
}


def main() -> int:
    here = Path(__file__).parent
    only = set(sys.argv[1:])
    failed: list[str] = []
    for bench in sorted(here.glob("bench_*.py")):
        if only and bench.stem not in only:
            continue
        print(f"\n=== {bench.stem}", flush=True)
        started = time.monotonic()
        timeout_s = TIMEOUTS_S.get(bench.stem, TIMEOUT_S)
        try:
            proc = subprocess.run([sys.executable, str(bench)], timeout=timeout_s, check=False)
            ok = proc.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
            print(f"{bench.stem}: timed out after {timeout_s}s")
        print(f"=== {bench.stem}: {'ok' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s")
        if not ok:
            failed.append(bench.stem)
    if failed:
        print("\nfailed (a MISSED target, an error or a timeout): " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
