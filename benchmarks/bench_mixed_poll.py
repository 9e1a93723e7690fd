"""Benchmark the daemon's poller on a 50,000-rig MIXED fleet polled every 30 s (issue 13).

The site runs as `python -m minerd.sim --fleet ... --workers N --write-config ...` in a child
process group; the daemon side is built as `minerd run` builds it (load_settings +
build_devices), and a Poller feeds a FleetState. Each family reads through its own driver:
stock and Whatsminer on 4028 only, LuxOS its joined read, Vnish 4028 + REST /summary,
Braiins 4028 + gRPC GetMinerStats.

Mix (the issue's `--fleet` example scaled to 50,000): LuxOS 10,000, stock 20,000, Vnish
10,000, Whatsminer 5,000, Braiins OS+ 2,500, cgminer 2,500. File descriptors: every rig
listens on 4028 and 37,500 of them on a second port (web, API v3, gRPC): 87,500 listening
sockets, so the simulator runs in SIM_WORKERS = 10 processes of 5,000 rigs, about 8,750
listeners each plus the connections being served, under the 20,000 open files a process
may have. The daemon process holds the polls in flight (concurrency 1,000) plus each
Vnish rig's keep-alive REST connection and each Braiins rig's gRPC channel (12,500 at most).

Measured in one run:
1. sustained: the 30 s schedule over the whole fleet for WINDOW_S after the start-up spread;
   rig polls/s (the schedule asks 50,000 / 30 s = 1,667/s), failures, lateness, this
   process's CPU share and RSS, the simulator's CPU share;
2. per driver: each family's rigs alone with every rig due every second (a schedule no rig
   can meet, so the workers never idle) against the bare asyncio cgminer loop (connect, send
   {"command":"summary"}, read to EOF, json.loads) on the same rigs' 4028, alternated:
   polls/s, CPU per poll and the ratio driver / bare loop, printed per family.
Targets: sustained >= 98 % of the schedule (1,633/s); daemon RSS < 2,000 MB.

Env: BENCH_MIXED_RIGS (50000, split by the mix), BENCH_MIXED_WORKERS (10),
BENCH_MIXED_WINDOW_S (30), BENCH_MIXED_CAPACITY_S (5).
Run: .venv/bin/python benchmarks/bench_mixed_poll.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench_poller import Sim, bare_loop, cpu_s, free_port, sustained, tree_pids, tune
from targets import at_least, at_most, finish

from minerd.clock import SystemClock
from minerd.daemon.assembly import SiteDevices, build_devices
from minerd.devices.rig import Rig
from minerd.runtime.devices import RigInfo
from minerd.runtime.fleet import FleetState
from minerd.runtime.poller import Poller
from minerd.settings import load_settings

RIGS = int(os.environ.get("BENCH_MIXED_RIGS", "50000"))
SIM_WORKERS = int(os.environ.get("BENCH_MIXED_WORKERS", "10"))
WINDOW_S = float(os.environ.get("BENCH_MIXED_WINDOW_S", "30"))
CAPACITY_S = float(os.environ.get("BENCH_MIXED_CAPACITY_S", "5"))
INTERVAL_S = 30.0
RIG_PORT = 24028
BASE_OCTET = 30  # 200 containers of 250: 127.30.x.y .. 127.229.x.y
# Family servers on fixed unprivileged ports of each rig's own address (8080/4433/50051 on
# a real rig: 80, 4433, 50051).
SHARES = (
    ("luxos", 20),
    ("stock", 40),
    ("vnish", 20),
    ("whatsminer", 10),
    ("braiins", 5),
    ("cgminer", 5),
)
TARGET_RATE = RIGS / INTERVAL_S
SUMMARY = b'{"command":"summary"}'
CONCURRENCY = 1000


def fleet_arg() -> str:
    counts = {name: RIGS * share // 100 for name, share in SHARES}
    counts["stock"] += RIGS - sum(counts.values())
    return ",".join(f"{name}:{n}" for name, n in counts.items() if n)


def start_sim(workdir: Path) -> Sim:
    config = workdir / "site.toml"
    argv = [
        sys.executable, "-m", "minerd.sim",
        "--fleet", fleet_arg(),
        "--workers", str(SIM_WORKERS),
        "--port", str(RIG_PORT),
        "--base-octet", str(BASE_OCTET),
        "--control", f"127.0.0.1:{free_port()}",
        "--meter-port", "0",
        "--plc-port", "0",
        "--write-config", str(config),
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for raw in proc.stdout:  # the config line comes once every rig listens
        line = raw.decode(errors="replace").rstrip()
        tail = [*tail[-20:], line]
        if line.startswith("minerd sim: config "):
            return Sim(proc, config, time.monotonic() - t0)
        if time.monotonic() - t0 > 300:
            break
    proc.kill()
    raise RuntimeError(
        f"simulator did not write its config (exit {proc.poll()}):\n" + "\n".join(tail)
    )


def family_devices(devices: SiteDevices, family: str) -> tuple[list[RigInfo], list[Rig]]:
    pairs = [
        (info, rig)
        for info, rig in zip(devices.rig_infos, devices.rigs, strict=True)
        if info.protocol.value == family
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


async def driver_capacity(devices: SiteDevices, family: str) -> tuple[float, int, float]:
    """(polls/s, failures, CPU share) of `family`'s driver, every rig due again at once."""
    infos, rigs = family_devices(devices, family)
    # Due far more often than the rigs can be read (5,000 polls/s asked), so workers never idle.
    interval_s = max(0.05, min(1.0, len(infos) / 5000.0))
    infos = [replace(i, interval_s=interval_s) for i in infos]
    poller = Poller(FleetState(infos, []), rigs, [], SystemClock(), concurrency=CONCURRENCY)
    stats = poller.stats
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(1.0)
    polls0, fails0 = stats.rig_polls, stats.rig_failures
    t0, cpu0 = time.monotonic(), time.process_time()
    await asyncio.sleep(CAPACITY_S)
    wall = time.monotonic() - t0
    out = (
        (stats.rig_polls - polls0) / wall,
        stats.rig_failures - fails0,
        (time.process_time() - cpu0) / wall,
    )
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return out


async def bench(sim: Sim) -> None:
    tune(sim.config)
    settings = load_settings(sim.config)
    t0 = time.monotonic()
    devices = build_devices(settings)
    build_s = time.monotonic() - t0
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    by_family: dict[str, int] = {}
    for info in devices.rig_infos:
        by_family[info.protocol.value] = by_family.get(info.protocol.value, 0) + 1
    print(
        f"site: {len(devices.rigs)} rigs {by_family} ({SIM_WORKERS} sim processes, up in "
        f"{sim.start_s:.1f} s); devices built in {build_s:.1f} s; concurrency {CONCURRENCY} "
        f"of {soft} open files",
        flush=True,
    )
    sim_pids = tree_pids(sim.proc.pid)
    sim_cpu0, wall0 = cpu_s(sim_pids), time.monotonic()
    s = await sustained(devices, CONCURRENCY)
    sim_share = (cpu_s(sim_pids) - sim_cpu0) / (time.monotonic() - wall0)
    print(
        f"mixed fleet, first round: every rig read once in {s['first_round_s']:.1f} s; steady "
        f"({INTERVAL_S:g} s interval, {s['wall_s']:.0f} s window from {s['window_from_s']:.0f} s):"
        f" {s['rate']:.0f} rig polls/s (schedule asks {TARGET_RATE:.0f}/s), {s['failures']:.0f}"
        f" failures, {s['fresh']:.0f}/{len(devices.rigs)} rigs fresh; lateness mean "
        f"{s['mean_late_s'] * 1000:.0f} ms, max {s['max_late_s']:.2f} s",
        flush=True,
    )
    print(
        f"daemon process: CPU {s['cpu_share'] * 100:.0f} % of one core "
        f"(user {s['user_share'] * 100:.0f} %, sys {s['sys_share'] * 100:.0f} %), "
        f"{s['cpu_share'] / max(s['rate'], 1.0) * 1e6:.0f} us CPU per poll, RSS "
        f"{s['rss_mb']:.0f} MB; simulator: CPU {sim_share * 100:.0f} % of one core "
        f"(machine: {os.cpu_count()} cores)",
        flush=True,
    )
    at_least("mixed 50k steady rig polls/s (98 % of the schedule)", s["rate"], TARGET_RATE * 0.98)
    at_most("daemon RSS", s["rss_mb"], 2000, " MB")
    print("per driver, the family's rigs due faster than they can be read, against the bare loop:")
    for family, _ in SHARES:
        infos, _rigs = family_devices(devices, family)
        if not infos:
            continue
        endpoints = [(i.host, i.port) for i in infos]
        drv = await driver_capacity(devices, family)
        bare = await bare_loop(endpoints, SUMMARY, CONCURRENCY, CAPACITY_S)
        ratio = drv[0] / bare[0] if bare[0] else 0.0
        print(
            f"  {family:<10} {len(infos):>6} rigs: driver {drv[0]:6.0f} polls/s "
            f"({drv[2] / max(drv[0], 1.0) * 1e6:4.0f} us CPU/poll, {drv[1]} failures); bare "
            f"loop {bare[0]:6.0f} polls/s ({bare[2] / max(bare[0], 1.0) * 1e6:4.0f} us "
            f"CPU/poll, {bare[1]} errors); ratio driver/bare {ratio:.2f}",
            flush=True,
        )
    print(
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
        flush=True,
    )
    await devices.aclose()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-mixed-poll-") as tmp:
        sim = start_sim(Path(tmp))
        try:
            asyncio.run(bench(sim))
        finally:
            sim.stop()
    return finish()


if __name__ == "__main__":
    sys.exit(main())
