"""The daemon on a simulated site whose database disk fills up or turns read-only.

Control must go on: a cut that starts during the fault is met (the simulator's truth is the
judge), grid requests are answered, a new quota is refused with 503, the StorageFailing
alert and `minerd_storage_ok 0` say why, and once the disk takes writes again the command
journal catches up with what control did meanwhile.

Disk full is real: the daemon's directory is a tiny tmpfs, the WAL is truncated and the
rest of the tmpfs filled, so the next commit fails with SQLITE_FULL as on a full disk in
the field (skipped where tmpfs cannot be mounted). Read-only is SQLITE_READONLY from
`PRAGMA query_only` on the daemon's connection: the error a read-only file gives, which a
root test cannot get from file modes.

And if control itself fails, the site is shed to its fail-safe limit before the daemon
ends on the error (for systemd to restart it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from scenarios.scenario_kit import (
    MODEL,
    DaemonProcess,
    Recorder,
    Running,
    Tuning,
    running_site,
    site_spec,
    tune_config,
)
from servers import free_port

from minerd.clock import ManualClock
from minerd.control.loop import LoopConfig
from minerd.control.planner import PlanConstraints
from minerd.daemon.app import ControlFailed
from minerd.daemon.supervisor import Supervisor
from minerd.model import (
    FleetSnapshot,
    MeterReading,
    MeterRole,
    MeterStatus,
    RigAction,
    RigProtocol,
    RigReading,
    RigState,
    RigStatus,
)
from minerd.profiles import load_rig_model
from minerd.runtime.cycle import ControlCycle, CycleConfig
from minerd.runtime.cycle_persist import CONTACT_PERSIST_S, STATE_GRID_CONTACT
from minerd.runtime.executor import Executor
from minerd.runtime.failsafe_shed import failsafe_orders
from minerd.runtime.fleet import FleetState
from minerd.runtime.held_journal import HeldJournal
from minerd.runtime.intents import IntentBook
from minerd.settings import load_settings
from minerd.sim import SimSite
from minerd.storage import Database, Stores
from minerd.storage.health import RECHECK_S

SPEED = 5.0  # sim seconds per wall second: slow enough for a loaded 2-core machine
RIGS = 20  # about 71 kW at full load
CYCLE_S = 1.0
SLEEP_S = load_rig_model(MODEL).sleep_time_s
CUT_KW = 30.0


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs for the daemon's directory (config, database)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as exc:
        (disk / "probe").write_bytes(b"x" * 4096)
    assert exc.value.errno == errno.ENOSPC
    return filler


def iso(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).isoformat()


def grid_token(workdir: Path) -> str:
    lines = (workdir / "site.toml.tokens").read_text().splitlines()
    tokens = dict(line.split(" = ") for line in lines if " = " in line)
    return tokens["grid"].strip('"')


class Fault:
    def __init__(self, run: Running, kind: str, disk: Path) -> None:
        self.run, self.kind, self.disk = run, kind, disk
        self.filler: Path | None = None

    def start(self) -> None:
        db = self.run.site.stores.db
        if self.kind == "full":
            # An empty WAL must grow for the next commit: on a full disk it cannot.
            db.query("PRAGMA wal_checkpoint(TRUNCATE)")
            self.filler = fill(self.disk)
        else:
            db.query("PRAGMA query_only = ON")

    def end(self) -> None:
        if self.filler is not None:
            self.filler.unlink()
        else:
            self.run.site.stores.db.query("PRAGMA query_only = OFF")


@pytest.mark.asyncio
@pytest.mark.parametrize(("kind", "octet"), [("full", 231), ("read-only", 232)])
async def test_daemon_controls_through_storage_failure(kind: str, octet: int, disk: Path) -> None:
    spec = site_spec(RIGS, base_octet=octet, speed=SPEED)
    async with running_site(spec, disk, Tuning(contracted_limit_kw=200.0)) as run:
        parts = run.daemon.components
        assert parts is not None and parts.alerts is not None and parts.prometheus is not None
        await parts.api_started.wait()
        auth = {"Authorization": f"Bearer {grid_token(disk)}"}
        journal = run.site.executor.journal
        assert isinstance(journal, HeldJournal)
        await run.sleep_sim(5.0)
        assert await run.truth_kw() > CUT_KW * 1.5
        async with httpx.AsyncClient(
            base_url=f"http://{run.daemon.settings.api.listen}", headers=auth, timeout=10.0
        ) as http:
            cut_at_s = run.now_s() + 25.0
            r = await http.post("/api/v1/quotas", json={"limit_kw": CUT_KW, "start": iso(cut_at_s)})
            assert r.status_code == 201, r.text

            fault = Fault(run, kind, disk)
            fault.start()
            t_fault = run.now_s()
            # The grid authority is still answered (its contact is noted in memory)...
            r = await http.get("/api/v1/quotas")
            assert r.status_code == 200, r.text
            # ...but a quota that could not survive a restart is refused.
            r = await http.post("/api/v1/quotas", json={"limit_kw": 20.0})
            assert r.status_code == 503, r.text
            assert "cannot be stored durably" in r.json()["error"]
            assert r.headers["retry-after"]

            # The cut accepted before the fault is met while the disk refuses writes.
            await run.sleep_sim(cut_at_s - run.now_s() + SLEEP_S + 2 * CYCLE_S + 10.0)
            assert not run.daemon_failed()
            under_s = run.recorder.first_under(CUT_KW, cut_at_s) - cut_at_s
            assert under_s <= SLEEP_S + 2 * CYCLE_S, run.trace(cut_at_s - 2)
            settled = run.recorder.between(cut_at_s + SLEEP_S + 2 * CYCLE_S)
            assert max(s.power_kw for s in settled) <= CUT_KW, run.trace(cut_at_s - 2)
            assert journal.holding > 0 and journal.stats.held_intents > 0
            assert any(a.rule == "StorageFailing" for a in parts.alerts.active())
            metrics = parts.prometheus.render_metrics().decode()
            assert "minerd_storage_ok 0.0" in metrics
            # Which journal write fails first (intents, outcomes, or held ones catching up)
            # depends on timing; each is counted under its own op.
            assert re.search(
                r'minerd_storage_errors_total\{op="journal (intents|outcomes|held)"\}', metrics
            )
            held_rigs = journal.holding

            fault.end()
            await run.wait_for("journal caught up", lambda: journal.holding == 0, 20.0)
            latest = run.site.stores.journal.latest_intent_per_rig()
            slept = [
                e
                for e in latest.values()
                if e.intent_at_s >= t_fault and e.command.action is RigAction.SLEEP
            ]
            assert len(slept) >= min(held_rigs, 1)
            assert all(e.ok is not None for e in slept)  # outcomes written with them
            r = await http.post("/api/v1/quotas", json={"limit_kw": 60.0})
            assert r.status_code == 201, r.text  # rigs wake: their intents are written
            # An operation that failed and is not tried again soon (a settlement interval
            # closes once a minute) stops counting as failing RECHECK_S wall seconds after its
            # last failure, once another write works (storage.health).
            await run.wait_for(
                "storage ok", lambda: run.site.stores.health.ok, 30.0 + RECHECK_S * SPEED
            )
        print(
            f"\nstorage {kind}: cut met {under_s:.2f} s after it began "
            f"(bound {SLEEP_S + 2 * CYCLE_S:.0f} s), {journal.stats.held_intents} intents "
            f"held in memory, {journal.stats.written_late} written late"
        )
        assert not run.daemon_failed()


@pytest.mark.asyncio
async def test_daemon_process_keeps_running_on_a_full_disk(disk: Path) -> None:
    """`python -m minerd run` with its database on a disk that fills up: the process does
    not exit, meets a cut that starts meanwhile, says why on /metrics, takes quotas again
    once there is room, and still stops in order on SIGTERM."""
    async with SimSite(site_spec(RIGS, base_octet=234, speed=1.0)) as sim:
        config = disk / "site.toml"
        api = f"127.0.0.1:{free_port()}"
        tokens = sim.write_config(config, api_listen=api)
        tune_config(config, Tuning(rig_interval_s=1.0, contracted_limit_kw=200.0))
        recorder = Recorder(sim, period_s=0.05)
        rec_task = asyncio.create_task(recorder.run())
        daemon = DaemonProcess(config, disk.parent / "daemon.log", f"http://{api}")
        auth = {"Authorization": f"Bearer {tokens.grid}"}
        try:
            await daemon.start()
            await daemon.wait_ready()
            async with httpx.AsyncClient(base_url=f"http://{api}", timeout=10.0) as http:
                cut_at_s = sim.clock.now_s() + 6.0
                quota = {"limit_kw": CUT_KW, "start": iso(cut_at_s)}
                r = await http.post("/api/v1/quotas", json=quota, headers=auth)
                assert r.status_code == 201, r.text
                db_path = load_settings(config).storage.path
                # From outside: empty the WAL, then fill the disk so it cannot grow again.
                with contextlib.closing(sqlite3.connect(db_path)) as conn:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                filler = fill(disk)
                r = await http.post("/api/v1/quotas", json={"limit_kw": 20.0}, headers=auth)
                assert r.status_code == 503, r.text
                await asyncio.sleep(cut_at_s - sim.clock.now_s() + SLEEP_S + 2 * CYCLE_S + 2)
                assert daemon.proc is not None and daemon.proc.returncode is None
                under_s = recorder.first_under(CUT_KW, cut_at_s) - cut_at_s
                metrics = (await http.get("/metrics", headers=auth)).text
                assert "minerd_storage_ok 0.0" in metrics, metrics[-2000:]
                filler.unlink()
                for _ in range(50):  # the grid authority retries until it is accepted
                    r = await http.post("/api/v1/quotas", json={"limit_kw": 25.0}, headers=auth)
                    if r.status_code != 503:
                        break
                    await asyncio.sleep(0.2)
                assert r.status_code == 201, r.text
            daemon.signal(signal.SIGTERM)
            rc = await daemon.wait(10.0)
            log = daemon.log.read_text()
            print(f"\nfull disk, real process: cut met {under_s:.2f} s after it began, exit {rc}")
            assert under_s <= SLEEP_S + 2 * CYCLE_S, log[-3000:]
            assert rc == 0, log[-3000:]
            assert "database or disk is full" in log
        finally:
            await daemon.stop()
            rec_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rec_task


@pytest.mark.asyncio
@pytest.mark.parametrize(("after_s", "octet"), [(0.5, 233), (5.0, 235)])
async def test_failed_control_sheds_to_failsafe_then_ends_the_daemon(
    tmp_path: Path, after_s: float, octet: int
) -> None:
    """Early (rigs not read yet, first commands on their way) and once settled."""
    spec = site_spec(RIGS, base_octet=octet, speed=SPEED)
    # The daemon ends on the error, which leaving running_site re-raises: measure inside,
    # judge after.
    with pytest.raises(ExceptionGroup) as failed:
        async with running_site(spec, tmp_path, Tuning(failsafe_limit_kw=30.0)) as run:
            await run.sleep_sim(after_s)
            failsafe_kw = run.site.config.failsafe_limit_kw
            before_kw = await run.truth_kw()

            async def broken() -> None:
                raise RuntimeError("planner bug")

            run.site.cycle.run_once_async = broken  # type: ignore[method-assign,assignment]
            t_fail = run.now_s()
            await run.wait_for("daemon ended", run.daemon_failed, 30.0)
            await run.sleep_sim(SLEEP_S + 2 * CYCLE_S)
            after_kw = await run.truth_kw()
            trace = run.trace(t_fail - 2)
    assert failed.group_contains(ControlFailed, match="RuntimeError: planner bug")
    print(f"\ncontrol failed at {before_kw:.1f} kW: site at {after_kw:.1f} kW "
          f"(fail-safe {failsafe_kw} kW) a sleep time later")  # fmt: skip
    assert before_kw > failsafe_kw * 1.5
    assert after_kw <= failsafe_kw, trace


@pytest.mark.asyncio
async def test_supervisor_restarts_a_failing_part_and_lets_a_stop_through() -> None:
    sup = Supervisor(ManualClock(0.0))
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"broken {runs}")

    await sup.keep("alerts-evaluate", flaky)
    assert runs == 3 and sup.counts() == {"alerts-evaluate": 2}
    assert "alerts-evaluate" not in sup.failing

    async def forever() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(sup.keep("api", forever))
    await asyncio.sleep(0)
    task.cancel()  # a deliberate stop is no failure: it is not restarted
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "api" not in sup.counts()


def _bare_cycle(tmp_path: Path) -> tuple[ControlCycle, Stores, ManualClock]:
    """A control cycle over no rigs and no meters: just its storage side."""
    clock = ManualClock(1_800_000_000.0)
    stores = Stores.open(Database(tmp_path / "m.sqlite"))
    loop = LoopConfig(
        margin_kw=5.0,
        aux_base_kw=0.0,
        aux_fraction=0.0,
        ramp_up_kw_per_s=10.0,
        failsafe_limit_kw=50.0,
        interval_s=1.0,
        kp=0.5,
        ki=0.05,
    )
    cycle = ControlCycle(
        fleet=FleetState([], []),
        models={},
        book=IntentBook({}),
        executor=Executor({}, stores.journal, clock),
        stores=stores,
        clock=clock,
        config=CycleConfig(
            site="s",
            contracted_limit_kw=100.0,
            failsafe_limit_kw=50.0,
            settlement_interval_s=900.0,
            loop=loop,
            constraints=PlanConstraints(min_on_s=0.0, min_off_s=0.0),
        ),
    )
    return cycle, stores, clock


@pytest.mark.asyncio
async def test_grid_contact_is_noted_in_memory_and_written_every_few_seconds(
    tmp_path: Path,
) -> None:
    cycle, stores, clock = _bare_cycle(tmp_path)
    writes = stores.health.writes_ok
    for _ in range(500):  # a busy grid authority: no write per request
        cycle.note_grid_contact()
        clock.advance(0.01)
    assert stores.health.writes_ok == writes
    last = cycle.grid_last_contact_s
    for _ in range(20):  # 20 cycles, one per second: writes every CONTACT_PERSIST_S at most
        cycle.note_grid_contact()
        cycle.run_once()
        if cycle.persister.contact_write is not None:
            await cycle.persister.contact_write
        clock.advance(1.0)
    contact_writes = stores.health.writes_ok - writes - 2  # the loop integral, every 10 cycles
    assert 1 <= contact_writes <= 20 / CONTACT_PERSIST_S + 1
    saved = stores.state.get_float(STATE_GRID_CONTACT)
    assert saved is not None and saved > last  # type: ignore[operator]
    # A read-only disk: contact is still noted, no grid request fails on it.
    stores.db.query("PRAGMA query_only = ON")
    cycle.note_grid_contact()
    assert cycle.grid_last_contact_s == clock.now_s()
    clock.advance(CONTACT_PERSIST_S)
    cycle.run_once()
    assert cycle.persister.contact_write is not None
    await cycle.persister.contact_write
    assert not stores.health.ok
    stores.db.close()


@pytest.mark.asyncio
async def test_a_failing_part_is_restarted_and_control_goes_on(tmp_path: Path) -> None:
    spec = site_spec(RIGS, base_octet=236, speed=SPEED)
    async with running_site(spec, tmp_path, Tuning()) as run:
        parts = run.daemon.components
        assert parts is not None and parts.prometheus is not None
        failures = 0

        def broken(loop: str, duration_s: float) -> None:
            nonlocal failures
            failures += 1
            raise RuntimeError("sink bug")

        parts.prometheus.observe_cycle = broken  # type: ignore[method-assign]
        await run.wait_for("the sink feed failed twice", lambda: failures >= 2, 30.0)
        cycles = len(run.cycles)
        await run.sleep_sim(5.0)
        assert not run.daemon_failed()
        assert len(run.cycles) >= cycles + 3  # control went on
        assert run.daemon.supervisor.counts().get("sinks-feed", 0) >= 2
        assert "sinks-feed" in run.daemon.supervisor.failing
        text = parts.prometheus.render_metrics().decode()
        assert 'minerd_component_restarts_total{component="sinks-feed"}' in text


def _status(rig_id: str, state: RigState, power_w: float, fresh: bool = True) -> RigStatus:
    return RigStatus(
        rig_id=rig_id,
        model=MODEL,
        container="c1",
        host="127.0.0.1",
        port=4028,
        protocol=RigProtocol.LUXOS,
        reading=RigReading(rig_id, 100.0, state, "", power_w=power_w),
        fresh=fresh,
    )


def _grid(power_w: float) -> MeterStatus:
    return MeterStatus("grid", MeterRole.GRID, "", MeterReading("grid", 100.0, power_w), True, 0.5)


def test_failsafe_orders_count_the_worst_case_and_believe_the_meter() -> None:
    model = load_rig_model(MODEL)  # 3068 W nominal
    loop = LoopConfig(
        margin_kw=1.0,
        aux_base_kw=1.0,
        aux_fraction=0.0,
        ramp_up_kw_per_s=10.0,
        failsafe_limit_kw=12.0,
        interval_s=1.0,
        kp=0.5,
        ki=0.05,
    )
    rigs = (
        _status("r1", RigState.HASHING, 3000.0),
        _status("r2", RigState.HASHING, 3000.0),
        _status("r3", RigState.SLEEPING, 10.0),  # asleep, or told to wake a moment ago
        _status("r4", RigState.HASHING, 3000.0, fresh=False),
        _status("r5", RigState.HASHING, 3000.0),
    )
    models = {r.rig_id: model for r in rigs}
    # Budget 12 - 1 (margin) - 1 (aux) = 10 kW: three rigs at nominal would be 9.2 kW.
    snap = FleetSnapshot(100.0, rigs, (_grid(13_010.0),))  # the model predicts 13.01 kW
    orders, budget_w, kept_w = failsafe_orders(snap, models, 12.0, loop)
    slept = {c.rig_id for c in orders}
    assert budget_w == pytest.approx(10_000.0)
    assert slept == {"r3", "r4"}  # fresh hashing ones kept first; the rest told to sleep
    assert all(c.action is RigAction.SLEEP for c in orders)
    assert kept_w <= budget_w
    # The meter reads 4 kW more than the model: the budget shrinks by that, one more sleeps.
    snap = FleetSnapshot(100.0, rigs, (_grid(17_010.0),))
    orders, budget_w, _ = failsafe_orders(snap, models, 12.0, loop)
    assert budget_w == pytest.approx(6_000.0)
    assert {c.rig_id for c in orders} == {"r2", "r3", "r4", "r5"}
