"""Benchmark the daemon's poller on a 50,000-rig simulated site polled every 30 s.

The site runs as `python -m minerd.sim --rigs 50000 --workers N --write-config ...` in a child
process group. In this process, the daemon side is built as `minerd run` builds it: the
written config goes through load_settings + build_devices, then a Poller feeds a FleetState.

Measured in one run, against the same rigs, at the same concurrency:
1. sustained: the 30 s schedule for WINDOW_S after the start-up spread; rig polls/s (the
   schedule asks for rigs / 30 s = 1,667/s), failures, lateness, this process's CPU share
   and RSS, and the simulator's CPU share (it shares the 2 cores);
2. capacity: the poller with a schedule it cannot meet (every rig due every second) versus
   a bare asyncio cgminer loop (open_connection, send {"command":"summary"}, read to EOF,
   json.loads), and the same bare loop sending the poller's joined read
   ("summary+stats+power+profileget"), each for CAPACITY_S, alternated over ROUNDS.
Meters are left out: the figures are rig polls only (201 meters at 1 s would add ~200 reads/s).

Env: BENCH_POLLER_RIGS (50000), BENCH_POLLER_WORKERS (4), BENCH_POLLER_WINDOW_S (45),
BENCH_POLLER_CONCURRENCY (default: [control] poll_concurrency from the config, 1000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from targets import at_least, at_most, finish

from minerd.clock import SystemClock
from minerd.daemon.assembly import SiteDevices, build_devices
from minerd.model import RigCommand, RigReading, RigState
from minerd.runtime.fleet import FleetState
from minerd.runtime.poller import MIN_FIRST_GAP, Poller
from minerd.settings import load_settings

RIGS = int(os.environ.get("BENCH_POLLER_RIGS", "50000"))
SIM_WORKERS = int(os.environ.get("BENCH_POLLER_WORKERS", "4"))
WINDOW_S = float(os.environ.get("BENCH_POLLER_WINDOW_S", "30"))
CONCURRENCY_ENV = os.environ.get("BENCH_POLLER_CONCURRENCY")
INTERVAL_S = 30.0
TIMEOUT_S = 3.0
SPREAD_S = 5.0  # the poller spreads first polls over min(interval, 5 s)
CAPACITY_S = 6.0
ROUNDS = 2
RIG_PORT = 24028
BASE_OCTET = 30  # 200 containers: 127.30.x.y .. 127.229.x.y
TARGET_RATE = RIGS / INTERVAL_S
SUMMARY = b'{"command":"summary"}'
JOINED = b'{"command":"summary+stats+power+profileget"}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def cpu_s(pids: list[int]) -> float:
    """utime + stime of the processes, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


@dataclass
class Sim:
    proc: subprocess.Popen[bytes]
    config: Path
    start_s: float

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_sim(workdir: Path) -> Sim:
    config = workdir / "site.toml"
    argv = [
        sys.executable,
        "-m",
        "minerd.sim",
        "--rigs",
        str(RIGS),
        "--workers",
        str(SIM_WORKERS),
        "--port",
        str(RIG_PORT),
        "--base-octet",
        str(BASE_OCTET),
        "--control",
        f"127.0.0.1:{free_port()}",
        "--meter-port",
        "0",
        "--plc-port",
        "0",
        "--write-config",
        str(config),
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert proc.stdout is not None
    for raw in proc.stdout:  # the config line comes once every rig listens
        line = raw.decode(errors="replace").rstrip()
        if line.startswith("minerd sim: config "):
            return Sim(proc, config, time.monotonic() - t0)
        if time.monotonic() - t0 > 180:
            break
    proc.kill()
    raise RuntimeError(f"simulator did not write its config (exit {proc.poll()})")


def tune(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "[[rigs]]\n", f"[[rigs]]\ninterval_s = {INTERVAL_S}\ntimeout_s = {TIMEOUT_S}\n"
    )
    path.write_text(text, encoding="utf-8")


def make_poller(devices: SiteDevices, interval_s: float, concurrency: int) -> Poller:
    infos = [replace(i, interval_s=interval_s) for i in devices.rig_infos]
    fleet = FleetState(infos, [])
    return Poller(fleet, devices.rigs, [], SystemClock(), concurrency=concurrency, seed=1)


async def run_for(poller: Poller, seconds: float) -> None:
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# ------------------------------------------------------------------ sustained


async def sustained(devices: SiteDevices, concurrency: int) -> dict[str, float]:
    poller = make_poller(devices, INTERVAL_S, concurrency)
    stats = poller.stats
    task = asyncio.create_task(poller.run())
    t_start = time.monotonic()
    # The first round (every rig due within 5 s) runs at full capacity; measure after it.
    for _ in range(int(INTERVAL_S * 10)):
        if stats.rig_polls >= len(devices.rigs):
            break
        await asyncio.sleep(0.1)
    first_round_s = time.monotonic() - t_start
    # Then each rig moves to its own slot of the interval, at least MIN_FIRST_GAP of an
    # interval after its first read: from one interval after that, the schedule is steady.
    await asyncio.sleep(
        (MIN_FIRST_GAP + 1.0) * INTERVAL_S - (time.monotonic() - t_start) + first_round_s
    )
    late_sum0, polls0 = stats.lateness_sum_s, stats.rig_polls
    fails0 = stats.rig_failures
    stats.max_lateness_s = 0.0
    wall0, cpu0 = time.monotonic(), time.process_time()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(WINDOW_S)
    wall = time.monotonic() - wall0
    cpu = time.process_time() - cpu0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    polls = stats.rig_polls - polls0
    out = {
        "rate": polls / wall,
        "failures": float(stats.rig_failures - fails0),
        "cpu_share": cpu / wall,
        "user_share": (ru1.ru_utime - ru0.ru_utime) / wall,
        "sys_share": (ru1.ru_stime - ru0.ru_stime) / wall,
        "rss_mb": rss_mb(),
        "mean_late_s": (stats.lateness_sum_s - late_sum0) / max(1, polls),
        "max_late_s": stats.max_lateness_s,
        "wall_s": wall,
        "first_round_s": first_round_s,
        "window_from_s": wall0 - t_start,
    }
    snap = poller.fleet.snapshot(time.time())
    out["fresh"] = float(sum(1 for r in snap.rigs if r.fresh))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return out


# ------------------------------------------------------------------ capacity


async def bare_loop(
    endpoints: list[tuple[str, int]], request: bytes, concurrency: int, seconds: float
) -> tuple[float, int, float]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    ok = errors = 0
    n_ep = len(endpoints)

    async def worker(start: int) -> None:
        nonlocal ok, errors
        n = start
        while loop.time() < deadline:
            host, port = endpoints[n % n_ep]
            n += concurrency
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    reader, writer = await asyncio.open_connection(host, port)
                    try:
                        writer.write(request)
                        data = await reader.read()
                    finally:
                        writer.close()
                json.loads(data.rstrip(b"\x00"))
                ok += 1
            except (OSError, TimeoutError, ValueError):
                errors += 1

    t0, cpu0 = loop.time(), time.process_time()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    wall = loop.time() - t0
    return ok / wall, errors, (time.process_time() - cpu0) / wall


async def poller_capacity(devices: SiteDevices, concurrency: int) -> tuple[float, int, float]:
    """Every rig due every second: far more than the rigs can answer, so the workers never
    idle; polls/s over the run after a short warm-up."""
    poller = make_poller(devices, 1.0, concurrency)
    stats = poller.stats
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(1.0)
    polls0, fails0, t0 = stats.rig_polls, stats.rig_failures, time.monotonic()
    cpu0 = time.process_time()
    await asyncio.sleep(CAPACITY_S)
    wall = time.monotonic() - t0
    rate = (stats.rig_polls - polls0) / wall
    cpu = (time.process_time() - cpu0) / wall
    fails = stats.rig_failures - fails0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return rate, fails, cpu


class _InstantRig:
    """No I/O: a read that yields once and returns a fixed reading (scheduler cost only)."""

    def __init__(self, rig_id: str) -> None:
        self._id = rig_id
        self._reading = RigReading(rig=rig_id, taken_at_s=0.0, state=RigState.HASHING, reason="")

    @property
    def rig_id(self) -> str:
        return self._id

    async def read(self, now_s: float) -> RigReading:
        await asyncio.sleep(0)
        return self._reading

    async def apply(self, cmd: RigCommand) -> None:
        return None


async def scheduler_cost(devices: SiteDevices, concurrency: int) -> tuple[float, float]:
    """Polls/s and CPU share of the poller alone (heap, queue, workers, FleetState) with
    every rig due every second and reads that cost nothing."""
    infos = [replace(i, interval_s=1.0) for i in devices.rig_infos]
    rigs = [_InstantRig(i.rig_id) for i in infos]
    poller = Poller(FleetState(infos, []), rigs, [], SystemClock(), concurrency=concurrency)
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(1.0)
    polls0, t0, cpu0 = poller.stats.rig_polls, time.monotonic(), time.process_time()
    await asyncio.sleep(3.0)
    wall = time.monotonic() - t0
    out = (poller.stats.rig_polls - polls0) / wall, (time.process_time() - cpu0) / wall
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return out


# ------------------------------------------------------------------ main


async def bench(sim: Sim) -> None:
    tune(sim.config)
    settings = load_settings(sim.config)
    t0 = time.monotonic()
    devices = build_devices(settings)
    build_s = time.monotonic() - t0
    concurrency = int(CONCURRENCY_ENV or settings.control.poll_concurrency)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    endpoints = [(i.host, i.port) for i in devices.rig_infos]
    print(
        f"site: {len(devices.rigs)} rigs ({SIM_WORKERS} sim processes, up in {sim.start_s:.1f} s);"
        f" devices built in {build_s:.1f} s; concurrency {concurrency} of {soft} open files",
        flush=True,
    )
    sim_pids = tree_pids(sim.proc.pid)
    sim_cpu0, wall0 = cpu_s(sim_pids), time.monotonic()
    s = await sustained(devices, concurrency)
    sim_share = (cpu_s(sim_pids) - sim_cpu0) / (time.monotonic() - wall0)
    print(
        f"first round: every rig read once in {s['first_round_s']:.1f} s; "
        f"steady ({INTERVAL_S:g} s interval, {s['wall_s']:.0f} s window from "
        f"{s['window_from_s']:.0f} s): "
        f"{s['rate']:.0f} rig polls/s (schedule asks {TARGET_RATE:.0f}/s: "
        f"{'ok' if s['rate'] >= TARGET_RATE * 0.98 else 'MISSED'}), {s['failures']:.0f} failures, "
        f"{s['fresh']:.0f}/{len(devices.rigs)} rigs fresh; lateness mean "
        f"{s['mean_late_s'] * 1000:.0f} ms, max {s['max_late_s']:.2f} s",
        flush=True,
    )
    at_least("steady rig polls/s (98 % of the schedule)", s["rate"], TARGET_RATE * 0.98)
    print(
        f"daemon process: CPU {s['cpu_share'] * 100:.0f} % of one core "
        f"(user {s['user_share'] * 100:.0f} %, sys {s['sys_share'] * 100:.0f} %), "
        f"RSS {s['rss_mb']:.0f} MB (target < 600: {'ok' if s['rss_mb'] < 600 else 'MISSED'}); "
        f"simulator: CPU {sim_share * 100:.0f} % of one core (machine: {os.cpu_count()} cores)",
        flush=True,
    )
    at_most("daemon RSS", s["rss_mb"], 600, " MB")
    runs: dict[str, list[tuple[float, int, float]]] = {"poller": [], "summary": [], "joined": []}
    for _ in range(ROUNDS):
        runs["poller"].append(await poller_capacity(devices, concurrency))
        runs["summary"].append(await bare_loop(endpoints, SUMMARY, concurrency, CAPACITY_S))
        runs["joined"].append(await bare_loop(endpoints, JOINED, concurrency, CAPACITY_S))
    best = {k: max(v) for k, v in runs.items()}  # best rate of the rounds, with its CPU
    errors = sum(r[1] for v in runs.values() for r in v)
    for name, label in (
        ("poller", "poller (LuxosRig.read, joined read + parse)"),
        ("summary", "bare loop, summary"),
        ("joined", "bare loop, joined read"),
    ):
        rate, _, cpu = best[name]
        print(
            f"capacity {label}: {rate:.0f} polls/s {[round(r[0]) for r in runs[name]]}, "
            f"this process at {cpu * 100:.0f} % CPU ({cpu / max(rate, 1.0) * 1e6:.0f} us/poll)",
            flush=True,
        )
    mine, base, base_joined = best["poller"][0], best["summary"][0], best["joined"][0]
    ratio = mine / base if base else 0.0

    def per_cpu(k: str) -> float:
        return best[k][0] / max(best[k][2], 1e-9)

    print(
        f"ratio poller / bare summary at concurrency {concurrency}: {ratio:.2f} (target >= 0.6:"
        f" {'ok' if ratio >= 0.6 else 'MISSED'}); poller / bare joined read: "
        f"{mine / base_joined if base_joined else 0.0:.2f}; per CPU-second of this process: "
        f"{per_cpu('poller') / per_cpu('summary'):.2f} of summary, "
        f"{per_cpu('poller') / per_cpu('joined'):.2f} of joined; {errors} errors",
        flush=True,
    )
    at_least("ratio poller / bare summary", ratio, 0.6)
    rate, cpu = await scheduler_cost(devices, concurrency)
    print(
        f"scheduler alone (no I/O, {len(devices.rigs)} rigs due every 1 s): {rate:.0f} polls/s "
        f"at {cpu * 100:.0f} % CPU ({cpu / max(rate, 1.0) * 1e6:.0f} us/poll); peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
        flush=True,
    )
    await devices.aclose()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-poller-") as tmp:
        sim = start_sim(Path(tmp))
        try:
            asyncio.run(bench(sim))
        finally:
            sim.stop()
    return finish()


if __name__ == "__main__":
    sys.exit(main())
