"""The real daemon on a simulated site in real time (12 rigs): how fast it acts and stops.

Targets (the scenario tests tests/scenarios/test_scenario_quota_latency.py and
test_scenario_process.py keep generous bounds and name these):
- POST /api/v1/quotas to the first control cycle under the new quota: within one control
  cycle (1 s), the worst of 5 posts made at different phases of the interval;
- SIGTERM to a clean exit: within 5 s, the worst of 3.
Baseline in the same run: the round trip of GET /healthz, the API's own floor.
Run: .venv/bin/python benchmarks/bench_daemon.py
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from targets import at_most, finish

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "scenarios")]

from scenario_kit import DaemonProcess, Tuning, running_site, site_spec, tune_config  # noqa: E402
from servers import free_port  # noqa: E402

from minerd.runtime.cycle import CycleResult  # noqa: E402
from minerd.sim import SimSite  # noqa: E402

RIGS = 12
CYCLE_S = 1.0
POSTS = 5


async def quota_latency(tmp: Path) -> tuple[list[float], float]:
    """(seconds from each POST to the first cycle under it, median /healthz round trip)."""
    async with running_site(site_spec(RIGS, base_octet=63, speed=1.0), tmp, Tuning()) as run:
        tokens = dict(
            line.split(" = ")
            for line in (tmp / "site.toml.tokens").read_text().splitlines()
            if " = " in line
        )
        grid = tokens["grid"].strip('"')
        assert run.daemon.components is not None
        await run.daemon.components.api_started.wait()
        acted: dict[str, float] = {}

        def watch(result: CycleResult) -> None:
            qid = result.decision.limit.quota_id
            if qid is not None and qid not in acted:
                acted[qid] = time.perf_counter()

        run.site.cycle.listeners.append(watch)
        latencies, floor = [], []
        listen = run.daemon.settings.api.listen
        async with httpx.AsyncClient(base_url=f"http://{listen}", timeout=5.0) as http:
            for _ in range(10):
                t0 = time.perf_counter()
                await http.get("/healthz")
                floor.append(time.perf_counter() - t0)
            for n in range(POSTS):
                await asyncio.sleep(CYCLE_S * (0.3 + 0.17 * n))  # different phases
                sent = time.perf_counter()
                r = await http.post(
                    "/api/v1/quotas",
                    json={"limit_kw": 30.0 - n},
                    headers={"Authorization": f"Bearer {grid}"},
                )
                assert r.status_code == 201, r.text
                qid = r.json()["id"]
                await run.wait_for("cycle under the new quota", lambda q=qid: q in acted, 30.0)
                latencies.append(acted[qid] - sent)
        return latencies, statistics.median(floor)


async def sigterm_s(tmp: Path, n: int) -> float:
    async with SimSite(site_spec(RIGS, base_octet=64, speed=1.0)) as sim:
        config = tmp / f"stop{n}.toml"
        api = f"127.0.0.1:{free_port()}"
        sim.write_config(config, api_listen=api)
        tune_config(config, Tuning(rig_interval_s=1.0))
        daemon = DaemonProcess(config, tmp / f"stop{n}.log", f"http://{api}")
        try:
            await daemon.start()
            await daemon.wait_ready(60.0)
            await asyncio.sleep(1.0)
            t0 = time.perf_counter()
            daemon.signal(signal.SIGTERM)
            rc = await daemon.wait(60.0)
            took_s = time.perf_counter() - t0
            assert rc == 0, daemon.log.read_text()[-2000:]
            return took_s
        finally:
            await daemon.stop()


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "quota").mkdir()
        latencies, floor_s = asyncio.run(quota_latency(tmp / "quota"))
        stops = [asyncio.run(sigterm_s(tmp, n)) for n in range(3)]
    print(f"baseline GET /healthz round trip: median {floor_s * 1000:.1f} ms")
    print(
        "POST quota -> first cycle under it: " + ", ".join(f"{x * 1000:.0f} ms" for x in latencies)
    )
    print("SIGTERM -> exit 0: " + ", ".join(f"{x:.2f} s" for x in stops))
    at_most("quota acted on, worst of 5", max(latencies), CYCLE_S, " s")
    at_most("SIGTERM to exit, worst of 3", max(stops), 5.0, " s")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
