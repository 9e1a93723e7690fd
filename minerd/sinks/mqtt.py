"""MQTT: retained site state, optional retained per-rig state, online/offline status.

Topics (prefix defaults to "minerd"):
- `<prefix>/<site>/status`  "online" (retained) once connected; "offline" as the last will
  and on a clean stop;
- `<prefix>/<site>/state`   JSON, retained, published when it changes (at most once per
  snapshot, i.e. per control cycle);
- `<prefix>/<site>/rigs/<rig>`  JSON, retained, when that rig's state changes (opt-in);
- `<prefix>/<site>/settlement`  JSON, retained: the last closed settlement interval;
- `<prefix>/<site>/economics`  JSON, retained, when it changes: energy price, hashprice and
  money per hour as the status page shows them (only with [economics] on).

A broker restart loses retained messages unless it persists them, so after every
(re)connect the status, the latest state and every rig state are published again.
Connection, backoff, last will and the URL are the shared transports.mqtt session's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
from dataclasses import dataclass
from typing import Protocol

from minerd.errors import DeviceError
from minerd.sinks.base import ErrorLog, SinkStats
from minerd.sinks.events import SettlementEvent, SnapshotEvent, TelemetryEvent
from minerd.transports.mqtt import MqttSession
from minerd.transports.mqtt_url import parse_mqtt_url

log = logging.getLogger(__name__)


class MqttSection(Protocol):
    """What from_section reads from minerd.settings' `[mqtt]` model."""

    @property
    def url(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def password_value(self) -> str | None: ...
    @property
    def topic_prefix(self) -> str: ...
    @property
    def per_rig_state(self) -> bool: ...


@dataclass(frozen=True)
class MqttSinkConfig:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    topic_prefix: str = "minerd"
    per_rig_state: bool = False
    client_id: str | None = None
    keepalive_s: int = 30
    timeout_s: float = 5.0
    min_backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    queue_size: int = 8
    tls: bool = False  # verify the broker against the system CAs

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> MqttSinkConfig:
        """`mqtt://host:port` (1883) or `mqtts://host:port` (8883); other fields by keyword.

        A bad URL raises MqttUrlError naming mqtt.url."""
        broker = parse_mqtt_url(url, "mqtt.url")
        return cls(host=broker.host, port=broker.port, tls=broker.tls, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_section(cls, section: MqttSection) -> MqttSinkConfig:
        return cls.from_url(
            str(section.url),
            username=section.username or None,
            password=section.password_value,
            topic_prefix=section.topic_prefix,
            per_rig_state=section.per_rig_state,
        )


def _r(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def site_state(site: str, event: SnapshotEvent) -> dict[str, object]:
    """The retained site state document (docs/telemetry.md)."""
    snap = event.snapshot
    t = event.totals
    grid_read = snap.grid_read
    # Unknown is not zero: null until the grid meter (or every rig) was read once.
    return {
        "site": site,
        "taken_at_s": round(snap.taken_at_s, 3),
        "power_w": _r(snap.grid_import_w, 0) if grid_read else None,
        "limit_w": _r(event.limit.limit_kw * 1000.0, 0),
        "limit_origin": event.limit.origin,
        "quota_id": event.limit.quota_id,
        "budget_w": _r(event.budget_w, 0),
        "rig_power_w": _r(t.power_w, 0) if t.all_read else None,
        "hashrate_ths": _r(t.hashrate_ths, 2) if t.all_read else None,
        "failsafe": event.failsafe,
        "grid_fresh": snap.grid_fresh,
        "rigs_total": len(snap.rigs),
        "rigs": {s.value: n for s, n in t.by_state.items()},
        "shed_capacity": shed_doc(event),
    }


def shed_doc(event: SnapshotEvent) -> dict[str, object] | None:
    """Site import kW that can be shed within each horizon, in total and per family."""
    shed = event.shed
    if shed is None:
        return None
    keys = [f"within_{h:g}s_kw" for h in shed.horizons_s]
    doc: dict[str, object] = {k: _r(kw, 1) for k, kw in zip(keys, shed.site_kw, strict=True)}
    doc["by_family"] = {
        f.value: {k: _r(kw, 1) for k, kw in zip(keys, v, strict=True)}
        for f, v in sorted(shed.family_site_kw().items())
    }
    return doc


def _opt(value: float | None, digits: int) -> float | None:
    return None if value is None else _r(value, digits)


def economics_doc(site: str, event: SnapshotEvent) -> dict[str, object] | None:
    """The retained economics document; None while [economics] is off."""
    e = event.economics
    if e is None:
        return None
    return {
        "site": site,
        "taken_at_s": round(event.snapshot.taken_at_s, 3),
        "currency": e.currency,
        "state": e.state,
        "energy_price_per_mwh": _opt(e.energy_price_per_mwh, 4),
        "hashprice_usd_per_th_day": _opt(e.hashprice_usd_per_th_day, 6),
        "hashprice_fresh": e.hashprice_fresh,
        "breakeven_j_per_th": _opt(e.breakeven_j_per_th, 2),
        "revenue_per_h": _opt(e.revenue_per_h, 4),
        "energy_cost_per_h": _opt(e.energy_cost_per_h, 4),
        "margin_per_h": _opt(e.margin_per_h, 4),
    }


def settlement_doc(site: str, event: SettlementEvent) -> dict[str, object]:
    """The retained last settlement interval (energy awarded against imported)."""
    r = event.record
    dev, pct = r.deviation_kwh, r.deviation_pct
    return {
        "site": site,
        "interval_start_s": r.interval_start_s,
        "interval_s": r.interval_s,
        "award_id": r.award_id,
        "awarded_kwh": None if r.awarded_kwh is None else _r(r.awarded_kwh, 3),
        "imported_kwh": _r(r.imported_kwh, 3),
        "deviation_kwh": None if dev is None else _r(dev, 3),
        "deviation_pct": None if pct is None else _r(pct, 3),
        "peak_kw": _r(r.peak_kw, 1),
        "seconds_over": _r(r.seconds_over, 1),
    }


class MqttSink:
    def __init__(self, site: str, config: MqttSinkConfig, *, name: str = "mqtt") -> None:
        self.name = name
        self.site = site
        self.config = config
        base = f"{config.topic_prefix}/{site}"
        self.status_topic = f"{base}/status"
        self.state_topic = f"{base}/state"
        self.rig_topic_prefix = f"{base}/rigs/"
        self.settlement_topic = f"{base}/settlement"  # the last closed settlement interval
        self._settlement_payload: bytes | None = None
        self._settlement_dirty = False
        self.economics_topic = f"{base}/economics"  # price, hashprice, money per hour
        self._economics_payload: bytes | None = None
        self._economics_key: str | None = None  # the document without its timestamp
        self._economics_dirty = False
        self._queue: asyncio.Queue[SnapshotEvent] = asyncio.Queue(config.queue_size)
        self._state_payload: bytes | None = None  # latest state, republished on reconnect
        self._state_key: str | None = None  # state without its timestamp: "did it change"
        self._published_key: str | None = None
        self._rig_payloads: dict[str, bytes] = {}
        self._rig_keys: dict[str, tuple[object, ...]] = {}
        self._dirty_rigs: set[str] = set()
        self._errors = ErrorLog(log, f"sink {name} (mqtt://{config.host}:{config.port})")
        self._lock = asyncio.Lock()  # one publisher at a time: the reconnect hook or the loop
        self._online = False  # "online" published on the current connection
        self._session = MqttSession(
            config.host,
            config.port,
            name=f"sink {name}",
            username=config.username,
            password=config.password,
            client_id=config.client_id,
            keepalive_s=config.keepalive_s,
            timeout_s=config.timeout_s,
            backoff_min_s=config.min_backoff_s,
            backoff_max_s=config.max_backoff_s,
            tls_context=ssl.create_default_context() if config.tls else None,
            will_topic=self.status_topic,
            will_payload=b"offline",
            will_on_stop=True,
        )
        self._session.on_connect(self._on_connect)
        self.connects = 0
        self.published = 0
        self.dropped_events = 0

    # ------------------------------------------------------------ caller side

    def offer(self, event: TelemetryEvent) -> None:
        if isinstance(event, SettlementEvent):
            # Retained, sent with the next state publication (every control cycle).
            doc = settlement_doc(self.site, event)
            self._settlement_payload = json.dumps(doc, separators=(",", ":")).encode()
            self._settlement_dirty = True
            return
        if not isinstance(event, SnapshotEvent):
            return
        if self._queue.full():
            self._queue.get_nowait()  # retained state: only the newest matters
            self.dropped_events += 1
        self._queue.put_nowait(event)

    @property
    def connected(self) -> bool:
        return self._online and self._session.connected

    def stats(self) -> SinkStats:
        return SinkStats(
            name=self.name,
            healthy=self.connected,
            queued=self._queue.qsize(),
            dropped_events=self.dropped_events,
            points_written=self.published,
            last_error=self._errors.last_error or self._session.last_error,
            kind="mqtt",
        )

    # ------------------------------------------------------------ connection

    async def run(self) -> None:
        """Publish until cancelled; the session reconnects, and says offline on a clean stop."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._session.run(), name=f"{self.name}-session")
            tg.create_task(self._publish_loop(), name=f"{self.name}-publish")

    async def _on_connect(self) -> None:
        """Say online, then publish again everything a restarted broker may have lost."""
        self._online = False
        async with self._lock:
            try:
                await self._publish(self.status_topic, b"online")
            except DeviceError as exc:
                self._errors.failed(exc.message)
                return
            self._online = True
            self._errors.ok()
            self._published_key = None
            self._dirty_rigs = set(self._rig_payloads)
            self._settlement_dirty = self._settlement_payload is not None
            self._economics_dirty = self._economics_payload is not None
        await self._publish_changes()
        self.connects += 1

    async def _publish_loop(self) -> None:
        while True:
            event = await self._queue.get()
            self._update(event)
            if self._session.connected:
                await self._publish_changes()  # otherwise the next connect publishes it

    async def _publish_changes(self) -> None:
        async with self._lock:
            try:
                if self._state_key != self._published_key and self._state_payload is not None:
                    await self._publish(self.state_topic, self._state_payload)
                    self._published_key = self._state_key
                if self._settlement_dirty and self._settlement_payload is not None:
                    await self._publish(self.settlement_topic, self._settlement_payload)
                    self._settlement_dirty = False
                if self._economics_dirty and self._economics_payload is not None:
                    await self._publish(self.economics_topic, self._economics_payload)
                    self._economics_dirty = False
                while self._dirty_rigs:
                    rig = next(iter(self._dirty_rigs))
                    await self._publish(self.rig_topic_prefix + rig, self._rig_payloads[rig])
                    self._dirty_rigs.discard(rig)
            except DeviceError as exc:
                self._errors.failed(exc.message)  # the reconnect publishes it all again
            except Exception as exc:  # a bug here must not end retained-state publishing
                log.error("sink %s: unexpected error", self.name, exc_info=exc)
                self._errors.failed(repr(exc))

    async def _publish(self, topic: str, payload: bytes) -> None:
        await self._session.publish(topic, payload, qos=1, retain=True)
        self.published += 1

    # ------------------------------------------------------------ payloads

    def _update(self, event: SnapshotEvent) -> None:
        doc = site_state(self.site, event)
        key = json.dumps({k: v for k, v in doc.items() if k != "taken_at_s"}, sort_keys=True)
        if key != self._state_key:
            self._state_key = key
            self._state_payload = json.dumps(doc, separators=(",", ":")).encode()
        econ = economics_doc(self.site, event)
        if econ is not None:
            key = json.dumps({k: v for k, v in econ.items() if k != "taken_at_s"}, sort_keys=True)
            if key != self._economics_key:
                self._economics_key = key
                self._economics_payload = json.dumps(econ, separators=(",", ":")).encode()
                self._economics_dirty = True
        if self.config.per_rig_state:
            self._update_rigs(event)

    def _update_rigs(self, event: SnapshotEvent) -> None:
        keys = self._rig_keys
        for r in event.snapshot.rigs:
            rd = r.reading
            # Power and hashrate move every poll; only a state change is worth a message.
            key = (rd.state, rd.reason, rd.profile, r.fresh, r.maintenance, r.model, r.container)
            if keys.get(r.rig_id) == key:
                continue
            keys[r.rig_id] = key
            self._rig_payloads[r.rig_id] = json.dumps(
                {
                    "rig": r.rig_id,
                    "model": r.model,
                    "container": r.container,
                    "state": rd.state.value,
                    "reason": rd.reason,
                    "profile": rd.profile,
                    "fresh": r.fresh,
                    "maintenance": r.maintenance,
                },
                separators=(",", ":"),
            ).encode()
            self._dirty_rigs.add(r.rig_id)
