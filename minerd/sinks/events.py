"""What the hub hands to sinks: small frozen events holding model values, not points.

Publishing an event is O(1) for the caller (the control cycle); each sink turns it into
its own representation in its own task.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter
from typing import Protocol

from minerd.model import (
    Alert,
    ComplianceRecord,
    EffectiveLimit,
    FleetSnapshot,
    RigCommand,
    RigState,
    RigStatus,
    SettlementRecord,
    ShedCapacity,
)

_reading = attrgetter("reading")
_power = attrgetter("power_w")
_hashrate = attrgetter("hashrate_ths")
_state = attrgetter("state")
_taken = attrgetter("taken_at_s")


@dataclass(frozen=True)
class FleetTotals:
    rigs: int
    power_w: float
    hashrate_ths: float
    by_state: dict[RigState, int]
    unread: int = 0  # rigs not polled once since start: their 0 W / 0 TH/s is not a reading

    @property
    def all_read(self) -> bool:
        """The sums are readings (no rig still holds its never-read placeholder)."""
        return self.unread == 0


def fleet_totals(rigs: Sequence[RigStatus]) -> FleetTotals:
    """Sums over a fleet with C-level loops (map/sum/Counter): ~0.2 us a rig."""
    readings = list(map(_reading, rigs))
    counts = dict.fromkeys(RigState, 0)
    counts.update(Counter(map(_state, readings)))
    unread = list(map(_taken, readings)).count(0.0)
    return FleetTotals(
        len(readings), sum(map(_power, readings)), sum(map(_hashrate, readings)), counts, unread
    )


class EconomicsFigures(Protocol):
    """What the sinks read of price-aware dispatch (runtime.economics_status.EconomicsStatus
    is one): the figures the status page shows, money in `currency` per hour at the current
    rates for what the rigs draw and hash now; None where a rate is not known."""

    @property
    def currency(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def energy_price_per_mwh(self) -> float | None: ...
    @property
    def hashprice_usd_per_th_day(self) -> float | None: ...
    @property
    def hashprice_fresh(self) -> bool: ...
    @property
    def breakeven_j_per_th(self) -> float | None: ...
    @property
    def revenue_per_h(self) -> float | None: ...
    @property
    def energy_cost_per_h(self) -> float | None: ...
    @property
    def margin_per_h(self) -> float | None: ...


@dataclass(frozen=True)
class SnapshotEvent:
    """One control cycle's image of the site plus the numbers the controller worked with."""

    snapshot: FleetSnapshot
    limit: EffectiveLimit
    budget_w: float
    failsafe: bool
    shed: ShedCapacity | None = None  # what could be shed within 5 s / 60 s / 600 s
    economics: EconomicsFigures | None = None  # None: [economics] is off

    @cached_property
    def totals(self) -> FleetTotals:
        """Computed once per snapshot, shared by every sink that needs it."""
        return fleet_totals(self.snapshot.rigs)


@dataclass(frozen=True)
class CommandsEvent:
    commands: tuple[RigCommand, ...]
    at_s: float


@dataclass(frozen=True)
class ComplianceEvent:
    record: ComplianceRecord


@dataclass(frozen=True)
class AlertEvent:
    alert: Alert
    at_s: float  # when this state of the alert happened (fired, resolved, acknowledged)


@dataclass(frozen=True)
class SettlementEvent:
    """A settlement interval closed: energy awarded against imported (issue 15)."""

    record: SettlementRecord


TelemetryEvent = SnapshotEvent | CommandsEvent | ComplianceEvent | AlertEvent | SettlementEvent
