"""What the HTTP API (and the MQTT quota input) may ask of the running site.

The API layer sees only this interface and the storage stores, never the poller, executor
or controller internals. The daemon's Site implements it; tests may build it from real
stores and a FleetState.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from minerd.clock import Clock
from minerd.model import EffectiveLimit, FleetSnapshot, RigState, ShedCapacity
from minerd.runtime.devices import MeterInfo, RigInfo
from minerd.storage import Stores


@dataclass(frozen=True)
class SiteStatus:
    """The site at a glance, as of the last control cycle."""

    site: str
    taken_at_s: float
    grid_import_kw: float
    grid_fresh: bool
    limit: EffectiveLimit
    contracted_limit_kw: float
    failsafe_limit_kw: float
    operator_cap_kw: float | None
    rig_budget_kw: float
    planned_power_kw: float
    rig_power_kw: float
    hashrate_ths: float
    rigs_by_state: tuple[tuple[RigState, int], ...]
    failsafe: bool
    failsafe_reason: str  # "" when not in fail-safe
    cycle: int  # control cycles run since start
    started_at_s: float | None = None  # when this daemon process started running the site
    commandable_power_kw: float = 0.0  # drawn now by rigs minerd can command
    commandable_share: float = 1.0  # their share of the fleet's nominal power (rest read only)
    # The settlement interval in progress: mean import / limit so far, and why under 97 %.
    interval_utilization: float | None = None
    interval_under_reason: str = ""
    # Site import kW that could be shed within 5 s / 60 s / 600 s (None before a cycle).
    shed: ShedCapacity | None = None


@dataclass(frozen=True)
class HistoryPoint:
    """One sample of the site's recent past (the status page's chart)."""

    at_s: float
    grid_import_kw: float
    limit_kw: float
    rig_budget_kw: float
    hashrate_ths: float


class SiteService(Protocol):
    @property
    def site_name(self) -> str: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def stores(self) -> Stores: ...

    @property
    def rig_infos(self) -> tuple[RigInfo, ...]: ...

    @property
    def meter_infos(self) -> tuple[MeterInfo, ...]: ...

    def status(self) -> SiteStatus: ...

    def snapshot(self) -> FleetSnapshot:
        """The latest fleet snapshot (the one the controller last used)."""
        ...

    def quotas_changed(self) -> None:
        """Quotas were written to the store (by runtime.commands): reload them and run a
        cycle now."""
        ...

    def set_operator_cap(self, cap_kw: float | None, by: str) -> None:
        """Apply the operator cap (None: clear it). The command layer (runtime.commands) has
        stored and audited it already; the site may keep its own copy."""
        ...

    def set_maintenance(self, rig_id: str, on: bool) -> None:
        """Pin or release a rig (stored and audited by the command layer, runtime.commands)."""
        ...

    def readiness(self) -> tuple[bool, tuple[str, ...]]:
        """(ready, reasons not ready): meters fresh, storage writable, first cycle run."""
        ...

    def limit_timeline(
        self, from_s: float, to_s: float
    ) -> list[tuple[float, float, EffectiveLimit]]:
        """Steps (start_s, end_s, limit) of the effective limit over [from_s, to_s): grid
        quotas in the store, the operator cap and the contract, as control.quota's
        limit_timeline computes them (a fail-safe is a live condition, not forecast)."""
        ...

    def note_grid_contact(self) -> None:
        """The grid authority was heard from (any authenticated grid-role request).

        With [grid] quota_heartbeat_s set, silence longer than that moves the site to its
        fail-safe limit, as an EEBus-style heartbeat would."""
        ...

    def site_history(self, from_s: float, to_s: float) -> list[HistoryPoint]:
        """The site's recent import, limit, budget and hashrate (about one point per 10 s)."""
        ...
