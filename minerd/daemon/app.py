"""Composition root: builds the daemon from settings and owns its top TaskGroup.

Nothing imports this module. It wires storage, devices, the runtime, the API, sinks and
alerts together, handles SIGTERM/SIGINT (orderly stop within 5 s) and talks to systemd.

Only a deliberate stop ends the process. Every part but control runs under a supervisor
that logs, counts and restarts it when it fails. If control itself fails, the site is shed
to its fail-safe limit first, then the process exits non-zero for systemd to restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minerd.clock import Clock, SiteClock, SystemClock
from minerd.control.loop import LoopConfig
from minerd.control.planner import PlanConstraints
from minerd.daemon.assembly import SiteDevices
from minerd.daemon.cluster_devices import build_role_devices, role_cycle_config
from minerd.daemon.components import Components, build_components
from minerd.daemon.economics import EconomicsParts, build_economics
from minerd.daemon.supervisor import Supervisor
from minerd.daemon.systemd_notify import Notifier, feed_watchdog, watchdog_interval_s
from minerd.errors import ClusterError, MinerdError
from minerd.runtime.cycle import CycleConfig
from minerd.runtime.failsafe_shed import shed_to_failsafe
from minerd.runtime.housekeeping import run_housekeeping
from minerd.runtime.sessions import StoredSessions
from minerd.runtime.site import Site
from minerd.settings import Settings
from minerd.sinks.health_metrics import CycleCollector, RestartsCollector
from minerd.storage import Database, Stores

if TYPE_CHECKING:
    from minerd.daemon.cluster_role import ClusterRole  # nats-py: the [cluster] extra
    from minerd.daemon.region_role import RegionRole  # nats-py too

log = logging.getLogger("minerd.daemon.app")

STOP_TIMEOUT_S = 5.0
FAILSAFE_SHED_TIMEOUT_S = 10.0  # the most the last shed may take before the process exits


class ControlFailed(MinerdError):
    """The control loop stopped on an error; the site was shed to its fail-safe limit."""


def cycle_config(settings: Settings) -> CycleConfig:
    c, g = settings.control, settings.grid
    longest_rig_poll_s = max((r.interval_s + r.timeout_s for r in settings.rigs), default=0.0)
    return CycleConfig(
        site=settings.site.name,
        contracted_limit_kw=g.contracted_limit_kw,
        failsafe_limit_kw=g.failsafe_limit_kw,
        settlement_interval_s=g.settlement_interval_s,
        loop=LoopConfig(
            margin_kw=g.margin_kw,
            aux_base_kw=c.aux_base_kw,
            aux_fraction=c.aux_fraction,
            ramp_up_kw_per_s=c.ramp_up_kw_per_s,
            failsafe_limit_kw=g.failsafe_limit_kw,
            interval_s=c.interval_s,
            kp=c.kp,
            ki=c.ki,
            # Meter noise must not move rigs between profiles every cycle; half the margin
            # keeps the import under target minus the deadband.
            deadband_kw=g.margin_kw / 2,
        ),
        constraints=PlanConstraints(
            min_on_s=c.min_on_s,
            min_off_s=c.min_off_s,
            max_wakes_per_cycle=c.max_wakes_per_cycle,
        ),
        quota_heartbeat_s=g.quota_heartbeat_s,
        warmup_s=max(5.0, longest_rig_poll_s + 2.0),
    )


def check_open_files(rigs: int, poll_concurrency: int, command_concurrency: int) -> None:
    """Say at start what scale the open-files limit allows, before sockets run out."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = poll_concurrency + command_concurrency + 256  # meters, API, sinks, SQLite
    if soft != resource.RLIM_INFINITY and needed > soft:
        log.warning(
            "open-files limit %d is below what %d poll + %d command workers need (%d): "
            "lower [control] poll_concurrency or raise LimitNOFILE",
            soft,
            poll_concurrency,
            command_concurrency,
            needed,
        )
    else:
        log.info("open-files limit %s allows %d concurrent rig connections", soft, needed)
    log.info("site has %d rigs", rigs)


@dataclass
class Daemon:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    notifier: Notifier = field(default_factory=Notifier)

    def __post_init__(self) -> None:
        # Site time: a stepped system clock must not move quota times (docs/operator-guide.md).
        self.clock = SiteClock.wrap(self.clock)
        self.db: Database | None = None
        self.devices: SiteDevices | None = None
        self.sessions: StoredSessions | None = None
        self.site: Site | None = None
        self.components: Components | None = None
        self.economics: EconomicsParts | None = None
        self.cluster: ClusterRole | None = None  # [cluster] controller or shard
        self.region: RegionRole | None = None  # [region]: allocations from the coordinator
        self.supervisor = Supervisor(self.clock)
        self.ready = asyncio.Event()

    def build(self) -> Site:
        s = self.settings
        self.db = Database(s.storage.path)
        stores = Stores.open(self.db)
        self.sessions = StoredSessions(stores.state)
        self.devices = build_role_devices(s, self.sessions, self.clock)
        d = self.devices
        check_open_files(len(d.rigs), s.control.poll_concurrency, s.control.command_concurrency)
        self.site = Site(
            rig_infos=d.rig_infos,
            rigs=d.rigs,
            models=d.models,
            meter_infos=d.meter_infos,
            meters=d.meters,
            stores=stores,
            clock=self.clock,
            config=role_cycle_config(s, cycle_config(s)),
            poll_concurrency=s.control.poll_concurrency,
            command_concurrency=s.control.command_concurrency,
            command_rate_per_s=s.control.command_rate_per_s,
        )
        if s.cluster.role != "single":
            self.cluster = _cluster_role(s, self.site, self.clock)
        parts = build_economics(
            s.economics, s.site.timezone, d.models.values(), self.clock, stores.state
        )
        self.economics = parts
        if parts is not None:
            self.site.cycle.economics = parts.economics.max_j_per_th
        self.components = build_components(
            s, self.site, stores, self.clock, economics=parts.economics if parts else None
        )
        if self.components.prometheus is not None:
            self.components.prometheus.add_collector(RestartsCollector(self.supervisor.counts))
            site = self.site
            self.components.prometheus.add_collector(CycleCollector(lambda: site.cycle))
        if self.cluster is not None:
            self.cluster.wire(self.components)
        if s.region.enabled:
            self.region = _region_role(s, self.site, self.clock, self.cluster)
            self.region.wire(self.components)
        return self.site

    async def run(self) -> None:
        site = self.site or self.build()
        assert self.devices is not None and self.components is not None
        keep = self.supervisor.keep
        try:
            async with asyncio.TaskGroup() as tg:
                if self.devices.mqtt_rigs is not None:
                    tg.create_task(keep("mqtt-rigs", self.devices.mqtt_rigs.run), name="mqtt-rigs")
                    for hub in self.devices.mqtt_rig_hubs:
                        name = f"mqtt-rigs-{hub.prefix}"
                        tg.create_task(keep(name, hub.start), name=name)
                tg.create_task(self._control(site), name="site")
                tg.create_task(
                    keep("housekeeping", lambda: run_housekeeping(site.stores, self.clock)),
                    name="housekeeping",
                )
                for name, factory in self.components.tasks():
                    tg.create_task(keep(name, factory), name=name)
                tg.create_task(keep("systemd", lambda: self._systemd(site)), name="systemd")
                feed = self.economics.feed if self.economics is not None else None
                if feed is not None:
                    tg.create_task(keep("hashprice-feed", feed.run), name="hashprice-feed")
        finally:
            await self._close()

    async def _control(self, site: Site) -> None:
        """The control loop; if it ends on an error, shed to fail-safe, then fail the daemon."""
        try:
            await site.run()
        except Exception as exc:
            why = _describe(exc)
            log.critical("control loop failed: %s; shedding to the fail-safe limit", why)
            await self._shed(site)
            raise ControlFailed(f"control loop failed: {why}") from exc
        await self._shed(site)
        raise ControlFailed("control loop ended")

    async def _shed(self, site: Site) -> None:
        """Best effort within FAILSAFE_SHED_TIMEOUT_S: the process exits either way."""
        cycle = site.cycle
        try:
            async with self.clock.timeout(FAILSAFE_SHED_TIMEOUT_S):
                report = await shed_to_failsafe(
                    site.fleet.snapshot(self.clock.now_s()),
                    cycle.models,
                    site.executor.rigs,
                    rig_limits_s=site.executor.limits_s,
                    failsafe_limit_kw=site.config.failsafe_limit_kw,
                    loop=site.config.loop,
                    clock=self.clock,
                    journal=site.stores.journal,
                )
        except Exception as exc:
            log.critical("fail-safe shed did not complete: %s", exc, exc_info=exc)
            return
        log.critical(
            "fail-safe shed before exit: %d sleep commands, %d acknowledged, %d failed "
            "(worst case kept %.1f kW of a %.1f kW rig budget)",
            report.sent,
            report.ok,
            report.failed,
            report.kept_w / 1000.0,
            report.budget_w / 1000.0,
        )

    async def _systemd(self, site: Site) -> None:
        await site.cycle.first_cycle.wait()
        self.ready.set()
        self.notifier.notify("READY=1\nSTATUS=controlling")
        log.info("ready: first control cycle done")
        interval_s = watchdog_interval_s()
        if interval_s is None:
            return
        stall_s = max(3 * self.settings.control.interval_s, interval_s)
        await feed_watchdog(
            self.notifier, lambda: site.cycle.last_cycle_mono_s, interval_s, stall_s
        )

    async def _close(self) -> None:
        self.notifier.notify("STOPPING=1")
        if self.components is not None:
            with contextlib.suppress(Exception):
                await self.components.aclose()
        if self.devices is not None:
            with contextlib.suppress(Exception):
                await self.devices.aclose()
        if self.db is not None:
            self.db.close()


def _cluster_role(settings: Settings, site: Site, clock: Clock) -> ClusterRole:
    """The controller or shard role; nats-py is imported only here (the [cluster] extra)."""
    try:
        from minerd.daemon.cluster_role import build_cluster_role
    except ModuleNotFoundError as e:
        raise ClusterError(
            "nats", settings.cluster.nats_url, f"{e}: pip install 'minerd[cluster]'"
        ) from e
    role = build_cluster_role(settings, site, cycle_config(settings), clock)
    assert role is not None
    return role


def _region_role(
    settings: Settings, site: Site, clock: Clock, cluster: ClusterRole | None
) -> RegionRole:
    """The site under the regional coordinator (a single process or a site controller)."""
    try:
        from minerd.cluster.subjects import check_token
        from minerd.daemon.region_role import build_region_role
    except ModuleNotFoundError as e:
        raise ClusterError(
            "nats", settings.region.nats_url, f"{e}: pip install 'minerd[cluster]'"
        ) from e
    if settings.cluster.role == "shard":
        raise ClusterError(
            "region",
            settings.region.name or "",
            "[region] is for the site's controller, not a shard",
        )
    r = settings.region
    check_token("site", r.site or settings.cluster.site or settings.site.name)
    controller = cluster.controller if cluster is not None else None
    return build_region_role(settings, site, clock, controller)


def _describe(exc: BaseException) -> str:
    """What went wrong, from the innermost errors of nested task groups."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


async def run_until_signalled(main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run main until SIGTERM/SIGINT, then cancel it and give it STOP_TIMEOUT_S to finish."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(main(), name="daemon")
    stopper = asyncio.create_task(stop.wait(), name="signals")
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        stopper.cancel()
        exc = task.exception()
        if exc is not None:
            log.error("daemon stopped on error: %s", exc, exc_info=exc)
            return 1
        return 0
    log.info("stopping on signal")
    task.cancel()
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    except TimeoutError:
        log.error("did not stop within %.0fs", STOP_TIMEOUT_S)
        return 1
    return 0


def run(settings: Settings, log_format: str = "logfmt") -> int:
    """Entry of `minerd run` (logging is already configured by the CLI)."""
    daemon = Daemon(settings)
    return asyncio.run(run_until_signalled(daemon.run))
