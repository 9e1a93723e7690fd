"""Poll lateness with 5 % of the rigs hung, over real sockets.

200 simulated LuxOS rigs at a 1 s interval, 10 of them hung (accept, never answer), 32
workers, RUN_S seconds. Targets (they were asserted in tests/fleet/test_fleet_hung.py, which
now checks the schedule on virtual time): healthy rigs' worst lateness < 1 s and mean
< 0.1 s, and their polls within 0.8-1.1 of one per rig per second. Baseline in the same run:
the same site with no rig hung.
Run: .venv/bin/python benchmarks/bench_poller_hung.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from targets import at_least, at_most, finish

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "fleet")]

from fleet_kit import polled_site  # noqa: E402

from minerd.sim import RigGroupSpec, SimSite, SiteSpec  # noqa: E402

RIGS = 200
HUNG = [f"c001-r{n:03d}" for n in range(1, RIGS + 1, 20)]
RUN_S = 6.0


async def measure(hung: list[str]) -> dict[str, float]:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", RIGS),),
        rigs_per_container=RIGS,
        rig_port=0,
        base_octet=154,
        workers=1,
        feeder_meters=False,
    )

    async def hang(site: SimSite) -> None:
        for rig_id in hung:
            await site.inject(rig_id, "hung")

    with tempfile.TemporaryDirectory() as tmp:
        async with polled_site(
            spec, Path(tmp), rig_interval_s=1.0, rig_timeout_s=0.5, concurrency=32,
            track_per_rig=True, before_poll=hang,
        ) as run:  # fmt: skip
            await asyncio.sleep(RUN_S)
            stats = run.poller.stats
            timeouts = run.fleet.poll_errors_by_reason.get("timeout", 0)
            late = [s for rig, s in stats.lateness_by_rig_s.items() if rig not in hung]
            return {
                "worst_s": max(late),
                "mean_s": stats.lateness_sum_s / max(1, stats.rig_polls),
                "polls_ratio": (stats.rig_polls - timeouts) / ((RIGS - len(hung)) * RUN_S),
                "timeouts": timeouts,
            }


def main() -> int:
    base = asyncio.run(measure([]))
    got = asyncio.run(measure(HUNG))
    for name, m in (("no rig hung (baseline)", base), (f"{len(HUNG)} rigs hung", got)):
        print(
            f"{name}: healthy worst lateness {m['worst_s'] * 1000:.0f} ms, mean "
            f"{m['mean_s'] * 1000:.1f} ms, polls {m['polls_ratio']:.2f} of the schedule, "
            f"{m['timeouts']:.0f} timeouts in {RUN_S:g} s"
        )
    print(f"ratio mean lateness hung / baseline: {got['mean_s'] / max(base['mean_s'], 1e-6):.2f}")
    at_most("healthy rigs' worst lateness, 5 % hung", got["worst_s"], 1.0, " s")
    at_most("mean lateness, 5 % hung", got["mean_s"] * 1000, 100, " ms")
    at_least("healthy polls / schedule, 5 % hung", got["polls_ratio"], 0.8)
    at_most("healthy polls / schedule, 5 % hung (none doubled)", got["polls_ratio"], 1.1)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
