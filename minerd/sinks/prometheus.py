"""Prometheus exposition: a dedicated registry rendered from the latest snapshot on scrape.

Publishing a snapshot only stores a reference (O(1) for the control cycle). A scrape sums
the fleet once per snapshot (cached) and renders aggregates: site, per state, per container,
per meter, plus the daemon's own health (cycle and poll durations, poll errors, API
requests, sink and spool figures). Per-rig series are optional: "auto" turns them on only
up to `PER_RIG_AUTO_MAX` rigs, because 50,000 labelled series cost seconds to render.

Unknown is not zero: a value not read yet is left out of the exposition (no sample), never
rendered as 0: the grid power before every grid meter answered once, rig sums (site or
container) while one of their rigs was never polled, a never-polled rig's own series.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from minerd.model import FleetSnapshot, RigState, ShedCapacity
from minerd.sinks.base import SinkStats
from minerd.sinks.events import CommandsEvent, EconomicsFigures, SnapshotEvent, TelemetryEvent

JOULES_PER_KWH = 3_600_000.0
PER_RIG_AUTO_MAX = 2000
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PerRigSeries = Literal["auto", "on", "off"]

_CYCLE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_POLL_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0)
_API_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_PHASES = ("l1", "l2", "l3")


@dataclass(frozen=True)
class _Fleet:
    """Sums over one snapshot's rigs, computed once per snapshot."""

    power_w: float
    hashrate_ths: float
    by_state: dict[RigState, int]
    containers: dict[str, tuple[int, float, float, dict[RigState, int]]]
    stale_rigs: int
    unread: frozenset[str]  # containers holding a rig never polled ("" key: none)

    @property
    def all_read(self) -> bool:
        return not self.unread


def _summarise(snapshot: FleetSnapshot) -> _Fleet:
    by_state = dict.fromkeys(RigState, 0)
    containers: dict[str, list[float]] = {}
    states: dict[str, dict[RigState, int]] = {}
    power = hashrate = 0.0
    stale = 0
    unread: set[str] = set()
    for r in snapshot.rigs:
        rd = r.reading
        if rd.taken_at_s == 0.0:
            unread.add(r.container)
        by_state[rd.state] += 1
        power += rd.power_w
        hashrate += rd.hashrate_ths
        if not r.fresh:
            stale += 1
        acc = containers.get(r.container)
        if acc is None:
            acc = containers[r.container] = [0.0, 0.0, 0.0]
            states[r.container] = dict.fromkeys(RigState, 0)
        acc[0] += 1
        acc[1] += rd.power_w
        acc[2] += rd.hashrate_ths
        states[r.container][rd.state] += 1
    return _Fleet(
        power,
        hashrate,
        by_state,
        {c: (int(a[0]), a[1], a[2], states[c]) for c, a in containers.items()},
        stale,
        frozenset(unread),
    )


class _SnapshotCollector(Collector):
    def __init__(self, owner: PrometheusSink) -> None:
        self._owner = owner
        self._cache: tuple[SnapshotEvent, _Fleet] | None = None

    def _fleet(self, event: SnapshotEvent) -> _Fleet:
        if self._cache is None or self._cache[0] is not event:
            self._cache = (event, _summarise(event.snapshot))
        return self._cache[1]

    def collect(self) -> Iterable[Metric]:
        owner = self._owner
        yield from self._sinks(owner.sink_stats())
        yield from self._session_recoveries(owner.session_recoveries())
        event = owner.latest
        if event is None:
            return
        snap = event.snapshot
        fleet = self._fleet(event)
        site = owner.site

        def gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
            """A site gauge; no sample when the value is not known yet (None)."""
            g = GaugeMetricFamily(name, doc, labels=["site"])
            if value is not None:
                g.add_metric([site], value)
            return g

        grid_read = snap.grid_read

        yield gauge(
            "minerd_snapshot_timestamp_seconds", "Time of the latest snapshot", snap.taken_at_s
        )
        yield gauge(
            "minerd_site_grid_power_watts",
            "Grid import measured",
            snap.grid_import_w if grid_read else None,
        )
        yield gauge("minerd_site_limit_watts", "Effective limit", event.limit.limit_kw * 1000.0)
        yield gauge("minerd_site_budget_watts", "Power budget for the rigs", event.budget_w)
        all_read = fleet.all_read
        yield gauge(
            "minerd_site_rig_power_watts", "Sum of rig power", fleet.power_w if all_read else None
        )
        yield gauge(
            "minerd_site_hashrate_terahashes_per_second",
            "Sum of rig hashrate",
            fleet.hashrate_ths if all_read else None,
        )
        yield gauge("minerd_site_failsafe", "1 while the fail-safe limit applies", event.failsafe)
        yield gauge("minerd_site_grid_fresh", "1 while every grid meter is fresh", snap.grid_fresh)
        yield gauge("minerd_site_stale_rigs", "Rigs whose reading is stale", fleet.stale_rigs)
        if event.shed is not None:
            yield from self._shed(site, event.shed)
        if event.economics is not None:
            yield from self._economics(site, event.economics)

        rigs = GaugeMetricFamily("minerd_rigs", "Rigs by state", labels=["site", "state"])
        for state, n in fleet.by_state.items():
            rigs.add_metric([site, state.value], n)
        yield rigs
        yield from self._containers(site, fleet)
        yield from self._meters(site, snap)
        if owner.per_rig_enabled(len(snap.rigs)):
            yield from self._rigs(site, snap)

    @staticmethod
    def _shed(site: str, shed: ShedCapacity) -> Iterable[Metric]:
        """Site import sheddable within each horizon, in total and per firmware family (watts,
        like every power on /metrics; the API and IEC 104 give kW)."""
        total = GaugeMetricFamily(
            "minerd_site_shed_capacity_watts",
            "Site import that can be shed within the horizon of a command",
            labels=["site", "within"],
        )
        for h, kw in zip(shed.horizons_s, shed.site_kw, strict=True):
            total.add_metric([site, f"{h:g}s"], kw * 1000.0)
        yield total
        by_family = GaugeMetricFamily(
            "minerd_shed_capacity_watts",
            "Site import that can be shed within the horizon, by firmware family",
            labels=["site", "within", "family"],
        )
        for family, values in sorted(shed.family_site_kw().items()):
            for h, kw in zip(shed.horizons_s, values, strict=True):
                by_family.add_metric([site, f"{h:g}s", family.value], kw * 1000.0)
        yield by_family

    @staticmethod
    def _economics(site: str, econ: EconomicsFigures) -> Iterable[Metric]:
        """The status page's economics figures. Money is in the site's currency (a label:
        [economics] currency), the hashprice in USD; a rate not known has no sample."""
        money = (
            ("minerd_energy_price_per_mwh", "Energy price now", econ.energy_price_per_mwh),
            ("minerd_revenue_per_hour", "Mining revenue per hour now", econ.revenue_per_h),
            ("minerd_energy_cost_per_hour", "Energy cost per hour now", econ.energy_cost_per_h),
            ("minerd_margin_per_hour", "Revenue less energy cost per hour", econ.margin_per_h),
        )
        for name, doc, value in money:
            g = GaugeMetricFamily(name, f"{doc}, site currency", labels=["site", "currency"])
            if value is not None:
                g.add_metric([site, econ.currency], value)
            yield g
        single = (
            (
                "minerd_hashprice_usd_per_th_day",
                "Hashprice in use, USD per TH/s per day",
                econ.hashprice_usd_per_th_day,
            ),
            (
                "minerd_breakeven_joules_per_terahash",
                "Least efficient J/TH that still earns its energy at the current rates",
                econ.breakeven_j_per_th,
            ),
        )
        for name, doc, value in single:
            g = GaugeMetricFamily(name, doc, labels=["site"])
            if value is not None:
                g.add_metric([site], value)
            yield g
        fresh = GaugeMetricFamily(
            "minerd_hashprice_fresh", "1 while the hashprice feed is fresh", labels=["site"]
        )
        fresh.add_metric([site], econ.hashprice_fresh)
        yield fresh

    @staticmethod
    def _containers(site: str, fleet: _Fleet) -> Iterable[Metric]:
        labels = ["site", "container"]
        power = GaugeMetricFamily("minerd_container_power_watts", "Rig power", labels=labels)
        rate = GaugeMetricFamily(
            "minerd_container_hashrate_terahashes_per_second", "Rig hashrate", labels=labels
        )
        count = GaugeMetricFamily(
            "minerd_container_rigs", "Rigs by state", labels=["site", "container", "state"]
        )
        for c, (_, p, h, states) in sorted(fleet.containers.items()):
            if c not in fleet.unread:
                power.add_metric([site, c], p)
                rate.add_metric([site, c], h)
            for state, n in states.items():
                count.add_metric([site, c, state.value], n)
        return (power, rate, count)

    @staticmethod
    def _meters(site: str, snap: FleetSnapshot) -> Iterable[Metric]:
        ml = ["site", "meter", "role", "container"]
        power = GaugeMetricFamily("minerd_meter_power_watts", "Meter active power", labels=ml)
        fresh = GaugeMetricFamily("minerd_meter_fresh", "1 while the reading is fresh", labels=ml)
        age = GaugeMetricFamily("minerd_meter_age_seconds", "Age of the reading", labels=ml)
        pl = ["site", "meter", "phase"]
        volts = GaugeMetricFamily("minerd_meter_voltage_volts", "Phase voltage", labels=pl)
        amps = GaugeMetricFamily("minerd_meter_current_amperes", "Phase current", labels=pl)
        # Base units (promtool): the meter's kWh register in joules; it only grows (a counter,
        # reset when a meter is replaced), so rate() gives the import power over a window.
        energy = CounterMetricFamily(
            "minerd_meter_energy_import_joules", "Imported energy register", labels=ml
        )
        for m in snap.meters:
            key = [site, m.meter, m.role.value, m.container]
            fresh.add_metric(key, m.fresh)
            age.add_metric(key, m.age_s)
            rd = m.reading
            if rd is None:
                continue
            power.add_metric(key, rd.power_w)
            if rd.energy_import_kwh is not None:
                energy.add_metric(key, rd.energy_import_kwh * JOULES_PER_KWH)
            for ph, v, a in zip(
                _PHASES,
                (rd.voltage_l1_v, rd.voltage_l2_v, rd.voltage_l3_v),
                (rd.current_l1_a, rd.current_l2_a, rd.current_l3_a),
                strict=True,
            ):
                if v is not None:
                    volts.add_metric([site, m.meter, ph], v)
                if a is not None:
                    amps.add_metric([site, m.meter, ph], a)
        return (power, fresh, age, volts, amps, energy)

    @staticmethod
    def _rigs(site: str, snap: FleetSnapshot) -> Iterable[Metric]:
        rl = ["site", "rig", "model", "container"]
        power = GaugeMetricFamily("minerd_rig_power_watts", "Rig power", labels=rl)
        rate = GaugeMetricFamily(
            "minerd_rig_hashrate_terahashes_per_second", "Rig hashrate", labels=rl
        )
        temp = GaugeMetricFamily("minerd_rig_chip_temp_max_celsius", "Hottest chip", labels=rl)
        hashing = GaugeMetricFamily("minerd_rig_hashing", "1 while hashing", labels=rl)
        for r in snap.rigs:
            key = [site, r.rig_id, r.model, r.container]
            rd = r.reading
            hashing.add_metric(key, rd.state is RigState.HASHING)
            if rd.taken_at_s == 0.0:
                continue  # never polled: power and hashrate unknown, not 0
            power.add_metric(key, rd.power_w)
            rate.add_metric(key, rd.hashrate_ths)
            if rd.chip_temp_max_c is not None:
                temp.add_metric(key, rd.chip_temp_max_c)
        return (power, rate, temp, hashing)

    @staticmethod
    def _session_recoveries(by_reason: Mapping[str, int] | None) -> Iterable[Metric]:
        if by_reason is None:
            return ()
        recoveries = CounterMetricFamily(
            "minerd_rig_session_recoveries",
            "LuxOS session problems recovered within the command (402, expired, adopted)",
            labels=["reason"],
        )
        for reason, n in sorted(by_reason.items()):
            recoveries.add_metric([reason], n)
        return (recoveries,)

    @staticmethod
    def _sinks(stats: Sequence[SinkStats]) -> Iterable[Metric]:
        if not stats:
            return ()
        labels = ["sink"]
        healthy = GaugeMetricFamily("minerd_sink_healthy", "1 while delivery works", labels=labels)
        queued = GaugeMetricFamily("minerd_sink_queued_events", "Events waiting", labels=labels)
        dropped = CounterMetricFamily(
            "minerd_sink_dropped_events", "Events dropped on a full queue", labels=labels
        )
        written = CounterMetricFamily("minerd_sink_points_written", "Points written", labels=labels)
        errors = CounterMetricFamily("minerd_sink_write_errors", "Failed writes", labels=labels)
        spool = GaugeMetricFamily("minerd_spool_points", "Points in the spool", labels=labels)
        fill = GaugeMetricFamily("minerd_spool_fill_ratio", "Spool points / max", labels=labels)
        spool_drop = CounterMetricFamily(
            "minerd_spool_dropped_points", "Points dropped from a full spool", labels=labels
        )
        for s in stats:
            healthy.add_metric([s.name], s.healthy)
            queued.add_metric([s.name], s.queued)
            dropped.add_metric([s.name], s.dropped_events)
            written.add_metric([s.name], s.points_written)
            errors.add_metric([s.name], s.write_errors)
            spool.add_metric([s.name], s.spool_points)
            fill.add_metric([s.name], s.spool_fill_ratio)
            spool_drop.add_metric([s.name], s.spool_dropped_points)
        return (healthy, queued, dropped, written, errors, spool, fill, spool_drop)


class PrometheusSink:
    """The `/metrics` source. Also the place the runtime and API report their health to."""

    def __init__(self, site: str, per_rig_series: PerRigSeries = "auto") -> None:
        self.name = "prometheus"
        self.site = site
        self.per_rig_series: PerRigSeries = per_rig_series
        self.latest: SnapshotEvent | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self._stats_sources: list[Callable[[], Sequence[SinkStats]]] = []
        self._session_source: Callable[[], Mapping[str, int]] | None = None
        r = self.registry
        self._cycle = Histogram(
            "minerd_control_cycle_duration_seconds",
            "Duration of one loop iteration (the control cycle is loop=control)",
            ["loop"],
            buckets=_CYCLE_BUCKETS_S,
            registry=r,
        )
        self._poll = Histogram(
            "minerd_poll_duration_seconds",
            "Duration of one device read",
            ["device_kind"],
            buckets=_POLL_BUCKETS_S,
            registry=r,
        )
        self._poll_errors = Counter(
            "minerd_poll_errors", "Failed device reads", ["device_kind", "reason"], registry=r
        )
        self._polls = Counter("minerd_polls", "Device reads attempted", registry=r)
        self._overruns = Counter(
            "minerd_control_cycle_overruns",
            "Control cycles that took longer than their interval",
            registry=r,
        )
        self._api = Counter(
            "minerd_api_requests", "API requests", ["route", "method", "status"], registry=r
        )
        self._api_duration = Histogram(
            "minerd_api_request_duration_seconds",
            "API request duration",
            ["route"],
            buckets=_API_BUCKETS_S,
            registry=r,
        )
        self._commands = Counter(
            "minerd_dispatch_commands", "Commands dispatched to rigs", ["action"], registry=r
        )
        r.register(_SnapshotCollector(self))

    # ------------------------------------------------------------ sink protocol

    def offer(self, event: TelemetryEvent) -> None:
        if isinstance(event, SnapshotEvent):
            self.latest = event
        elif isinstance(event, CommandsEvent):
            for c in event.commands:
                self._commands.labels(c.action.value).inc()

    async def run(self) -> None:
        await asyncio.Event().wait()  # nothing to push: scrapes pull

    def stats(self) -> SinkStats:
        return SinkStats(
            name=self.name, healthy=True, queued=0, dropped_events=0, kind="prometheus"
        )

    # ------------------------------------------------------------ health inputs

    def observe_cycle(self, loop: str, duration_s: float) -> None:
        """One iteration of a loop ("control", "poll-meters", "poll-rigs", "executor")."""
        self._cycle.labels(loop).observe(duration_s)

    def observe_poll(self, device_kind: str, duration_s: float) -> None:
        self._poll.labels(device_kind).observe(duration_s)

    def count_polls(self, n: int) -> None:
        """n more device reads attempted (the denominator of the poll error rate)."""
        self._polls.inc(n)

    def count_overruns(self, n: int) -> None:
        self._overruns.inc(n)

    def count_poll_error(self, device_kind: str, reason: str) -> None:
        """reason: DeviceError.reason ("offline", "timeout", "protocol", ...): bounded."""
        self._poll_errors.labels(device_kind, reason).inc()

    def observe_api_request(self, route: str, method: str, status: int, duration_s: float) -> None:
        """route: the route template ("/api/v1/rigs/{rig_id}"), never the raw path."""
        self._api.labels(route, method, str(status)).inc()
        self._api_duration.labels(route).observe(duration_s)

    def add_collector(self, collector: Collector) -> None:
        """More series rendered on every scrape (the database's health)."""
        self.registry.register(collector)

    def add_stats_source(self, source: Callable[[], Sequence[SinkStats]]) -> None:
        """Sink and spool figures to render (the hub registers itself here)."""
        self._stats_sources.append(source)

    def set_session_source(self, source: Callable[[], Mapping[str, int]]) -> None:
        """Rig session recoveries by reason, read on scrape (the daemon sums its rigs)."""
        self._session_source = source

    def session_recoveries(self) -> Mapping[str, int] | None:
        return self._session_source() if self._session_source is not None else None

    def sink_stats(self) -> list[SinkStats]:
        out: list[SinkStats] = []
        for source in self._stats_sources:
            out.extend(source())
        return out

    def per_rig_enabled(self, rigs: int) -> bool:
        if self.per_rig_series == "auto":
            return rigs <= PER_RIG_AUTO_MAX
        return self.per_rig_series == "on"

    # ------------------------------------------------------------ exposition

    def render_metrics(self) -> bytes:
        """The text exposition format (CONTENT_TYPE) of everything above."""
        return generate_latest(self.registry)
