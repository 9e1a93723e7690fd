"""Alert evaluation at 50,000 rigs, and delivery to a real Alertmanager.

Measured in one run: an evaluation when the fleet state hands out the same status objects
(nothing changed), and one with all-new objects (every rig checked again); the all-new one
is the baseline, and the ratio says what the identity shortcut saves. Targets (they were
asserted in tests/alerts/test_alerts_scale.py, which now counts the per-rig checks instead):
unchanged < 100 ms, all-new < 1 s, all-new at least 3x the unchanged one.
Delivery: from the evaluation that fires a rig alert to the alert visible in Alertmanager's
API, median of 5; target one 0.5 s poll (tests/alerts/test_alerts_alertmanager.py checks the
firing on the engine's clock, fault to Alertmanager being "for + two polls").
Run: .venv/bin/python benchmarks/bench_alerts.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from targets import at_least, at_most, finish

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "alerts")]

from alerts_helpers import FACTS, MODELS, make_engine, rig, snap  # noqa: E402
from servers import ServerProcess, start_alertmanager  # noqa: E402

from minerd.alerts import (  # noqa: E402
    AlertEngine,
    AlertThresholds,
    ChangeKind,
    DeliverySettings,
    RuleTiming,
)
from minerd.clock import ManualClock, SystemClock  # noqa: E402
from minerd.storage import AlertStore, Database  # noqa: E402

N = 50_000


def visible(am: ServerProcess, site: str) -> bool:
    qs = urllib.parse.urlencode({"filter": f'site="{site}"'})
    with urllib.request.urlopen(f"{am.url}/api/v2/alerts?{qs}", timeout=5) as resp:
        return bool(json.loads(resp.read()))


async def delivery_s(am: ServerProcess, db_path: Path, site: str) -> float:
    """Seconds from the evaluation that fires a fan alert to the alert in Alertmanager."""
    clock = ManualClock(SystemClock().now_s())
    db = Database(db_path)
    engine = AlertEngine(
        site, AlertStore(db), MODELS,
        AlertThresholds(timings={"RigFanFailure": RuleTiming(0.0, 5.0)}),
        DeliverySettings(log=False, alertmanager_urls=(am.url,)),
        clock=clock, db=db,
    )  # fmt: skip
    task = asyncio.create_task(engine.run())
    try:
        await asyncio.sleep(0.2)  # the delivery task is waiting
        t = clock.now_s()
        t0 = time.perf_counter()
        changes = engine.evaluate(snap(t, [rig("r1", "C1", t=t, fan_rpm=0)]), FACTS, t)
        assert any(c.kind is ChangeKind.FIRED for c in changes)
        while not await asyncio.to_thread(visible, am, site):  # noqa: ASYNC110 - the measurement
            await asyncio.sleep(0.005)
        return time.perf_counter() - t0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        db.close()


def delivery(tmp: Path) -> float:
    am = start_alertmanager(tmp / "am")
    try:
        return statistics.median(
            asyncio.run(delivery_s(am, tmp / f"d{i}.db", f"bench-{i}")) for i in range(5)
        )
    finally:
        am.stop()


def main() -> int:
    clock = ManualClock(1_800_000_000.0)
    with tempfile.TemporaryDirectory() as tmp:
        engine, db = make_engine(Path(tmp) / "a.db", clock)
        t0 = clock.now_s()
        rigs = [
            rig(f"r{i:05d}", f"C{i // 500:03d}", t=t0,
                hashrate_ths=50.0 if i % 1000 == 0 else 100.0)
            for i in range(N)
        ]  # fmt: skip
        s = snap(t0, rigs)

        def timed(snapshot: object) -> float:
            clock.advance(1)
            start = time.perf_counter()
            engine.evaluate(snapshot, FACTS, clock.now_s())  # type: ignore[arg-type]
            return time.perf_counter() - start

        first_s = timed(s)
        unchanged_s = statistics.median(timed(s) for _ in range(15))
        full = []
        objs = rigs
        for _ in range(5):
            objs = [dataclasses.replace(r) for r in objs]
            full.append(timed(snap(clock.now_s(), objs)))
        full_s = statistics.median(full)
        assert len(engine.active()) == N // 1000  # the low-hashrate rigs fired
        db.close()
        delivered_s = delivery(Path(tmp))
    print(f"{N} rigs: first evaluation {first_s * 1e3:.1f} ms")
    print(f"unchanged status objects: median {unchanged_s * 1e3:.2f} ms of 15")
    print(f"all-new status objects (baseline): median {full_s * 1e3:.1f} ms of 5")
    at_most("evaluation, unchanged fleet", unchanged_s * 1000, 100, " ms")
    at_most("evaluation, all-new objects", full_s * 1000, 1000, " ms")
    at_least("ratio all-new / unchanged", full_s / unchanged_s, 3.0, "x")
    print(f"fired to visible in Alertmanager: median {delivered_s * 1000:.0f} ms of 5")
    at_most("alert delivery to Alertmanager", delivered_s * 1000, 500, " ms")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
