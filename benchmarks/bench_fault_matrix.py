"""The fault matrix, full form (issue 18): each fault alone on a 200-rig site under a quota.

The rows, the judge (the simulator's truth sampled every 0.5 sim s) and the targets are
those of tests/scenarios/fault_matrix.py; here the site is bigger and the flood is the
issue's: 22,000 idle connections from two client processes against a daemon with the
default 20,000 open-files limit. In-process rows run at 2x: simulator and daemon share one
process there, and at 4x 200 rigs starved the daemon's meter reads on a busy 2-core machine
(fail-safes from that muddied the rows). Prints the table and exits non-zero when a row
misses its target.
Run: .venv/bin/python benchmarks/bench_fault_matrix.py [row ...]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "scenarios")]

from fault_matrix import ROWS, Size, format_table, run_matrix  # noqa: E402
from targets import at_most, finish  # noqa: E402

FULL = Size(
    rigs=200, speed=2.0, flood_connections=22_000, flood_nofile=None, flooders=2, base_octet=236
)


def main() -> int:
    only = set(sys.argv[1:])
    rows = tuple(r for r in ROWS if not only or r.name in only)
    print(
        f"fault matrix: {FULL.rigs} rigs, in-process rows at {FULL.speed:g}x, "
        f"flood {FULL.flood_connections} connections",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as tmp:
        results = asyncio.run(run_matrix(FULL, Path(tmp), rows, lambda s: print(s, flush=True)))
    print("\n" + format_table(results))
    for r in results:
        at_most(f"fault_matrix.{r.row.name}.over", r.over_s, r.row.target_s, " s")
        at_most(f"fault_matrix.{r.row.name}.control_stopped", 0 if r.control_continued else 1, 0)
        if r.row.no_failsafe:
            at_most(f"fault_matrix.{r.row.name}.silence_failsafe", r.silent_s, 0.0, " s")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
