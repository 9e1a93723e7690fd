"""Shared pieces of the acceptance scenarios: a simulated site and the real daemon on it.

The simulator and the daemon run in one event loop and share the simulator's ScaledClock,
so quota times, meter timestamps and rig physics all live on one time axis. The truth the
tests judge by is the simulator's own (site power from the rig physics), never the
daemon's view of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from servers import free_port

from minerd.daemon.app import Daemon
from minerd.model import Quota, QuotaSource, RigProtocol
from minerd.runtime.cycle import CycleResult
from minerd.runtime.site import Site
from minerd.settings import load_settings
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

MODEL = "bitmain-s19jpro"  # 3068 W nominal, sleeps in 5 s, wakes in 10 s


def site_spec(rigs: int, base_octet: int, speed: float, **kw: object) -> SiteSpec:
    """One LuxOS group on ephemeral ports, served in this process."""
    return SiteSpec(
        groups=(RigGroupSpec(MODEL, rigs),),
        rigs_per_container=max(rigs, 1),
        rig_port=0,
        base_octet=base_octet,
        speed=speed,
        workers=1,
        feeder_meters=False,
        **kw,  # type: ignore[arg-type]
    )


# The mixed fleet of issue 13, by firmware family: the model each family's rigs run here.
FAMILY_MODELS: Mapping[RigProtocol, str] = {
    RigProtocol.LUXOS: "bitmain-s19jpro",
    RigProtocol.STOCK: "bitmain-s19jpro",
    RigProtocol.VNISH: "bitmain-s19jpro",
    RigProtocol.WHATSMINER: "microbt-m50s",
    RigProtocol.BRAIINS: "bitmain-s19jpro",
    RigProtocol.CGMINER: "bitmain-s19jpro",  # read-only: no command path
}
# Shares of a real mixed site (the issue's `--fleet` example, per 10,000 rigs).
FLEET_SHARES: Mapping[RigProtocol, int] = {
    RigProtocol.LUXOS: 2000,
    RigProtocol.STOCK: 4000,
    RigProtocol.VNISH: 2000,
    RigProtocol.WHATSMINER: 1000,
    RigProtocol.BRAIINS: 500,
    RigProtocol.CGMINER: 500,
}
COMMANDED = tuple(f for f in FLEET_SHARES if f is not RigProtocol.CGMINER)


def fleet_counts(rigs: int) -> dict[RigProtocol, int]:
    """`rigs` split over the families by FLEET_SHARES, every family at least one rig."""
    total = sum(FLEET_SHARES.values())
    counts = {f: max(1, rigs * share // total) for f, share in FLEET_SHARES.items()}
    counts[RigProtocol.STOCK] += rigs - sum(counts.values())  # rounding goes to the largest
    return counts


def mixed_site_spec(
    counts: Mapping[RigProtocol, int],
    base_octet: int,
    speed: float,
    workers: int = 1,
    **kw: object,
) -> SiteSpec:
    """One group per family (FAMILY_MODELS), 4028 on ephemeral ports, family servers on
    fixed ports: every rig has its own loopback address, and a written config can only carry
    one family port per group (an ephemeral port per rig cannot be written)."""
    groups = tuple(RigGroupSpec(FAMILY_MODELS[f], n, f) for f, n in counts.items() if n > 0)
    rigs = sum(counts.values())
    return SiteSpec(
        groups=groups,
        rigs_per_container=max(rigs, 1),
        rig_port=0,
        web_port=18080,
        whatsminer_api_port=14433,
        grpc_port=15051,
        base_octet=base_octet,
        speed=speed,
        workers=workers,
        feeder_meters=False,
        **kw,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Tuning:
    """Config values the scenarios set on top of what the simulator writes (sim seconds)."""

    control_interval_s: float = 1.0
    rig_interval_s: float = 2.0
    rig_timeout_s: float = 3.0
    meter_interval_s: float = 1.0
    meter_timeout_s: float = 2.0
    meter_stale_after_s: float = 5.0
    ramp_up_kw_per_s: float = 5.0
    min_on_s: float = 5.0
    min_off_s: float = 5.0
    max_wakes_per_cycle: int = 50
    kp: float = 0.5
    ki: float = 0.05
    contracted_limit_kw: float | None = None  # None: what the simulator wrote
    failsafe_limit_kw: float | None = None
    margin_kw: float | None = None


def tune_config(path: Path, t: Tuning) -> None:
    """Edit the TOML the simulator wrote: add per-section keys it leaves at their defaults."""
    text = path.read_text(encoding="utf-8")
    control = (
        "[control]\n"
        f"interval_s = {t.control_interval_s}\n"
        f"ramp_up_kw_per_s = {t.ramp_up_kw_per_s}\n"
        f"min_on_s = {t.min_on_s}\n"
        f"min_off_s = {t.min_off_s}\n"
        f"max_wakes_per_cycle = {t.max_wakes_per_cycle}\n"
        f"kp = {t.kp}\n"
        f"ki = {t.ki}\n"
    )
    text = text.replace("[control]\n", control, 1)
    rigs = f"[[rigs]]\ninterval_s = {t.rig_interval_s}\ntimeout_s = {t.rig_timeout_s}\n"
    text = text.replace("[[rigs]]\n", rigs)
    meters = (
        "[[meters]]\n"
        f"interval_s = {t.meter_interval_s}\n"
        f"timeout_s = {t.meter_timeout_s}\n"
        f"stale_after_s = {t.meter_stale_after_s}\n"
    )
    text = text.replace("[[meters]]\n", meters)
    for key in ("contracted_limit_kw", "failsafe_limit_kw", "margin_kw"):
        value = getattr(t, key)
        if value is not None:
            text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
            assert n == 1, key
    path.write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class Sample:
    t_s: float  # simulated time
    power_kw: float  # true site import (rigs + aux), what the grid meter measures
    rig_power_kw: float


@dataclass
class Recorder:
    """Samples the simulator's truth (site import) every period_s of wall time."""

    sim: SimSite
    period_s: float = 0.02
    samples: list[Sample] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            truth = await self.sim.truth(include_rigs=False)
            site = truth["site"]
            assert isinstance(site, dict)
            self.samples.append(
                Sample(
                    float(str(truth["time_s"])),
                    float(site["power_w"]) / 1000.0,
                    float(site["rig_power_w"]) / 1000.0,
                )
            )
            await asyncio.sleep(self.period_s)

    def between(self, from_s: float, to_s: float = float("inf")) -> list[Sample]:
        return [s for s in self.samples if from_s <= s.t_s < to_s]

    def first_under(self, limit_kw: float, from_s: float) -> float:
        """Sim time of the first sample at or under limit_kw from from_s on."""
        for s in self.between(from_s):
            if s.power_kw <= limit_kw:
                return s.t_s
        raise AssertionError(f"import never got under {limit_kw} kW after {from_s}")

    def mean_kw(self, from_s: float, to_s: float) -> float:
        window = self.between(from_s, to_s)
        assert window, "no samples in window"
        return sum(s.power_kw for s in window) / len(window)


def energy_over(samples: list[Sample], limit_at: Callable[[float], float]) -> tuple[float, float]:
    """(energy over the limit, energy allowed by the limit), kWs, step-integrated."""
    over = allowed = 0.0
    for a, b in itertools.pairwise(samples):
        dt = b.t_s - a.t_s
        limit = limit_at(a.t_s)
        over += max(0.0, a.power_kw - limit) * dt
        allowed += limit * dt
    return over, allowed


@dataclass
class Running:
    sim: SimSite
    daemon: Daemon
    site: Site
    recorder: Recorder
    config: Path
    task: asyncio.Task[None]
    cycles: list[CycleResult] = field(default_factory=list)

    @property
    def speed(self) -> float:
        return self.sim.clock.speed

    def now_s(self) -> float:
        return self.sim.clock.now_s()

    async def sleep_sim(self, seconds: float) -> None:
        await self.sim.clock.sleep(seconds)

    async def truth_kw(self) -> float:
        truth = await self.sim.truth(include_rigs=False)
        site = truth["site"]
        assert isinstance(site, dict)
        return float(site["power_w"]) / 1000.0

    async def wait_for(
        self, what: str, pred: Callable[[], bool], timeout_sim_s: float, poll_sim_s: float = 0.2
    ) -> float:
        """Wait until pred() holds; returns the sim time it first held."""
        deadline = self.now_s() + timeout_sim_s
        while not pred():
            if self.daemon_failed():
                self.task.result()
            assert self.now_s() < deadline, f"timed out after {timeout_sim_s} sim s: {what}"
            await self.sleep_sim(poll_sim_s)
        return self.now_s()

    def trace(self, from_s: float, to_s: float = float("inf")) -> str:
        """The daemon's cycles and the truth side by side, for failure messages."""
        lines = []
        for c in self.cycles:
            t = c.snapshot.taken_at_s
            if not from_s <= t < to_s:
                continue
            d = c.decision
            truth = [s for s in self.recorder.samples if s.t_s <= t]
            true_kw = truth[-1].power_kw if truth else float("nan")
            lines.append(
                f"t={t - from_s:6.2f} limit={d.limit.limit_kw:6.1f}({d.limit.origin}) "
                f"meter={c.snapshot.grid_import_w / 1000:6.1f} truth={true_kw:6.1f} "
                f"budget={d.rig_budget_w / 1000:6.1f} corr={d.correction_kw:5.1f} "
                f"plan={(c.plan.planned_power_w / 1000) if c.plan else -1:6.1f} "
                f"shed={len(c.dispatch.shed)} raise={len(c.dispatch.raise_)} "
                f"fixed={(c.plan.fixed_power_w / 1000) if c.plan else -1:5.1f} "
                f"{'SHEDDING' if d.shedding else ''}{' RAMP' if d.ramp_limited else ''}"
                f"{' HELD' if c.plan and c.plan.held_awake else ''}"
                f"{' FAILSAFE ' + c.failsafe_reason if c.failsafe_reason else ''}"
            )
        return "\n".join(lines)

    def daemon_failed(self) -> bool:
        return self.task.done()

    def post_quota(
        self,
        limit_kw: float,
        start_s: float | None = None,
        end_s: float | None = None,
        source: QuotaSource = QuotaSource.API,
    ) -> Quota:
        """What the quota API does: store the order, then tell the control cycle."""
        now = self.now_s()
        q = Quota(
            quota_id=str(uuid.uuid4()),
            limit_kw=limit_kw,
            start_s=now if start_s is None else start_s,
            end_s=end_s,
            source=source,
            issued_at_s=now,
            issued_by="scenario-test",
            reference=None,
        )
        self.site.stores.quotas.add(q, idempotency_key=q.quota_id)
        self.site.quotas_changed()
        return q


class DaemonProcess:
    """`python -m minerd run -c CONFIG` as a child process, its log in a file."""

    def __init__(self, config: Path, log: Path, api: str) -> None:
        self.config = config
        self.log = log
        self.api = api
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "minerd", "run", "-c", str(self.config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )  # fmt: skip

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until /readyz says ready (meters fresh, a control cycle run)."""
        assert self.proc is not None
        async with httpx.AsyncClient(base_url=self.api, timeout=2.0) as http:
            deadline = asyncio.get_running_loop().time() + timeout_s
            while True:
                assert self.proc.returncode is None, self.log.read_text()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                assert asyncio.get_running_loop().time() < deadline, self.log.read_text()[-3000:]
                await asyncio.sleep(0.1)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout_s):
            return await self.proc.wait()

    async def stop(self) -> None:
        """Kill it if still running (test clean-up)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@contextlib.asynccontextmanager
async def running_site(
    spec: SiteSpec, workdir: Path, tuning: Tuning = Tuning(), extra_toml: str = ""
) -> AsyncIterator[Running]:
    """The simulated site and the real daemon on it, warmed up and controlling.
    extra_toml: sections appended to the config (e.g. [iec104])."""
    async with SimSite(spec) as sim:
        config = workdir / "site.toml"
        sim.write_config(config, api_listen=f"127.0.0.1:{free_port()}")
        tune_config(config, tuning)
        if extra_toml:
            with config.open("a", encoding="utf-8") as f:
                f.write("\n" + extra_toml)
        settings = load_settings(config)
        daemon = Daemon(settings, clock=sim.clock)
        site = daemon.build()
        recorder = Recorder(sim)
        rec_task = asyncio.create_task(recorder.run(), name="truth-recorder")
        task = asyncio.create_task(daemon.run(), name="daemon")
        running = Running(sim, daemon, site, recorder, config, task)
        site.cycle.listeners.append(running.cycles.append)
        try:
            await running.wait_for("first control cycle", daemon.ready.is_set, 60.0)
            yield running
        finally:
            for t in (task, rec_task):
                t.cancel()
            for t in (task, rec_task):
                with contextlib.suppress(asyncio.CancelledError):
                    await t
