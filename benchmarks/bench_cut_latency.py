"""A 70 % cut at 50,000 rigs must not stall the event loop: API latency and poll lateness.

The real Site and ControlCycle (bench_cycle's 50,000-rig site, readings fed straight into
FleetState) run their own cycle task (ControlCycle.run: planning in a worker thread) on a
clock that follows the wall. On the same event loop:
- a minimal HTTP handler answers GET /status from Site.status(), asked every REQUEST_EVERY_S
  by a client in another process (its latency is what an API user sees);
- a poll-like periodic task wakes every POLL_EVERY_S (its lateness is what a poll sees).
Steady cycles first, then the operator cap falls to 30 % of the import (a 70 % cut) and the
cycles that follow are watched. The executor is not started (no rig answers): the cut's
commands are journaled and queued, as in bench_cycle.
Targets (ratios within this run, the machine being shared): during the cuts, API p99 latency
and poll-lateness p99 at most 2x their steady values. Steady and cut windows both include
whole control cycles (cycles are 1 s apart; a window is a whole number of them).
Run: .venv/bin/python benchmarks/bench_cut_latency.py
With --on-loop the whole cycle runs on the event loop (ControlCycle.run_once, the behaviour
before issue 14.4), for comparison: its steady figures are as bad as its cut, so the ratio
alone does not tell the two apart; compare the absolute p99s of the two runs.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from bench_cycle import RIGS, build, feed_meter
from targets import at_most, finish

from minerd.clock import ManualClock
from minerd.runtime.cycle import ControlCycle, CycleResult
from minerd.runtime.site import Site

REQUEST_EVERY_S = 0.02
POLL_EVERY_S = 0.05
TICK_S = 0.01  # the manual clock follows the wall in steps this small
SETTLE_CYCLES = 6  # after start (the first plan and dispatch), before measuring steady
STEADY_CYCLES = 12
CUT_CYCLES = 4  # the cut and the cycles after it
CUT_TO = 0.3  # the cap, as a share of the import


def client(port: int, conn: Connection) -> None:
    """GET /status every REQUEST_EVERY_S until told to stop: (sent at, latency) pairs."""
    out: list[tuple[float, float]] = []
    http_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.send("ready")
    while not conn.poll():
        t0 = time.monotonic()
        http_conn.request("GET", "/status")
        resp = http_conn.getresponse()
        resp.read()
        out.append((t0, time.monotonic() - t0))
        time.sleep(REQUEST_EVERY_S)
    http_conn.close()
    conn.send(out)


async def serve(site: Site, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """HTTP/1.1 keep-alive, GET only: the site's status as JSON."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                return
            st = site.status()
            body = json.dumps(
                {
                    "cycle": st.cycle,
                    "limit_kw": st.limit.limit_kw,
                    "rig_budget_kw": st.rig_budget_kw,
                    "rig_power_kw": st.rig_power_kw,
                }
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        writer.close()


async def follow_wall(clock: ManualClock) -> None:
    """The site's clock keeps up with the wall (timers fire as it passes them)."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(TICK_S)
        now = time.monotonic()
        clock.advance(now - last)
        last = now


async def poll_like(lateness: list[tuple[float, float]]) -> None:
    while True:
        t0 = time.monotonic()
        await asyncio.sleep(POLL_EVERY_S)
        lateness.append((t0, time.monotonic() - t0 - POLL_EVERY_S))


def p99(xs: list[float]) -> float:
    return (
        statistics.quantiles(xs, n=100, method="inclusive")[98]
        if len(xs) >= 2
        else (xs[0] if xs else 0.0)
    )


def within(samples: list[tuple[float, float]], windows: list[tuple[float, float]]) -> list[float]:
    return [v for t, v in samples if any(a <= t < b for a, b in windows)]


async def run(tmp: Path) -> int:
    site, clock = build(tmp)
    gc.freeze()  # 50,000 rigs of long-lived objects: out of the collector's way
    cycle = site.cycle
    cycle.restore()
    cycle_ends: list[float] = []
    results: list[CycleResult] = []
    cycle_done = asyncio.Event()

    def on_cycle(result: CycleResult) -> None:
        cycle_ends.append(time.monotonic())
        results.append(result)
        # Readings stay fresh, and the grid meter reads what the last plan asked for.
        feed_meter(site, clock)
        cycle_done.set()

    cycle.listeners.append(on_cycle)
    feed_meter(site, clock)

    server = await asyncio.start_server(lambda r, w: serve(site, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=client, args=(port, there), daemon=True)
    proc.start()
    lateness: list[tuple[float, float]] = []

    async def until_cycles(n: int) -> None:
        for _ in range(n):
            cycle_done.clear()
            await cycle_done.wait()

    steady: list[tuple[float, float]] = []
    cuts: list[tuple[float, float]] = []
    cut_cycles_s: list[float] = []
    async with asyncio.TaskGroup() as tg:
        tasks = [
            tg.create_task(follow_wall(clock)),
            tg.create_task(cycle.run(), name="control-cycle"),
        ]
        await asyncio.get_running_loop().run_in_executor(None, here.recv)  # client ready
        tasks.append(tg.create_task(poll_like(lateness)))
        await until_cycles(SETTLE_CYCLES)
        t0 = cycle_ends[-1]
        await until_cycles(STEADY_CYCLES)
        steady.append((t0, cycle_ends[-1]))
        import_kw = results[-1].snapshot.grid_import_w / 1000.0
        n0 = len(results)
        t0 = time.monotonic()
        site.set_operator_cap(import_kw * CUT_TO, "bench")
        await until_cycles(CUT_CYCLES)
        cuts.append((t0, cycle_ends[-1]))
        for r in results[n0:]:
            cut_cycles_s.append(r.duration_s)
            print(
                f"cycle {r.cycle} after the cut to {import_kw * CUT_TO / 1000:.1f} MW: "
                f"{r.duration_s * 1000:.0f} ms, {len(r.dispatch.shed)} shed commands"
                + (f", fail-safe: {r.failsafe_reason}" if r.failsafe_reason else ""),
                flush=True,
            )
        for t in tasks:
            t.cancel()
    here.send("stop")
    requests: list[tuple[float, float]] = await asyncio.get_running_loop().run_in_executor(
        None, here.recv
    )
    proc.join(30)
    server.close()
    site.stores.db.close()

    api_steady, api_cut = within(requests, steady), within(requests, cuts)
    poll_steady, poll_cut = within(lateness, steady), within(lateness, cuts)
    ms = 1000.0
    steady_s = [r.duration_s for r in results[SETTLE_CYCLES:n0]]
    print(f"rigs: {RIGS}, cut to {CUT_TO:.0%} of the import")
    print(f"steady cycles: median {statistics.median(steady_s) * ms:.0f} ms")
    print(f"the cut and the cycles after it: {', '.join(f'{d * ms:.0f} ms' for d in cut_cycles_s)}")
    print(
        f"control cycles: {len(results)}, overruns {cycle.overruns}, skipped "
        f"{cycle.cycles_skipped}, wakes coalesced {cycle.wakes_coalesced}"
    )
    for name, st, ct in (
        ("API GET /status latency", api_steady, api_cut),
        ("poll lateness", poll_steady, poll_cut),
    ):
        print(
            f"{name}: steady p50 {statistics.median(st) * ms:.1f} ms p99 {p99(st) * ms:.1f} ms "
            f"max {max(st) * ms:.1f} ms (n={len(st)}); during cuts p50 "
            f"{statistics.median(ct) * ms:.1f} ms p99 {p99(ct) * ms:.1f} ms "
            f"max {max(ct) * ms:.1f} ms (n={len(ct)})"
        )
    # A floor for the ratio: on an idle loop both are a few ms, and noise alone would double.
    floor_s = 0.01
    at_most(
        "API p99 during a 70 % cut / steady",
        p99(api_cut) / max(p99(api_steady), floor_s),
        2.0,
        "x",
    )
    at_most(
        "poll lateness p99 during a 70 % cut / steady",
        p99(poll_cut) / max(p99(poll_steady), floor_s),
        2.0,
        "x",
    )
    return finish()


def main() -> int:
    if "--on-loop" in sys.argv[1:]:

        async def on_loop(self: ControlCycle) -> CycleResult:
            return self.run_once()

        ControlCycle.run_once_async = on_loop  # type: ignore[method-assign]
        print("the whole cycle on the event loop (run_once), for comparison")
    with tempfile.TemporaryDirectory() as d:
        return asyncio.run(run(Path(d)))


if __name__ == "__main__":
    sys.exit(main())
