"""Cluster at scale (issue 16): a 200,000-rig simulated site over 4 poller shards and a site
controller, each a separate `python -m minerd run` process, on a real nats-server.

Parts, all real and on loopback: the simulator (`python -m minerd.sim`, its rig worker
processes each serving a slice of the rigs' cgminer listeners on 127.<30+c>.x.y), a
nats-server with JetStream (stopped by its PID), one controller and SHARDS shards built from
role configs as `minerd demo --shards` writes them (minerd.cli.demo_cluster.role_config),
rigs polled every 60 s.

Measured in one run:
1. start-up: seconds from the daemons' start until every rig of every shard is fresh;
2. steady (WINDOW_S, no quota): per process CPU % of one core (utime + stime from
   /proc/<pid>/stat) and RSS (VmRSS), rig polls/s per shard against its schedule, control
   cycle durations and overruns from each daemon's /metrics;
3. a quota cut to CUT of the site's import, posted to the controller: once no shard has
   dispatched for a poll interval plus 40 s (or after 5 poll intervals, as it is: the loop
   may never stop moving rigs), the site's measured hashrate (the
   shards' /metrics summed) against the single-planner bound: control.planner.plan() over
   all the site's rigs (every one awake at nominal, no min-on/off) for the power the site
   measured; cycles and overruns again; every rig still fresh;
4. for comparison, in the same run: the single-process 50,000-rig poller
   (bench_poller.sustained, a 30 s interval) and the single-process 50,000-rig control cycle
   (bench_cycle.run).
Targets: every rig fresh (start-up within START_LIMIT_S, and at the end); each shard's and
the controller's cycles never over their interval (no overrun, slowest cycle's histogram
bucket <= the interval); polls/s per shard >= 98 % of its schedule; hashrate >= 99.5 % of
the bound. RSS per process is printed.

Env: BENCH_CLUSTER_RIGS (200000), BENCH_CLUSTER_SHARDS (4), BENCH_CLUSTER_CONTROL_S (control
interval, 15), BENCH_CLUSTER_WINDOW_S (120), BENCH_CLUSTER_WORKERS (simulator processes; 0:
one per 12,500 rigs), BENCH_CLUSTER_CONCURRENCY (polls in flight per shard; 1000 / shards),
BENCH_CLUSTER_POLL_S (60), BENCH_CLUSTER_SINGLE (1: also the single-process 50,000-rig figures).
Run: .venv/bin/python benchmarks/bench_cluster_scale.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from targets import at_least, at_most, finish

from minerd.cli.demo_cluster import nats_server_binary, role_config, shard_ids
from minerd.control.planner import PlanConstraints, PlanRig, plan
from minerd.devices.inventory import read_inventory_csv
from minerd.model import RigState
from minerd.profiles.loader import load_rig_model
from minerd.settings import load_settings

RIGS = int(os.environ.get("BENCH_CLUSTER_RIGS", "200000"))
SHARDS = int(os.environ.get("BENCH_CLUSTER_SHARDS", "4"))
CONTROL_S = float(os.environ.get("BENCH_CLUSTER_CONTROL_S", "15"))
WINDOW_S = float(os.environ.get("BENCH_CLUSTER_WINDOW_S", "120"))
WORKERS = int(os.environ.get("BENCH_CLUSTER_WORKERS", "0")) or -(-RIGS // 12_500)
CONCURRENCY = int(os.environ.get("BENCH_CLUSTER_CONCURRENCY", "0")) or 1000 // SHARDS
SINGLE = os.environ.get("BENCH_CLUSTER_SINGLE", "1") == "1"
POLL_S = float(os.environ.get("BENCH_CLUSTER_POLL_S", "60"))
TIMEOUT_S = 3.0
CUT = 0.7
RIG_PORT = 26028
BASE_OCTET = 30  # up to 200 containers: 127.30.x.y .. 127.229.x.y
# every rig fresh within this of the daemons' start
START_LIMIT_S = float(os.environ.get("BENCH_CLUSTER_START_LIMIT_S", "600"))
SETTLE_LIMIT_S = 5 * POLL_S  # then measured as it is (a loop that never stops moving rigs)
QUIET_S = POLL_S + 40.0  # slowest reaction of these rigs (30 s) + 2 cycles, then a poll
SCRAPE_S = 5.0
TICKS = os.sysconf("SC_CLK_TCK")
_CYCLE_TOP_S = 10.0  # the largest finite bucket of minerd_control_cycle_duration_seconds


# ------------------------------------------------------------------ processes


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process (threads included), in seconds; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out


def stop_pid(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM by PID, SIGKILL if it lingers; always reaped."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Role:
    name: str
    listen: str
    config: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    def start(self, workdir: Path) -> None:
        self.log = workdir / f"{self.name}.log"
        argv = [sys.executable, "-m", "minerd", "--log-level", "warning", "run", "-c"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*argv, str(self.config)], cwd=workdir, stdout=out, stderr=out,
                start_new_session=True,
            )  # fmt: skip

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-3000:]


def start_sim(workdir: Path, api_listen: str) -> tuple[subprocess.Popen[bytes], Path, float]:
    config = workdir / "site.toml"
    per_container = max(250, -(-RIGS // 200))
    argv = [
        sys.executable, "-m", "minerd.sim",
        "--rigs", str(RIGS),
        "--workers", str(WORKERS),
        "--rigs-per-container", str(per_container),
        "--port", str(RIG_PORT),
        "--base-octet", str(BASE_OCTET),
        "--control", f"127.0.0.1:{free_port()}",
        "--meter-port", "0",
        "--plc-port", "0",
        "--write-config", str(config),
        "--api-listen", api_listen,
    ]  # fmt: skip
    # Its output goes to a file: a pipe nobody reads fills up and blocks the simulator.
    log = workdir / "sim.log"
    t0 = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    while time.monotonic() - t0 < 600 and proc.poll() is None:
        if any(line.startswith("minerd sim: config ") for line in log.read_text().splitlines()):
            return proc, config, time.monotonic() - t0
        time.sleep(0.5)
    stop_sim(proc)
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"simulator did not write its config (exit {proc.poll()}):\n{tail}")


def stop_sim(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_nats(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js"]
    with (workdir / "nats-server.log").open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "-sd", str(workdir / "js")], stdout=out, stderr=out, start_new_session=True
        )
    import socket

    for _ in range(200):
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"nats://127.0.0.1:{port}"
        time.sleep(0.05)
    stop_pid(proc)
    raise RuntimeError("nats-server did not listen")


def without_feeders(text: str) -> str:
    """The config without its feeder meters: the simulator serves all 200 behind one Modbus
    gateway, read one request at a time on one link at 1 s each, which a loaded 2-core machine
    cannot answer within the 0.5 s timeout (a real site has a gateway per container). The
    grid meter, all the closed loop reads, stays."""
    blocks = text.split("\n\n")
    return "\n\n".join(
        b for b in blocks if not (b.startswith("[[meters]]") and 'role = "feeder"' in b)
    )


def tune(text: str) -> str:
    """Rigs polled every POLL_S; the control interval CONTROL_S; each shard's polls in flight
    CONCURRENCY (the site's 1,000 shared: the rigs here are simulated on the same 2 cores,
    and 4 x 1,000 connections at once queue past the read timeout in the first round)."""
    text = text.replace("[[rigs]]\n", f"[[rigs]]\ninterval_s = {POLL_S}\ntimeout_s = {TIMEOUT_S}\n")
    control = f"[control]\ninterval_s = {CONTROL_S}\npoll_concurrency = {CONCURRENCY}\n"
    return text.replace("[control]\n", control, 1)


def write_roles(workdir: Path, base: str, listen: str, nats_url: str) -> list[Role]:
    shards = shard_ids(SHARDS)
    common = {"nats_url": json.dumps(nats_url), "shards": json.dumps(list(shards))}
    specs = [("controller", listen, {"role": '"controller"', "controller_id": '"controller"'})]
    for s in shards:
        addr = f"127.0.0.1:{free_port()}"
        specs.append((f"shard-{s}", addr, {"role": '"shard"', "shard_id": f'"{s}"'}))
    roles = []
    for name, addr, cluster in specs:
        path = workdir / f"{name}.toml"
        path.write_text(role_config(base, addr, name, {**cluster, **common}), encoding="utf-8")
        roles.append(Role(name, addr, path))
    return roles


# ------------------------------------------------------------------ /metrics


def parse_metrics(text: str) -> dict[str, float]:
    """name{labels} -> value, for the series this bench reads."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        key, _, value = line.rpartition(" ")
        if key.startswith(("minerd_", "process_")):
            with contextlib.suppress(ValueError):
                out[key] = float(value)
    return out


def scrape(http: httpx.Client, role: Role) -> dict[str, float]:
    try:
        r = http.get(f"{role.url}/metrics")
        if r.status_code == 200:
            role.metrics = parse_metrics(r.text)
    except httpx.HTTPError:
        pass
    return role.metrics


def metric(m: dict[str, float], name: str, default: float = 0.0) -> float:
    """The one sample whose key starts with name (labels ignored), or the sum of several."""
    hits = [v for k, v in m.items() if k == name or k.startswith(name + "{")]
    return sum(hits) if hits else default


def cycle_hist(m: dict[str, float]) -> dict[float, float]:
    """le -> count of the control loop's cycle duration histogram."""
    out = {}
    for k, v in m.items():
        if k.startswith("minerd_control_cycle_duration_seconds_bucket{") and 'loop="control"' in k:
            le = k.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = v
    return out


def cycles(before: dict[str, float], after: dict[str, float]) -> tuple[int, float, float, int]:
    """(cycles, mean s, the slowest cycle's bucket upper bound s, overruns) between scrapes."""
    count_key = 'minerd_control_cycle_duration_seconds_count{loop="control"}'
    sum_key = 'minerd_control_cycle_duration_seconds_sum{loop="control"}'
    n = int(after.get(count_key, 0) - before.get(count_key, 0))
    total = after.get(sum_key, 0) - before.get(sum_key, 0)
    h0, h1 = cycle_hist(before), cycle_hist(after)
    below = [le for le in sorted(h1) if h1[le] - h0.get(le, 0) >= n]
    slowest = below[0] if below and n else 0.0
    overruns = int(
        metric(after, "minerd_control_cycle_overruns_total")
        - metric(before, "minerd_control_cycle_overruns_total")
    )
    return n, total / n if n else 0.0, slowest, overruns


# ------------------------------------------------------------------ the bound


def site_fleet(config: Path) -> list[PlanRig]:
    """Every rig of the site, awake at nominal, free to be put anywhere (no min-on/off)."""
    settings = load_settings(config)
    rigs = []
    for g in settings.rigs:
        model = load_rig_model(g.profile)
        assert g.csv is not None
        for row in read_inventory_csv(g.csv, g.port, g.container):
            rigs.append(
                PlanRig(f"{row.host}", model, True, model.nominal_power_w, RigState.HASHING)
            )
    return rigs


# ------------------------------------------------------------------ the run


@dataclass
class Sample:
    wall_s: float
    metrics: dict[str, dict[str, float]]
    cpu_s: dict[str, float]


def sample(http: httpx.Client, roles: list[Role], others: dict[str, int]) -> Sample:
    ms = {r.name: dict(scrape(http, r)) for r in roles}
    cpu = {r.name: proc_cpu_s(r.proc.pid) for r in roles if r.proc is not None}
    cpu.update({name: proc_cpu_s(pid) for name, pid in others.items()})
    return Sample(time.monotonic(), ms, cpu)


def shard_roles(roles: list[Role]) -> list[Role]:
    return [r for r in roles if r.name.startswith("shard-")]


def fresh_counts(roles: list[Role]) -> tuple[int, int]:
    """(rigs fresh, rigs) over the shards, from their last scrapes."""
    fresh = total = 0
    for r in shard_roles(roles):
        n = int(metric(r.metrics, "minerd_rigs"))
        total += n
        if r.metrics:
            fresh += n - int(metric(r.metrics, "minerd_site_stale_rigs", n))
    return fresh, total


def check_alive(roles: list[Role]) -> None:
    for r in roles:
        if not r.alive():
            raise RuntimeError(f"{r.name} stopped on its own:\n{r.tail()}")


def report_window(label: str, a: Sample, b: Sample, roles: list[Role], others: dict[str, int]):
    wall = b.wall_s - a.wall_s
    print(f"{label}: {wall:.0f} s window", flush=True)
    worst = []
    for r in roles:
        m0, m1 = a.metrics[r.name], b.metrics[r.name]
        n, mean_s, slowest_s, overruns = cycles(m0, m1)
        cpu = (b.cpu_s[r.name] - a.cpu_s[r.name]) / wall
        polls = (metric(m1, "minerd_polls_total") - metric(m0, "minerd_polls_total")) / wall
        rigs = int(metric(m1, "minerd_rigs"))
        assert r.proc is not None
        print(
            f"  {r.name:<12} CPU {cpu * 100:5.1f} % of a core, RSS {proc_rss_mb(r.proc.pid):6.0f}"
            f" MB; {rigs} rigs, {polls:6.0f} reads/s; {n} control cycles, mean {mean_s:.3f} s, "
            f"slowest {slowest_label(slowest_s)}, {overruns} over {CONTROL_S:g} s",
            flush=True,
        )
        worst.append((r.name, n, slowest_s, overruns, polls, rigs))
    for name, pid in others.items():
        cpu = (b.cpu_s[name] - a.cpu_s[name]) / wall
        print(f"  {name:<12} CPU {cpu * 100:5.1f} % of a core, RSS {proc_rss_mb(pid):6.0f} MB")
    return worst


def slowest_label(slowest_s: float) -> str:
    """The slowest cycle's histogram bucket, said as a bound."""
    return f"> {_CYCLE_TOP_S:g} s" if math.isinf(slowest_s) else f"<= {slowest_s:g} s"


def cycle_targets(label: str, worst: list[tuple[str, int, float, int, float, int]]) -> None:
    for name, n, slowest_s, overruns, _polls, _rigs in worst:
        at_least(f"{label}: {name} control cycles in the window", n, 1)
        at_most(f"{label}: {name} slowest control cycle (bucket)", slowest_s, CONTROL_S, " s")
        at_most(f"{label}: {name} cycles over the {CONTROL_S:g} s interval", overruns, 0)


def run_cluster(workdir: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    sim, site_toml, sim_up_s = start_sim(workdir, listen)
    nats: subprocess.Popen[bytes] | None = None
    roles: list[Role] = []
    try:
        base = tune(without_feeders(site_toml.read_text(encoding="utf-8")))
        grid_token = json.loads(
            next(
                line.split(" = ", 1)[1]
                for line in Path(str(site_toml) + ".tokens").read_text().splitlines()
                if line.startswith("grid = ")
            )
        )
        nats, nats_url = start_nats(workdir)
        roles = write_roles(workdir, base, listen, nats_url)
        sim_pids = {"simulator": sim.pid}
        for n, pid in enumerate(sorted(children_of(sim.pid))):
            sim_pids[f"sim-worker-{n}"] = pid
        others = {**sim_pids, "nats-server": nats.pid}
        print(
            f"site: {RIGS} rigs, {WORKERS} simulator worker processes (up in {sim_up_s:.0f} s); "
            f"{SHARDS} shards + controller as processes, rigs polled every {POLL_S:g} s, "
            f"control every {CONTROL_S:g} s; machine: {os.cpu_count()} cores",
            flush=True,
        )
        started = time.monotonic()
        for r in roles:
            r.start(workdir)
        with httpx.Client(timeout=30.0) as http:
            fresh_s = wait_fresh(http, roles, started)
            if fresh_s >= START_LIMIT_S:  # what broke: the figures of the last minute
                fresh, _ = fresh_counts(roles)
                print(f"only {fresh}/{RIGS} rigs fresh {fresh_s:.0f} s after start", flush=True)
                a = sample(http, roles, others)
                time.sleep(POLL_S)
                report_window("not all fresh", a, sample(http, roles, others), roles, others)
                at_least("rigs fresh within the start-up limit", fresh, RIGS)
                return
            print(f"every rig fresh {fresh_s:.0f} s after the daemons' start", flush=True)
            at_most("all rigs fresh after start", fresh_s, START_LIMIT_S, " s")
            # Let the first round's burst pass: each rig moves to its slot of the interval.
            time.sleep(POLL_S)
            a = sample(http, roles, others)
            time.sleep(WINDOW_S)
            check_alive(roles)
            b = sample(http, roles, others)
            worst = report_window("steady, no quota", a, b, roles, others)
            cycle_targets("steady", worst)
            for name, _n, _s, _o, polls, rigs in worst:
                if name.startswith("shard-"):
                    at_least(f"steady: {name} reads/s (98 % of its schedule)", polls,
                             0.98 * rigs / POLL_S)  # fmt: skip
            cut(http, roles, others, site_toml, grid_token, b)
        fresh, total = fresh_counts(roles)
        print(f"at the end: {fresh}/{total} rigs fresh", flush=True)
        at_least("rigs fresh at the end", fresh, RIGS)
    finally:
        for r in roles:
            if r.proc is not None:
                stop_pid(r.proc)
        if nats is not None:
            stop_pid(nats)
        stop_sim(sim)
        print(f"cluster part: {time.monotonic() - t0:.0f} s of wall time", flush=True)


def wait_fresh(http: httpx.Client, roles: list[Role], started: float) -> float:
    last_print = 0.0
    while time.monotonic() - started < START_LIMIT_S:
        check_alive(roles)
        for r in shard_roles(roles):
            scrape(http, r)
        fresh, total = fresh_counts(roles)
        if total == RIGS and fresh == RIGS:
            return time.monotonic() - started
        if time.monotonic() - last_print >= 30:
            last_print = time.monotonic()
            print(f"  {time.monotonic() - started:4.0f} s: {fresh}/{RIGS} rigs fresh", flush=True)
        time.sleep(SCRAPE_S)
    return time.monotonic() - started


def cut(
    http: httpx.Client,
    roles: list[Role],
    others: dict[str, int],
    site_toml: Path,
    grid_token: str,
    before: Sample,
) -> None:
    ctl = roles[0]
    import_w = metric(before.metrics[ctl.name], "minerd_site_grid_power_watts")
    limit_kw = CUT * import_w / 1000.0
    r = http.post(
        f"{ctl.url}/api/v1/quotas",
        json={"limit_kw": round(limit_kw, 1)},
        headers={"Authorization": f"Bearer {grid_token}"},
    )
    assert r.status_code == 201, r.text
    posted = time.monotonic()
    print(f"quota {limit_kw:.0f} kW posted ({CUT:.0%} of {import_w / 1000:.0f} kW)", flush=True)
    # Settled: no shard has sent a command for one poll interval after the slowest reaction
    # (QUIET_S), so every reading is of a rig that has finished moving to its last command.
    last_cmds, quiet_since, quiet = -1.0, time.monotonic(), False
    while time.monotonic() - posted < SETTLE_LIMIT_S:
        check_alive(roles)
        shards = shard_roles(roles)
        cmds = sum(metric(scrape(http, s), "minerd_dispatch_commands_total") for s in shards)
        if cmds != last_cmds:
            last_cmds, quiet_since = cmds, time.monotonic()
        elif cmds > 0 and time.monotonic() - quiet_since >= QUIET_S:
            quiet = True
            break
        time.sleep(SCRAPE_S)
    settled_s = time.monotonic() - posted
    if not quiet:
        print(
            f"  shards still dispatching {settled_s:.0f} s after the quota: {last_cmds:.0f} "
            f"commands since start, measured as it is",
            flush=True,
        )
    after = sample(http, roles, others)
    worst = report_window("quota cut, to settled", before, after, roles, others)
    cycle_targets("cut", worst)
    shards = shard_roles(roles)
    power_w = sum(metric(after.metrics[s.name], "minerd_site_rig_power_watts") for s in shards)
    hashrate = sum(
        metric(after.metrics[s.name], "minerd_site_hashrate_terahashes_per_second") for s in shards
    )
    budget_w = metric(after.metrics[ctl.name], "minerd_site_budget_watts")
    grid_w = metric(after.metrics[ctl.name], "minerd_site_grid_power_watts")
    fleet = site_fleet(site_toml)
    bound = plan(power_w, fleet, PlanConstraints()).hashrate_ths
    at_budget = plan(budget_w, fleet, PlanConstraints()).hashrate_ths
    print(
        f"settled {settled_s:.0f} s after the quota ({last_cmds:.0f} commands sent): import "
        f"{grid_w / 1000:.0f} kW against {limit_kw:.0f} kW; rigs {power_w / 1000:.0f} kW "
        f"(rig budget {budget_w / 1000:.0f} kW), {hashrate:.0f} TH/s; one plan() over all "
        f"{len(fleet)} rigs: {bound:.0f} TH/s at the rigs' power, {at_budget:.0f} TH/s at the "
        f"budget; sharded / single {hashrate / bound:.5f}",
        flush=True,
    )
    at_most("import under the quota", grid_w / 1000.0, limit_kw, " kW")
    at_least("site hashrate / one planner at the same power", hashrate / bound, 0.995)


def run_single() -> None:
    """The single-process 50,000-rig figures: bench_poller's sustained poll and bench_cycle."""
    import bench_cycle
    import bench_poller

    print("\nsingle process, 50,000 rigs (bench_poller: 30 s poll interval):", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-single-") as tmp:
        sim = bench_poller.start_sim(Path(tmp))
        try:
            asyncio.run(single_poll(sim))
        finally:
            sim.stop()
    print("single process, 50,000 rigs, one control cycle (bench_cycle):", flush=True)
    asyncio.run(bench_cycle.run())


async def single_poll(sim: object) -> None:
    import bench_poller

    from minerd.daemon.assembly import build_devices

    assert isinstance(sim, bench_poller.Sim)
    bench_poller.tune(sim.config)
    settings = load_settings(sim.config)
    devices = build_devices(settings)
    try:
        s = await bench_poller.sustained(devices, settings.control.poll_concurrency)
    finally:
        await devices.aclose()
    print(
        f"  {len(devices.rigs)} rigs: {s['rate']:.0f} rig polls/s (schedule "
        f"{len(devices.rigs) / bench_poller.INTERVAL_S:.0f}/s), {s['fresh']:.0f} fresh; CPU "
        f"{s['cpu_share'] * 100:.0f} % of a core, RSS {s['rss_mb']:.0f} MB; first round "
        f"{s['first_round_s']:.0f} s",
        flush=True,
    )


def main() -> int:
    # A SIGTERM (run_all's timeout, a Ctrl-C'd make) stops every process this bench started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench-cluster-scale-") as tmp:
        run_cluster(Path(tmp))
    if SINGLE:
        run_single()
    return finish()


if __name__ == "__main__":
    sys.exit(main())
