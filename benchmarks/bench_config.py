"""Loading a large site config: a 50,000-row rig CSV next to two /16 host ranges.

The overlap check must never expand networks (a /16 is 65,536 addresses, a /8 16 million);
tests/config/test_config_load.py checks that no network is expanded, and this measures the
load. Baseline in the same run: reading the CSV with the csv module alone.
Target: the whole load < 15 s (was asserted in the test), and at most 30x the baseline.
Run: .venv/bin/python benchmarks/bench_config.py
"""

from __future__ import annotations

import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

from targets import at_most, finish

from minerd.errors import ConfigError
from minerd.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
ROWS = 50_000

GROUPS = """
[[rigs]]
name = "wide"
driver = "luxos"
profile = "bitmain-s21"
hosts = ["11.0.0.0/16", "12.0.0.0/16", "10.0.100.7"]

[[rigs]]
name = "listed"
driver = "luxos"
profile = "bitmain-s21"
csv = "big.csv"
"""


def main() -> int:
    minimal = (ROOT / "tests" / "config" / "fixtures" / "minimal.toml").read_text()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = ["id,host,port,container"]
        rows += [f"r{i},10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255},,c" for i in range(ROWS)]
        (tmp / "big.csv").write_text("\n".join(rows) + "\n")
        path = tmp / "site.toml"
        path.write_text(minimal + "\n" + GROUPS)
        loads, bases = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            with (tmp / "big.csv").open(newline="") as f:
                n = sum(1 for _ in csv.DictReader(f))
            bases.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            try:
                load_settings(path)
            except ConfigError as exc:  # 10.0.100.7 is in both groups, on purpose
                assert exc.problems == ["rigs[1].csv: 10.0.100.7 overlaps rigs[0].hosts"]
            else:
                raise AssertionError("the overlap was not found")
            loads.append(time.perf_counter() - t0)
    load_s, base_s = statistics.median(loads), statistics.median(bases)
    print(f"load_settings, {ROWS:,} CSV rows and two /16 ranges: median {load_s:.2f} s of 3")
    print(f"baseline csv.DictReader over the same {n:,} rows: median {base_s * 1000:.0f} ms")
    at_most("config load", load_s, 15.0, " s")
    at_most("ratio load / csv baseline", load_s / base_s, 30.0, "x")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
