"""The daemon's outward-facing parts, built from settings: HTTP API, telemetry sinks, alerts.

Each hangs off the control cycle as a listener that only drops the latest result into a
slot and returns; the part's own task picks it up. So a slow database, a dead Alertmanager
or a stuck HTTP client never delays a control cycle. Tasks are handed out as factories, so
the app's supervisor can start a failed one again without touching control.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from minerd.alerts import AlertEngine, AlertThresholds, DeliverySettings, RuleTiming, SiteFacts
from minerd.api import EngineAlertsView, create_app, serve
from minerd.api.auth import FailureThrottle
from minerd.api.connections import reserved_fds
from minerd.api.mqtt_quota import run_mqtt_quota_input
from minerd.clock import Clock, step_status
from minerd.daemon.award_watch import AwardWatch
from minerd.daemon.awards import AwardParts, build_awards
from minerd.devices.registry import kept_fds
from minerd.gridlink.tasks import GridLinks, build_grid_links
from minerd.model import ComplianceRecord, RigCommand
from minerd.runtime.cycle import CycleResult
from minerd.runtime.economics_status import EconomicsView
from minerd.runtime.energy_board import EnergyBoard
from minerd.runtime.sessions import session_recoveries
from minerd.runtime.site import Site
from minerd.settings import Settings
from minerd.sinks import (
    InfluxOptions,
    MqttSink,
    MqttSinkConfig,
    PrometheusSink,
    Sink,
    SinkHub,
    build_influx_sink,
)
from minerd.sinks.auth_metrics import AuthFailuresCollector
from minerd.sinks.clock_metrics import ClockOffsetCollector
from minerd.sinks.health_metrics import StorageCollector
from minerd.storage import StorageHealth, Stores

log = logging.getLogger("minerd.daemon.components")


TaskFactory = Callable[[], Coroutine[Any, Any, None]]


class LatestSlot:
    """Holds only the newest cycle result: a consumer that falls behind skips, never queues."""

    def __init__(self) -> None:
        self._value: CycleResult | None = None
        self._event = asyncio.Event()
        self.skipped = 0

    def put(self, result: CycleResult) -> None:
        if self._value is not None:
            self.skipped += 1
        self._value = result
        self._event.set()

    async def get(self) -> CycleResult:
        await self._event.wait()
        self._event.clear()
        value, self._value = self._value, None
        assert value is not None
        return value


class SinkFeed:
    """Per cycle: keeps the newest snapshot, and every command and compliance record."""

    def __init__(self) -> None:
        self.latest = LatestSlot()
        self.commands: list[tuple[float, tuple[RigCommand, ...]]] = []
        self.compliance: list[ComplianceRecord] = []

    def put(self, result: CycleResult) -> None:
        d = result.dispatch
        if d.shed or d.raise_:
            self.commands.append((result.snapshot.taken_at_s, d.shed + d.raise_))
        self.compliance.extend(result.compliance)
        self.latest.put(result)


@dataclass
class Components:
    alerts: AlertEngine | None = None
    sinks: SinkHub | None = None
    prometheus: PrometheusSink | None = None
    api_started: asyncio.Event = field(default_factory=asyncio.Event)
    # Facts the sinks contribute to alert rules (spool fill, TSDB reachability).
    spool_fill_ratio: float = 0.0
    tsdb_reachable: bool = True
    # The API's brake on wrong tokens: its recent count feeds the AuthFailures alert.
    auth_throttle: FailureThrottle = field(default_factory=FailureThrottle)
    grid_links: GridLinks = field(default_factory=GridLinks)  # IEC 104, OpenADR (if on)
    economics: EconomicsView | None = None  # its status goes to telemetry with each snapshot
    award_watch: AwardWatch | None = None  # facts of the energy award alert rules
    _tasks: list[tuple[str, TaskFactory]] = field(default_factory=list)

    def tasks(self) -> list[tuple[str, TaskFactory]]:
        """(name, factory): each call of a factory starts the part afresh."""
        tasks, self._tasks = self._tasks, []
        return tasks

    async def aclose(self) -> None:
        self._tasks = []


def alert_thresholds(settings: Settings) -> AlertThresholds:
    a = settings.alerts
    meter = RuleTiming(a.meter_stale_after_s, a.meter_stale_after_s)
    return AlertThresholds(
        chip_temp_limit_c=a.chip_temp_warn_c,
        group_min_ratio=a.rigs_offline_fraction,
        timings={
            "MeterStale": meter,
            "MeterOffline": meter,
            "QuotaBreach": RuleTiming(a.over_limit_for_s, 10.0),
            "RigIgnoresCommands": RuleTiming(a.rig_unresponsive_after_s, 60.0),
        },
    )


def alert_delivery(settings: Settings) -> DeliverySettings:
    a, m = settings.alerts, settings.mqtt
    secret = a.webhook_secret_value
    return DeliverySettings(
        alertmanager_urls=tuple(a.alertmanager_urls),
        webhook_url=a.webhook_url,
        webhook_secret=secret.encode() if secret else b"",
        mqtt_url=m.url if a.mqtt else None,
        mqtt_username=m.username,
        mqtt_password=m.password_value,
        mqtt_topic_prefix=m.topic_prefix,
    )


async def _evaluate_alerts(
    engine: AlertEngine, slot: LatestSlot, parts: Components, clock: Clock, health: StorageHealth
) -> None:
    while True:
        result = await slot.get()
        if result.plan is None:
            continue  # warming up: meters and rigs not read yet is not a fault
        auth_failures, auth_sources = parts.auth_throttle.recent()
        step = step_status(clock)
        watch = parts.award_watch
        faults, fault = watch.register() if watch is not None else (0, "")
        facts = SiteFacts(
            effective_limit_kw=result.decision.limit.limit_kw,
            failsafe_engaged=bool(result.failsafe_reason),
            failsafe_reason=result.failsafe_reason,
            spool_fill_ratio=parts.spool_fill_ratio,
            tsdb_reachable=parts.tsdb_reachable,
            commanded_not_reached=frozenset(
                r.rig_id for r in result.snapshot.rigs if r.unresponsive
            ),
            storage_problem=health.summary(),
            auth_failures=auth_failures,
            auth_failure_sources=auth_sources,
            clock_stepped=step.stepped,
            clock_offset_s=step.offset_s,
            settled=watch.settled if watch is not None else None,
            energy_register_faults=faults,
            energy_register_fault=fault,
        )
        try:
            changes = engine.evaluate(result.snapshot, facts, clock.now_s())
        except Exception:  # alerting must not take the daemon down; the log says why
            log.exception("alert evaluation failed")
            changes = []
        if parts.sinks is not None:
            for change in changes:
                parts.sinks.publish_alert(change.alert)
        await asyncio.sleep(0)


async def _feed_sinks(hub: SinkHub, feed: SinkFeed, site: Site, parts: Components) -> None:
    errors_seen: dict[str, int] = {}
    polls_seen = overruns_seen = 0
    while True:
        result = await feed.latest.get()
        commands, feed.commands = feed.commands, []
        records, feed.compliance = feed.compliance, []
        d = result.decision
        snap, econ = result.snapshot, parts.economics
        hub.publish_snapshot(
            snap,
            d.limit,
            d.rig_budget_w,
            shed=result.shed,
            # The status page's figures (api routes_site asks the same view), per snapshot.
            economics=econ.status(snap.rig_power_w, snap.hashrate_ths) if econ else None,
        )
        for at_s, cmds in commands:
            hub.publish_commands(cmds, at_s)
        for rec in records:
            hub.publish_compliance(rec)
        parts.spool_fill_ratio = hub.spool_fill_ratio
        parts.tsdb_reachable = hub.tsdb_reachable
        prom = parts.prometheus
        if prom is not None:
            prom.observe_cycle("control", result.duration_s)
            polls, overruns = site.fleet.polls_total, site.cycle.overruns
            prom.count_polls(polls - polls_seen)
            prom.count_overruns(overruns - overruns_seen)
            polls_seen, overruns_seen = polls, overruns
            for reason, n in site.fleet.poll_errors_by_reason.items():
                for _ in range(n - errors_seen.get(reason, 0)):
                    prom.count_poll_error("device", reason)
                errors_seen[reason] = n


def build_components(
    settings: Settings,
    site: Site,
    stores: Stores,
    clock: Clock,
    *,
    economics: EconomicsView | None = None,
) -> Components:
    parts = Components(economics=economics)
    models = {m.name: m for m in site.cycle.models.values()}
    engine = AlertEngine(
        settings.site.name,
        stores.alerts,
        models,
        alert_thresholds(settings),
        alert_delivery(settings),
        clock=clock,
        db=stores.db,
    )
    parts.alerts = engine
    _build_sinks(settings, site, stores, parts)
    alert_slot = LatestSlot()
    site.cycle.listeners.append(alert_slot.put)
    parts._tasks.append(
        (
            "alerts-evaluate",
            lambda: _evaluate_alerts(engine, alert_slot, parts, clock, stores.health),
        )
    )
    parts._tasks.append(("alerts-deliver", engine.run))
    hub = parts.sinks
    awards = build_awards(
        settings, site, stores, clock, hub.publish_settlement if hub is not None else None
    )
    parts._tasks.extend(awards.tasks)
    watch = AwardWatch(
        lambda: site.cycle.energy, ZoneInfo(settings.site.timezone), clock, stores.state
    )
    watch.restore()
    site.cycle.listeners.append(watch.on_cycle)
    awards.keeper.on_closed.append(watch.on_closed)
    parts.award_watch = watch
    _build_api(settings, site, stores, parts, economics, awards)
    if parts.prometheus is not None:
        parts.prometheus.add_collector(ClockOffsetCollector(lambda: _clock_metrics(clock)))
    parts.grid_links = build_grid_links(settings, site)
    parts._tasks.extend(parts.grid_links.tasks)
    return parts


def _clock_metrics(clock: Clock) -> tuple[float, int]:
    step = step_status(clock)
    return step.offset_s, step.steps_total


def _build_sinks(settings: Settings, site: Site, stores: Stores, parts: Components) -> None:
    name = settings.site.name
    sinks: list[Sink] = []
    if settings.prometheus.enabled:
        parts.prometheus = PrometheusSink(name, per_rig_series=settings.prometheus.per_rig_series)
        parts.prometheus.set_session_source(lambda: session_recoveries(site.poller.rigs))
        parts.prometheus.add_collector(StorageCollector(stores.health))
        sinks.append(parts.prometheus)
    if settings.influx.enabled:
        options = InfluxOptions.from_section(settings.influx)
        sinks.append(build_influx_sink(name, options, stores.db, settings.storage.spool_max_points))
    if settings.mqtt.enabled:
        sinks.append(MqttSink(name, MqttSinkConfig.from_section(settings.mqtt)))
    if not sinks:
        return
    hub = SinkHub(sinks)
    if parts.prometheus is not None:
        parts.prometheus.add_stats_source(hub.stats)
    parts.sinks = hub
    feed = SinkFeed()
    site.cycle.listeners.append(feed.put)
    parts._tasks.append(("sinks", hub.run))
    parts._tasks.append(("sinks-feed", lambda: _feed_sinks(hub, feed, site, parts)))


def _build_api(
    settings: Settings,
    site: Site,
    stores: Stores,
    parts: Components,
    economics: EconomicsView | None = None,
    awards: AwardParts | None = None,
) -> None:
    prom, engine = parts.prometheus, parts.alerts
    app = create_app(
        site,
        settings.api,
        metrics=prom.render_metrics if prom is not None else None,
        alerts=EngineAlertsView(engine, stores.alerts) if engine is not None else None,
        observe_request=prom.observe_api_request if prom is not None else None,
        throttle=parts.auth_throttle,
        timezone=settings.site.timezone,
        economics=economics,
        award_interval_s=settings.awards.interval_s,
        awards=awards.board if awards is not None else None,
        energy=EnergyBoard(lambda: site.cycle.energy),
    )
    if prom is not None:
        throttle = parts.auth_throttle
        prom.registry.register(
            AuthFailuresCollector(lambda: (throttle.failures_total, throttle.refused_total))
        )
    c = settings.control
    reserve = reserved_fds(
        len(site.rig_infos),
        len(site.meter_infos),
        c.poll_concurrency,
        c.command_concurrency,
        kept=kept_fds(r.protocol for r in site.rig_infos),
    )
    parts._tasks.append(
        ("api", lambda: serve(app, settings.api, parts.api_started, reserved_fds=reserve))
    )
    m = settings.mqtt
    if m.enabled and m.quota_input:
        parts._tasks.append(
            (
                "mqtt-quota-input",
                lambda: run_mqtt_quota_input(
                    site,
                    m.url,
                    m.topic_prefix,
                    username=m.username or None,
                    password=m.password_value,
                    award_rules=awards.rules if awards is not None else None,
                ),
            )
        )
