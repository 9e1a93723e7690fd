"""The fault matrix (issue 18): each fault alone on a simulated site under a quota.

Every row starts the simulator and the real daemon, brings the site under a quota, injects
one fault and judges by the simulator's truth (site import, sampled every 0.5 simulated s),
never by what the daemon believes. Per row it records the seconds over the effective limit
after the fault, the worst excess, and whether control continued.

The common plan of a row (sim seconds):
- warm-up at full load, then quota Q1 = 60 % of full load, settled for SETTLE_S;
- at t_fault a second quota Q2 = 40 % is posted, starting at t_fault + CUT_AFTER_S (a
  day-ahead step, accepted before the fault), and the fault is injected: control must
  still act on Q2 while the fault lasts;
- the effective limit is Q1, then Q2; for grid-meter faults the fail-safe limit (50 %)
  applies once the daemon can know the meter is stale (stale_after_s + one meter interval);
- "rigs-ignore" is a cut itself: from full load to 30 % with 10 % of rigs ignoring commands.

Target per row: seconds over <= sleep time + 2 control cycles (3 for "rigs-ignore"), control
continued (daemon alive and cycling), and for the lock-out row no fail-safe for the grid's
silence. Fail-safe seconds (by reason) and the longest gap between cycles are reported too.

Rows run the daemon in this process on the simulator's ScaledClock (seen through
SteppedClock, so the clock rows can step its wall time), except
"kill-9" and "api-flood", which run `python -m minerd run` as a child in real time (the kill
needs a process; the flood needs the daemon's own file-descriptor limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import re
import resource
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from scenario_kit import MODEL, DaemonProcess, Recorder, Sample, Tuning, site_spec, tune_config
from servers import ServerProcess, free_port, start_mosquitto, start_victoria_metrics

from minerd.clock import ScaledClock, TimerHandle
from minerd.daemon.app import Daemon
from minerd.profiles import load_rig_model
from minerd.runtime.cycle import CycleResult
from minerd.settings import load_settings
from minerd.sim import SimSite

SLEEP_S = load_rig_model(MODEL).sleep_time_s
TUNING = Tuning()
CYCLE_S = TUNING.control_interval_s
STALE_BY_S = TUNING.meter_stale_after_s + TUNING.meter_interval_s
SAMPLE_S = 0.5  # sim seconds between truth samples
SETTLE_S = 15.0  # after Q1, before the fault
CUT_AFTER_S = 15.0  # Q2 starts this long after the fault
Q1_FRACTION, Q2_FRACTION, CUT_FRACTION = 0.6, 0.4, 0.3
IGNORING_FRACTION = 0.1
HEARTBEAT_S = 30.0
CHECKIN_EVERY_S = 10.0
CLOCK_STEP_S = 600.0


@dataclass(frozen=True)
class Size:
    """How big a matrix run is: the short form in make test, the full one in make bench."""

    rigs: int
    speed: float  # in-process rows; process rows run in real time
    flood_connections: int
    flood_nofile: int | None  # the daemon's RLIMIT_NOFILE in the flood row; None: inherited
    flooders: int = 1  # client processes sharing the flood (each under its own fd limit)
    base_octet: int = 220


@dataclass(frozen=True)
class Row:
    name: str
    what: str
    process: bool = False  # run `minerd run` as a child in real time
    extra_cycles: int = 2
    window_s: float = CUT_AFTER_S + 20.0  # sim seconds judged after the fault
    meter_fault: str = ""  # grid meter fault: fail-safe is the expected response
    no_failsafe: bool = False  # set the grid heartbeat; its silence must not cause fail-safe
    tuning: Tuning = TUNING

    @property
    def target_s(self) -> float:
        return SLEEP_S + self.extra_cycles * CYCLE_S


ROWS: tuple[Row, ...] = (
    Row("storage-full", "SQLite writes fail with SQLITE_FULL (file system full)"),
    Row("storage-readonly", "SQLite writes fail with SQLITE_READONLY"),
    Row("api-flood", "idle TCP connections to the API beyond its cap", process=True),
    Row("meter-frozen", "grid meter registers frozen", meter_fault="frozen"),
    Row("meter-offline", "grid meter gateway answers 0x0B", meter_fault="offline"),
    Row("meter-exception", "grid meter answers exception 4", meter_fault="modbus_exception"),
    Row("rigs-ignore", "10 % of rigs ignore commands at a cut", extra_cycles=3, window_s=50.0),
    Row(
        "kill-9",
        "kill -9, restart on the same database",
        process=True,
        # The product's fast ramp and switch holds longer than the row: a restart that
        # forgets when rigs switched, or wakes before measuring, overshoots here.
        tuning=Tuning(ramp_up_kw_per_s=500.0, min_on_s=60.0, min_off_s=60.0),
    ),
    Row("broker-down", "MQTT broker (sinks, alerts, quota input) stopped"),
    Row("tsdb-down", "VictoriaMetrics (InfluxDB API) stopped"),
    Row("clock+10min", "daemon's wall clock steps +10 min"),
    Row("clock-10min", "daemon's wall clock steps -10 min"),
    Row(
        "lockout",
        "bad tokens from the grid's address; heartbeat 30 s",
        window_s=60.0,
        no_failsafe=True,
    ),
)


@dataclass(frozen=True)
class RowResult:
    row: Row
    over_s: float  # sim seconds over the effective limit after the fault
    peak_excess_kw: float
    last_over_after_s: float | None  # sim s from the fault to the last sample over
    control_continued: bool
    failsafe_s: float | None  # sim s in fail-safe after the fault (None: not observed)
    limit_kw: float  # the effective limit at the end of the window
    end_kw: float  # mean import over the last 5 s
    note: str
    silent_s: float = 0.0  # sim s of fail-safe for the grid authority's silence
    max_gap_s: float | None = None  # longest sim s without a control cycle after the fault

    @property
    def failures(self) -> list[str]:
        why = []
        if self.over_s > self.row.target_s:
            why.append(f"{self.over_s:.1f} s over > target {self.row.target_s:.0f} s")
        if not self.control_continued:
            why.append("control did not continue")
        if self.row.no_failsafe and self.silent_s > 0:
            why.append(f"fail-safe for the grid's silence {self.silent_s:.1f} s")
        return why

    @property
    def passed(self) -> bool:
        return not self.failures


TABLE_HEAD = (
    f"{'row':<17} {'over s':>7} {'target':>6} {'peak kW':>8} {'last s':>6} "
    f"{'control':>7} {'gap s':>5} {'failsafe s':>10} {'end/limit kW':>14}  verdict / note"
)


def format_row(r: RowResult) -> str:
    last = "-" if r.last_over_after_s is None else f"{r.last_over_after_s:.1f}"
    fs = "-" if r.failsafe_s is None else f"{r.failsafe_s:.1f}"
    gap = "-" if r.max_gap_s is None else f"{r.max_gap_s:.1f}"
    verdict = "ok" if r.passed else "FAIL: " + "; ".join(r.failures)
    return (
        f"{r.row.name:<17} {r.over_s:7.1f} {r.row.target_s:6.0f} {r.peak_excess_kw:8.2f} "
        f"{last:>6} {'yes' if r.control_continued else 'NO':>7} {gap:>5} {fs:>10} "
        f"{r.end_kw:6.1f}/{r.limit_kw:<7.1f}  {verdict}{' | ' + r.note if r.note else ''}"
    )


def format_table(results: list[RowResult]) -> str:
    return "\n".join([TABLE_HEAD, *(format_row(r) for r in results)])


def over_stats(
    samples: list[Sample], limit_at: Callable[[float], float], t_fault: float
) -> tuple[float, float, float | None]:
    """(seconds over, peak excess kW, last over sample after the fault) over the samples.

    A sample over the limit counts for the time to the next sample (at most 2 sample
    periods, so a stalled recorder cannot inflate it)."""
    over_s = peak_kw = 0.0
    last: float | None = None
    for i, s in enumerate(samples):
        excess = s.power_kw - limit_at(s.t_s)
        if excess <= 0:
            continue
        nxt = samples[i + 1].t_s if i + 1 < len(samples) else s.t_s + SAMPLE_S
        over_s += min(nxt - s.t_s, 2 * SAMPLE_S)
        peak_kw = max(peak_kw, excess)
        last = s.t_s - t_fault
    return over_s, peak_kw, last


def iso(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).isoformat()


async def post_quota(
    http: httpx.AsyncClient, grid_token: str, limit_kw: float, start_s: float | None = None
) -> None:
    body: dict[str, object] = {"limit_kw": limit_kw}
    if start_s is not None:
        body["start"] = iso(start_s)
    r = await http.post(
        "/api/v1/quotas", json=body, headers={"Authorization": f"Bearer {grid_token}"}
    )
    assert r.status_code == 201, f"quota {limit_kw} kW refused: {r.status_code} {r.text}"


async def truth_kw(sim: SimSite) -> float:
    site = (await sim.truth(include_rigs=False))["site"]
    assert isinstance(site, dict)
    return float(site["power_w"]) / 1000.0


# ---------------------------------------------------------------- the daemon's clock


class SteppedClock:
    """The simulator's clock as the daemon sees it, with a wall-clock step.

    A system clock step moves time.time() and leaves time.monotonic() alone: so does this.
    The simulator (rig physics, meters, truth) keeps the undisturbed time."""

    def __init__(self, base: ScaledClock) -> None:
        self.base = base
        self.speed = base.speed
        self.step_s = 0.0

    def now_s(self) -> float:
        return self.base.now_s() + self.step_s

    def monotonic_s(self) -> float:
        return self.base.monotonic_s()

    async def sleep(self, seconds: float) -> None:
        await self.base.sleep(seconds)

    def timeout(self, seconds: float | None) -> contextlib.AbstractAsyncContextManager[object]:
        return self.base.timeout(seconds)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> TimerHandle:
        return self.base.call_later(seconds, callback)


# ---------------------------------------------------------------- storage faults


def mount_tmpfs(where: Path, size_mb: int = 32) -> bool:
    """A small tmpfs for the daemon's database, so "full" is a real ENOSPC (needs root)."""
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill_filesystem(ballast: Path) -> int:
    """Write ballast until the file system refuses a single byte more; bytes written."""
    written = 0
    with ballast.open("ab", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    f.write(block)
                    written += chunk
                except OSError:
                    break
    return written


def fill_disk_under(db: Path) -> str:
    """The disk under the daemon's database is full, WAL included.

    A WAL keeps its length after a checkpoint, so writes could go on into space it already
    has: a TRUNCATE checkpoint from a second connection empties it first, then the ballast
    takes every free byte, and every commit of the daemon needs space the disk lacks."""
    ballast = db.parent / "ballast.bin"
    with contextlib.closing(sqlite3.connect(db, timeout=5.0)) as conn:
        for _ in range(100):
            if not conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                break
            time.sleep(0.01)  # the daemon is mid-transaction: try again
    n = fill_filesystem(ballast)
    wal = db.with_name(db.name + "-wal")
    return f"{n >> 20} MiB ballast, WAL {wal.stat().st_size if wal.exists() else 0} B"


def _daemon_connection(
    daemon: Daemon,
) -> tuple[sqlite3.Connection, contextlib.AbstractContextManager[object]]:
    """The daemon's own SQLite connection and its lock (fault injection reaches into them)."""
    db = daemon.db
    conn = getattr(db, "_conn", None)
    lock = getattr(db, "_lock", None)
    assert isinstance(conn, sqlite3.Connection) and lock is not None, (
        "minerd.storage.Database no longer keeps _conn/_lock: update the fault hook"
    )
    return conn, lock


async def hold_pragma(daemon: Daemon, pragma: str, stop: asyncio.Event) -> None:
    """Keep a PRAGMA on the daemon's connection, again if it opens a new one."""
    applied: sqlite3.Connection | None = None
    while not stop.is_set():
        with contextlib.suppress(AssertionError):
            conn, lock = _daemon_connection(daemon)
            if conn is not applied:
                with lock:
                    conn.execute(pragma)
                applied = conn
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- API flood (child process)

FLOODER = r"""
import asyncio, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sources = [f"127.77.0.{i}" for i in range(1, 17)]
async def main():
    conns = []
    sem = asyncio.Semaphore(1000)
    async def one(i):
        async with sem:
            try:
                conns.append(await asyncio.wait_for(asyncio.open_connection(
                    host, port, local_addr=(sources[i % len(sources)], 0)), 3))
            except Exception:
                pass
    await asyncio.gather(*(one(i) for i in range(count)))
    print(f"opened {len(conns)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    closed = sum(1 for r, w in conns if getattr(r, "_eof", False) or w.is_closing())
    print(f"closed-by-server {closed}", flush=True)
    for _, w in conns:
        w.close()
asyncio.run(main())
"""


class Flood:
    """Idle TCP connections to the API from child processes (their fds are not ours)."""

    def __init__(self, host: str, port: int, count: int, processes: int) -> None:
        self.args = (host, port, count, processes)
        self.procs: list[asyncio.subprocess.Process] = []
        self.opened = 0
        self.closed_by_server = 0

    async def start(self) -> None:
        host, port, count, n = self.args
        for k in range(n):
            share = count // n + (1 if k < count % n else 0)
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    FLOODER,
                    host,
                    str(port),
                    str(share),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for p in self.procs:
            assert p.stdout is not None
            async with asyncio.timeout(60):
                line = (await p.stdout.readline()).decode()
            self.opened += int(line.split()[1]) if line.startswith("opened") else 0

    async def stop(self) -> None:
        for p in self.procs:
            if p.returncode is None and p.stdin is not None:
                p.stdin.close()
        for p in self.procs:
            with contextlib.suppress(TimeoutError, ValueError, IndexError):
                assert p.stdout is not None
                async with asyncio.timeout(15):
                    line = (await p.stdout.readline()).decode()
                    self.closed_by_server += int(line.split()[1])
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
            await p.wait()
        self.procs.clear()


class LimitedDaemon(DaemonProcess):
    """`python -m minerd run` with its own open-files limit."""

    def __init__(self, config: Path, log: Path, api: str, nofile: int | None) -> None:
        super().__init__(config, log, api)
        self.nofile = nofile

    async def start(self) -> None:
        nofile = self.nofile

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "minerd", "run", "-c", str(self.config),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=limit,
            )  # fmt: skip

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)


def commands_since(db: Path, since_s: float) -> int:
    """Rig commands journaled with their intent at or after since_s (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        row = c.execute(
            "SELECT count(*) FROM command_journal WHERE intent_at_s >= ?", (since_s,)
        ).fetchone()
    return int(row[0])


# ---------------------------------------------------------------- one row


@dataclass
class _Plan:
    """The quotas of a row and the effective limit they make, in sim time."""

    q1_kw: float
    q2_kw: float
    t_fault: float
    failsafe_kw: float | None = None  # from t_fault + STALE_BY_S, for meter rows
    cut: bool = False  # rigs-ignore: contracted until t_fault, then q2_kw
    contracted_kw: float = math.inf

    @property
    def q2_start(self) -> float:
        return self.t_fault + CUT_AFTER_S

    def limit_at(self, t_s: float) -> float:
        if self.cut:
            return self.q2_kw if t_s >= self.t_fault else self.contracted_kw
        limit = self.q2_kw if t_s >= self.q2_start else self.q1_kw
        if self.failsafe_kw is not None and t_s >= self.t_fault + STALE_BY_S:
            limit = min(limit, self.failsafe_kw)
        return limit


class WarningCount(logging.Handler):
    """Counts the daemon's WARNING and worse records (evidence that a fault bit)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if not self.first:
            self.first = record.getMessage()[:100]


@dataclass
class _Extras:
    servers: dict[str, ServerProcess] = field(default_factory=dict)
    mounted: Path | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    notes: list[str] = field(default_factory=list)
    ignoring: list[str] = field(default_factory=list)


def _config_extras(row: Row, extras: _Extras) -> str:
    """TOML the row adds to the simulator's config (after tune_config)."""
    lines = []
    if "mqtt" in extras.servers:
        url = extras.servers["mqtt"].url
        lines += ["[mqtt]", "enabled = true", f'url = "{url}"', "quota_input = true", ""]
        lines += ["[alerts]", "mqtt = true", ""]
    if "tsdb" in extras.servers:
        url = extras.servers["tsdb"].url
        lines += [
            "[influx]", "enabled = true", 'api = "v2"', f'url = "{url}"', 'org = "fm"',
            'bucket = "fm"', 'token = "fm"', "flush_interval_s = 1.0", "",
        ]  # fmt: skip
    return "\n".join(lines)


def _edit_config(config: Path, row: Row, extras: _Extras) -> None:
    text = config.read_text(encoding="utf-8")
    if row.no_failsafe:
        text = text.replace("[grid]\n", f"[grid]\nquota_heartbeat_s = {HEARTBEAT_S}\n", 1)
    if extras.mounted is not None:
        text, n = re.subn(r'(?m)^path = "([^"/]+)"$', r'path = "db/\1"', text, count=1)
        assert n == 1, "no [storage] path in the written config"
    config.write_text(text + "\n" + _config_extras(row, extras), encoding="utf-8")


async def _stop_tasks(extras: _Extras) -> None:
    extras.stop.set()
    for t in extras.tasks:
        t.cancel()
    for t in extras.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    extras.tasks.clear()


async def run_row(row: Row, size: Size, workdir: Path, octet: int) -> RowResult:
    extras = _Extras()
    try:
        if row.name == "broker-down":
            extras.servers["mqtt"] = await asyncio.to_thread(start_mosquitto, workdir / "mqtt")
        if row.name == "tsdb-down":
            srv = await asyncio.to_thread(start_victoria_metrics, workdir / "vm")
            extras.servers["tsdb"] = srv
        if row.name == "storage-full":
            if await asyncio.to_thread(mount_tmpfs, workdir / "db"):
                extras.mounted = workdir / "db"
            else:
                extras.notes.append("no tmpfs (not root): SQLITE_FULL from max_page_count")
        if row.process:
            return await _run_process_row(row, size, workdir, octet, extras)
        return await _run_inproc_row(row, size, workdir, octet, extras)
    finally:
        await _stop_tasks(extras)
        for srv in extras.servers.values():
            await asyncio.to_thread(srv.stop)
        if extras.mounted is not None:
            await asyncio.to_thread(umount, extras.mounted)


async def _run_inproc_row(
    row: Row, size: Size, workdir: Path, octet: int, extras: _Extras
) -> RowResult:
    async with SimSite(site_spec(size.rigs, base_octet=octet, speed=size.speed)) as sim:
        config = workdir / "site.toml"
        listen = f"127.0.0.1:{free_port()}"
        tokens = sim.write_config(config, api_listen=listen)
        tune_config(config, row.tuning)
        _edit_config(config, row, extras)
        settings = load_settings(config)
        clock = SteppedClock(sim.clock)
        daemon = Daemon(settings, clock=clock)
        site = daemon.build()
        beats: list[tuple[float, str]] = []  # (sim time, fail-safe reason) per control cycle
        shed: set[str] = set()  # rigs told to shed (rigs-ignore: all after the cut)

        def on_cycle(r: CycleResult) -> None:
            beats.append((sim.clock.now_s(), r.failsafe_reason))
            shed.update(c.rig_id for c in r.dispatch.shed)

        site.cycle.listeners.append(on_cycle)
        recorder = Recorder(sim, period_s=SAMPLE_S / size.speed)
        rec_task = asyncio.create_task(recorder.run(), name="fm-truth")
        task = asyncio.create_task(daemon.run(), name="fm-daemon")
        try:
            async with httpx.AsyncClient(base_url=f"http://{listen}", timeout=10.0) as http:
                deadline = sim.clock.now_s() + 60.0
                while not daemon.ready.is_set():
                    assert not task.done(), f"daemon ended at start: {task.exception()!r}"
                    assert sim.clock.now_s() < deadline, "daemon not ready in 60 sim s"
                    await sim.clock.sleep(0.2)
                assert daemon.components is not None
                await daemon.components.api_started.wait()
                if row.no_failsafe:
                    extras.tasks.append(asyncio.create_task(_check_in(http, tokens.grid, sim)))
                await sim.clock.sleep(3.0)
                full_kw = await truth_kw(sim)
                plan = await _bring_under_quota(row, sim, http, tokens.grid, full_kw)
                plan.contracted_kw = settings.grid.contracted_limit_kw
                if row.meter_fault:
                    plan.failsafe_kw = settings.grid.failsafe_limit_kw
                warnings = WarningCount()
                logging.getLogger("minerd").addHandler(warnings)
                try:
                    await _inject_inproc(
                        row, size, sim, daemon, clock, http, tokens.grid, extras, plan
                    )
                    t_end = plan.t_fault + row.window_s
                    while sim.clock.now_s() < t_end:
                        await sim.clock.sleep(min(1.0, t_end - sim.clock.now_s()))
                finally:
                    logging.getLogger("minerd").removeHandler(warnings)
                    await _stop_tasks(extras)
                if extras.ignoring:
                    told = sum(1 for rig_id in extras.ignoring if rig_id in shed)
                    extras.notes.append(
                        f"{len(extras.ignoring)} of {size.rigs} rigs ignore commands, "
                        f"{told} of them were told to shed"
                    )
                if warnings.count:
                    extras.notes.append(f"{warnings.count} daemon warnings: {warnings.first}")
            alive = not task.done()
            if task.done() and not task.cancelled() and task.exception() is not None:
                extras.notes.append(f"daemon ended: {str(task.exception())[:120]}")
            recent = [t for t, _ in beats if t >= t_end - 5.0]
            after = [(t, why) for t, why in beats if plan.t_fault <= t < t_end]
            reasons = _failsafe_by_reason(after, t_end, extras)
            times = [plan.t_fault, *(t for t, _ in after), t_end]
            result = _judge(
                row,
                recorder,
                plan,
                t_end,
                alive and len(recent) >= 2,
                sum(reasons.values()),
                extras,
            )
            return replace(
                result,
                silent_s=sum(v for k, v in reasons.items() if "silent" in k),
                max_gap_s=max(b - a for a, b in itertools.pairwise(times)),
            )
        finally:
            extras.stop.set()
            for t in (task, rec_task):
                t.cancel()
            for t in (task, rec_task):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t


async def _bring_under_quota(
    row: Row, sim: SimSite, http: httpx.AsyncClient, grid: str, full_kw: float
) -> _Plan:
    """Q1, settled; then the fault time and Q2 (or, for rigs-ignore, nothing yet)."""
    if row.name == "rigs-ignore":
        return _Plan(full_kw, round(CUT_FRACTION * full_kw, 1), sim.clock.now_s(), cut=True)
    q1 = round(Q1_FRACTION * full_kw, 1)
    await post_quota(http, grid, q1)
    await sim.clock.sleep(SETTLE_S)
    t_fault = sim.clock.now_s()
    plan = _Plan(q1, round(Q2_FRACTION * full_kw, 1), t_fault)
    await post_quota(http, grid, plan.q2_kw, start_s=plan.q2_start)
    return plan


async def _inject_inproc(
    row: Row,
    size: Size,
    sim: SimSite,
    daemon: Daemon,
    clock: SteppedClock,
    http: httpx.AsyncClient,
    grid: str,
    extras: _Extras,
    plan: _Plan,
) -> None:
    name = row.name
    if row.meter_fault:
        await sim.inject("grid", row.meter_fault)
    elif name == "rigs-ignore":
        n = max(1, round(IGNORING_FRACTION * size.rigs))
        step = size.rigs // n
        ignoring = [f"c001-r{i * step + 1:03d}" for i in range(n)]
        for rig_id in ignoring:
            await sim.inject(rig_id, "ignores_commands")
        plan.t_fault = sim.clock.now_s()
        await post_quota(http, grid, plan.q2_kw)
        extras.ignoring = ignoring
    elif name == "storage-full":
        assert daemon.db is not None
        if extras.mounted is not None:
            extras.notes.append(await asyncio.to_thread(fill_disk_under, daemon.db.path))
        else:
            conn, lock = _daemon_connection(daemon)
            with lock:
                pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
            pragma = f"PRAGMA max_page_count = {pages}"
            extras.tasks.append(asyncio.create_task(hold_pragma(daemon, pragma, extras.stop)))
    elif name == "storage-readonly":
        pragma = "PRAGMA query_only = 1"
        extras.tasks.append(asyncio.create_task(hold_pragma(daemon, pragma, extras.stop)))
    elif name == "broker-down":
        await asyncio.to_thread(extras.servers["mqtt"].stop)
    elif name == "tsdb-down":
        await asyncio.to_thread(extras.servers["tsdb"].stop)
    elif name in ("clock+10min", "clock-10min"):
        clock.step_s = CLOCK_STEP_S if name == "clock+10min" else -CLOCK_STEP_S
    elif name == "lockout":
        extras.tasks.append(asyncio.create_task(_attack(http, extras)))
    else:
        raise AssertionError(f"no in-process fault for row {name}")


async def _check_in(http: httpx.AsyncClient, grid: str, sim: SimSite) -> None:
    """The grid authority's heartbeat: an authenticated read every CHECKIN_EVERY_S."""
    while True:
        with contextlib.suppress(httpx.HTTPError):
            await http.get("/api/v1/site", headers={"Authorization": f"Bearer {grid}"})
        await sim.clock.sleep(CHECKIN_EVERY_S)


async def _attack(http: httpx.AsyncClient, extras: _Extras) -> None:
    """Wrong tokens from the grid's own address: a burst over the brake, then 12 a minute.

    The brake counts wall seconds, so the rate is in wall time (10x the issue's rate in
    sim time when the row runs at 10x)."""
    sent = 0
    codes: dict[int, int] = {}

    async def one() -> None:
        nonlocal sent
        bad = {"Authorization": f"Bearer {secrets.token_hex(32)}"}
        with contextlib.suppress(httpx.HTTPError):
            r = await http.get("/api/v1/site", headers=bad, timeout=5.0)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
        sent += 1

    try:
        await asyncio.gather(*(one() for _ in range(12)))
        while True:
            await asyncio.sleep(5.0)
            await one()
    finally:
        extras.notes.append(f"{sent} bad tokens, answers {dict(sorted(codes.items()))}")


def _judge(
    row: Row,
    recorder: Recorder,
    plan: _Plan,
    t_end: float,
    continued: bool,
    failsafe_s: float | None,
    extras: _Extras,
) -> RowResult:
    samples = recorder.between(plan.t_fault, t_end)
    assert samples, "no truth samples after the fault"
    over_s, peak_kw, last = over_stats(samples, plan.limit_at, plan.t_fault)
    tail = [s.power_kw for s in samples if s.t_s >= t_end - 5.0] or [samples[-1].power_kw]
    return RowResult(
        row=row,
        over_s=over_s,
        peak_excess_kw=peak_kw,
        last_over_after_s=last,
        control_continued=continued,
        failsafe_s=failsafe_s,
        limit_kw=plan.limit_at(t_end),
        end_kw=sum(tail) / len(tail),
        note="; ".join(extras.notes),
    )


# ---------------------------------------------------------------- process rows


async def _run_process_row(
    row: Row, size: Size, workdir: Path, octet: int, extras: _Extras
) -> RowResult:
    async with SimSite(site_spec(size.rigs, base_octet=octet, speed=1.0)) as sim:
        config = workdir / "site.toml"
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        tokens = sim.write_config(config, api_listen=f"127.0.0.1:{port}")
        tune_config(config, row.tuning)
        _edit_config(config, row, extras)
        db = load_settings(config).storage.path
        nofile = size.flood_nofile if row.name == "api-flood" else None
        first = LimitedDaemon(config, workdir / "first.log", api, nofile)
        second = LimitedDaemon(config, workdir / "second.log", api, nofile)
        flood = Flood("127.0.0.1", port, size.flood_connections, size.flooders)
        recorder = Recorder(sim, period_s=SAMPLE_S)
        rec_task = asyncio.create_task(recorder.run(), name="fm-truth")
        seen: list[tuple[float, int, str]] = []  # (sim time, cycle, fail-safe reason)
        try:
            await first.start()
            await first.wait_ready(60.0)
            extras.tasks.append(asyncio.create_task(_watch_site(api, tokens.viewer, sim, seen)))
            async with httpx.AsyncClient(base_url=api, timeout=10.0) as http:
                await asyncio.sleep(3.0)
                plan = await _bring_under_quota(row, sim, http, tokens.grid, await truth_kw(sim))
            running = first
            if row.name == "kill-9":
                first.kill9()
                assert await first.wait(10.0) == -signal.SIGKILL
                await second.start()
                await second.wait_ready(60.0)
                running = second
                extras.notes.append(
                    f"ready again {sim.clock.now_s() - plan.t_fault:.1f} s after kill"
                )
            elif row.name == "api-flood":
                await flood.start()
                extras.notes.append(
                    f"{flood.opened} of {size.flood_connections} connections open "
                    f"(daemon fd limit {nofile or 'inherited'})"
                )
            t_end = plan.t_fault + row.window_s
            await asyncio.sleep(max(0.0, t_end - sim.clock.now_s()))
            if flood.procs:
                await flood.stop()
                extras.notes.append(f"{flood.closed_by_server} closed by the server")
            await _stop_tasks(extras)
            assert running.proc is not None
            alive = running.proc.returncode is None
            acted = commands_since(db, plan.t_fault)
            extras.notes.append(f"{acted} commands after the fault")
            if not alive:
                extras.notes.append(
                    f"daemon exited {running.proc.returncode}: {_last_error(running.log)}"
                )
            after = [x for x in seen if plan.t_fault <= x[0] < t_end]
            reasons = _failsafe_by_reason([(t, why) for t, _, why in after], t_end, extras)
            # Cycling at the end: the cycle number moved within the last 5 s.
            tail = {c for t, c, _ in after if t >= t_end - 5.0}
            result = _judge(
                row, recorder, plan, t_end, alive and len(tail) >= 2, sum(reasons.values()), extras
            )
            return replace(
                result,
                silent_s=sum(v for k, v in reasons.items() if "silent" in k),
                max_gap_s=_stood_still_s(after, plan.t_fault, t_end),
            )
        finally:
            await flood.stop()
            await first.stop()
            await second.stop()
            rec_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rec_task


def _failsafe_by_reason(
    seen: list[tuple[float, str]], t_end: float, extras: _Extras
) -> dict[str, float]:
    """Seconds in fail-safe per reason, from (sim time, reason) observations in order."""
    reasons: dict[str, float] = {}
    for (t, why), (t_next, _) in itertools.pairwise([*seen, (t_end, "")]):
        if why:
            key = why.split(":")[0]
            reasons[key] = reasons.get(key, 0.0) + min(t_next - t, 2 * CYCLE_S)
    if reasons:
        extras.notes.append("fail-safe: " + ", ".join(f"{k} {v:.1f} s" for k, v in reasons.items()))
    return reasons


async def _watch_site(
    api: str, viewer: str, sim: SimSite, seen: list[tuple[float, int, str]]
) -> None:
    """The child daemon's cycle number and fail-safe, once a second, from GET /api/v1/site
    (viewer token: not a grid contact). Failed reads are skipped: the gaps show them."""
    headers = {"Authorization": f"Bearer {viewer}"}
    async with httpx.AsyncClient(base_url=api, timeout=2.0) as http:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                r = await http.get("/api/v1/site", headers=headers)
                if r.status_code == 200:
                    body = r.json()
                    fs = body["failsafe"]
                    seen.append(
                        (
                            sim.clock.now_s(),
                            int(body["cycle"]),
                            str(fs["reason"]) if fs["active"] else "",
                        )
                    )
            await asyncio.sleep(1.0)


def _stood_still_s(seen: list[tuple[float, int, str]], t_from: float, t_end: float) -> float:
    """Longest time the cycle number did not move (or the API did not answer)."""
    longest, since, last = 0.0, t_from, None
    for t, cycle, _ in seen:
        if cycle != last:
            longest = max(longest, t - since)
            since, last = t, cycle
    return max(longest, t_end - since)


def _last_error(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if "error" in ln.lower()]
    return lines[-1][:160] if lines else "(no error in the log)"


async def run_matrix(
    size: Size, workdir: Path, rows: tuple[Row, ...] = ROWS, out: Callable[[str], None] = print
) -> list[RowResult]:
    """Every row in turn (each on its own site and database); prints each as it lands."""
    results = []
    out(TABLE_HEAD)
    for i, row in enumerate(rows):
        d = workdir / row.name
        d.mkdir(parents=True, exist_ok=True)
        try:
            result = await run_row(row, size, d, size.base_octet + i)
        except Exception as exc:  # one broken row must not hide the others' figures
            result = RowResult(row, math.inf, math.inf, None, False, None, 0.0, 0.0, repr(exc))
        out(format_row(result))
        results.append(result)
    return results


__all__ = [
    "ROWS",
    "Row",
    "RowResult",
    "Size",
    "format_row",
    "format_table",
    "run_matrix",
    "run_row",
]
