"""Benchmark the simulated site at 50,000 rigs: start-up time, RSS, summary replies per second.

The site runs as `python -m minerd.sim` in a child process (with its rig worker processes);
a bare asyncio client (one connection per request, as cgminer wants) measures throughput at
concurrency 200 against many rigs. Baseline in the same run: the same client against a
1-rig site, to show what the client itself can do on this machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from targets import at_least, at_most, finish

RIGS = int(os.environ.get("BENCH_SIM_RIGS", "50000"))
CONCURRENCY = 200
DURATION_S = 5.0
RUNS = 3  # the median of three runs is printed
RIG_PORT = 14028
REQUEST = b'{"command":"summary"}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(root_pid: int) -> float:
    """RSS of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total_kb = 0
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024.0


def start_site(rigs: int, base_octet: int) -> tuple[subprocess.Popen[bytes], str, float]:
    control = f"127.0.0.1:{free_port()}"
    argv = [
        sys.executable,
        "-m",
        "minerd.sim",
        "--rigs",
        str(rigs),
        "--port",
        str(RIG_PORT),
        "--base-octet",
        str(base_octet),
        "--control",
        control,
        "--meter-port",
        "0",
        "--plc-port",
        "0",
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, start_new_session=True)
    url = f"http://{control}/health"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"simulator exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
        if time.monotonic() - t0 > 300:
            raise RuntimeError("simulator did not start in 300 s")
    return proc, control, time.monotonic() - t0


def rig_endpoints(control: str) -> list[tuple[str, int]]:
    with urllib.request.urlopen(f"http://{control}/truth", timeout=120) as resp:
        truth = json.loads(resp.read())
    return [(r["host"], int(r["port"])) for r in truth["rigs"]]


class _Once(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[int]) -> None:
        self.done = done
        self.size = 0
        self.nul = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        self.size += len(data)
        self.nul = data.endswith(b"\x00")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.size if self.nul else -1)


async def hammer(endpoints: list[tuple[str, int]], duration_s: float) -> tuple[int, int]:
    loop = asyncio.get_running_loop()
    ok = errors = 0
    deadline = loop.time() + duration_s

    async def worker(seed: int) -> None:
        nonlocal ok, errors
        rnd = random.Random(seed)
        while loop.time() < deadline:
            host, port = endpoints[rnd.randrange(len(endpoints))]
            done: asyncio.Future[int] = loop.create_future()
            try:
                async with asyncio.timeout(5.0):
                    await loop.create_connection(lambda d=done: _Once(d), host, port)
                    size = await done
                if size > 0:
                    ok += 1
                else:
                    errors += 1
            except (OSError, TimeoutError):
                errors += 1

    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return ok, errors


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(rigs: int, base_octet: int, label: str) -> dict[str, float]:
    proc, control, start_s = start_site(rigs, base_octet)
    try:
        endpoints = rig_endpoints(control)
        rss = rss_mb(proc.pid)
        runs = sorted(asyncio.run(hammer(endpoints, DURATION_S)) for _ in range(RUNS))
        ok, errors = runs[RUNS // 2]
        rate = ok / DURATION_S
        print(
            f"{label}: {len(endpoints)} rigs, start-up {start_s:.1f} s, RSS {rss:.0f} MB, "
            f"summary {rate:.0f} req/s at concurrency {CONCURRENCY} (median of {RUNS} x "
            f"{DURATION_S:g} s; runs {[round(r[0] / DURATION_S) for r in runs]}; "
            f"{errors} errors)",
            flush=True,
        )
        return {"start_s": start_s, "rss_mb": rss, "rate": rate, "errors": errors}
    finally:
        stop(proc)


def main() -> int:
    base = measure(1, 230, "baseline (1 rig)")
    big = measure(RIGS, 20, f"site ({RIGS} rigs)")
    print(
        f"ratio: {big['rate'] / max(1.0, base['rate']):.2f} of the 1-rig baseline rate; "
        f"targets: start-up < 60 s ({'ok' if big['start_s'] < 60 else 'MISSED'}), "
        f"RSS < 2048 MB ({'ok' if big['rss_mb'] < 2048 else 'MISSED'}), "
        f">= 3000 req/s ({'ok' if big['rate'] >= 3000 else 'MISSED'})"
    )
    at_most("site start-up", big["start_s"], 60, " s")
    at_most("site RSS", big["rss_mb"], 2048, " MB")
    at_least("site requests/s", big["rate"], 3000)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
