"""The fan-out: the control cycle publishes once, every sink gets the event without waiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from minerd.model import (
    Alert,
    ComplianceRecord,
    EffectiveLimit,
    FleetSnapshot,
    RigCommand,
    SettlementRecord,
    ShedCapacity,
)
from minerd.sinks.base import ErrorLog, Sink, SinkStats
from minerd.sinks.events import (
    AlertEvent,
    CommandsEvent,
    ComplianceEvent,
    EconomicsFigures,
    SettlementEvent,
    SnapshotEvent,
    TelemetryEvent,
)

log = logging.getLogger(__name__)

SPOOL_ALERT_RATIO = 0.8  # above this fill ratio the spool deserves an alert


class SinkHub:
    """Publish methods are synchronous, O(number of sinks), and never block or raise on a
    sink's behalf. `run()` belongs in the app's TaskGroup."""

    def __init__(self, sinks: Sequence[Sink], *, restart_delay_s: float = 5.0) -> None:
        self.sinks: tuple[Sink, ...] = tuple(sinks)
        self.restart_delay_s = restart_delay_s
        self._offer_errors = {s.name: ErrorLog(log, f"sink {s.name} offer") for s in sinks}

    def publish(self, event: TelemetryEvent) -> None:
        for sink in self.sinks:
            errors = self._offer_errors[sink.name]
            try:
                sink.offer(event)
            except Exception as exc:  # a broken sink must not break the control cycle
                errors.failed(f"{type(exc).__name__}: {exc}")
            else:
                if errors.failing:
                    errors.ok()

    def publish_snapshot(
        self,
        snapshot: FleetSnapshot,
        limit: EffectiveLimit,
        budget_w: float,
        *,
        failsafe: bool | None = None,
        shed: ShedCapacity | None = None,
        economics: EconomicsFigures | None = None,
    ) -> None:
        """Once per control cycle. failsafe defaults to `limit.origin == "failsafe"`;
        economics: the status page's figures for this snapshot (None: [economics] off)."""
        if failsafe is None:
            failsafe = limit.origin == "failsafe"
        self.publish(SnapshotEvent(snapshot, limit, budget_w, failsafe, shed, economics))

    def publish_commands(self, commands: Sequence[RigCommand], at_s: float) -> None:
        if commands:
            self.publish(CommandsEvent(tuple(commands), at_s))

    def publish_compliance(self, record: ComplianceRecord) -> None:
        self.publish(ComplianceEvent(record))

    def publish_settlement(self, record: SettlementRecord) -> None:
        self.publish(SettlementEvent(record))

    def publish_alert(self, alert: Alert, at_s: float | None = None) -> None:
        """at_s: when this state happened; defaults to the end (resolved) or start time."""
        if at_s is None:
            at_s = alert.ends_at_s if alert.ends_at_s is not None else alert.starts_at_s
        self.publish(AlertEvent(alert, at_s))

    def stats(self) -> list[SinkStats]:
        return [s.stats() for s in self.sinks]

    @property
    def spool_fill_ratio(self) -> float:
        """The fullest spool's fill ratio, 0..1 (alert above SPOOL_ALERT_RATIO)."""
        return max((s.spool_fill_ratio for s in self.stats()), default=0.0)

    @property
    def tsdb_reachable(self) -> bool:
        """The last write of every time-series sink worked (alerts.SiteFacts.tsdb_reachable)."""
        return all(s.healthy for s in self.stats() if s.kind == "tsdb")

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for sink in self.sinks:
                tg.create_task(self._supervise(sink), name=f"sink-{sink.name}")

    async def _supervise(self, sink: Sink) -> None:
        """A sink that crashes is logged and restarted; it never takes the daemon down."""
        while True:
            try:
                await sink.run()
                return
            except Exception:
                log.exception(
                    "sink %s crashed; restarting in %.0f s", sink.name, self.restart_delay_s
                )
            await asyncio.sleep(self.restart_delay_s)
