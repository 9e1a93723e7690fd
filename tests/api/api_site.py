"""A small real SiteService for the API tests: real Stores on an SQLite file, a real
FleetState with a few rigs and meters, limits computed by minerd.control."""

from __future__ import annotations

from pathlib import Path

from site_doubles import flat_history

from minerd.api.auth import hash_token
from minerd.clock import ManualClock
from minerd.control.quota import effective_limit
from minerd.model import (
    EffectiveLimit,
    FleetSnapshot,
    MeterReading,
    MeterRole,
    RigProtocol,
    RigReading,
    RigState,
)
from minerd.runtime.devices import MeterInfo, RigInfo
from minerd.runtime.fleet import FleetState
from minerd.runtime.service import HistoryPoint, SiteStatus
from minerd.runtime.site import site_limit_timeline
from minerd.settings.models import ApiSettings, ApiToken
from minerd.storage import Database, Stores

START_S = 1_800_000_000.0  # 2027-01-15T08:00:00Z
CONTRACTED_KW = 1000.0
FAILSAFE_KW = 200.0
CAP_KEY = "control.operator_cap_kw"

SECRETS = {"grid": "grid-secret-0123", "operator": "operator-secret-4567", "viewer": "viewer-89ab"}
TOKEN_NAMES = {"grid": "kegoc-dispatch", "operator": "ops-alice", "viewer": "noc-screen"}


def api_settings(metrics_auth: bool = False, listen: str = "127.0.0.1:8080") -> ApiSettings:
    return ApiSettings(
        listen=listen,
        metrics_auth=metrics_auth,
        tokens=tuple(
            ApiToken(name=TOKEN_NAMES[role], role=role, sha256=hash_token(secret))
            for role, secret in SECRETS.items()
        ),
    )


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[role]}"}


def _rigs() -> list[RigInfo]:
    out = []
    for i in range(6):
        out.append(
            RigInfo(
                rig_id=f"c{1 + i // 3}-r{i:03d}",
                model="bitmain-s19jpro" if i % 2 == 0 else "bitmain-s21",
                container=f"c{1 + i // 3}",
                host=f"127.0.1.{10 + i}",
                port=4028,
                protocol=RigProtocol.LUXOS,
                interval_s=15.0,
                timeout_s=3.0,
                stale_after_s=60.0,
            )
        )
    return out


def _meters() -> list[MeterInfo]:
    return [
        MeterInfo("grid-main", MeterRole.GRID, "", "tcp://127.0.0.1:5020", 1.0, 0.5, 5.0),
        MeterInfo("aux-cooling", MeterRole.AUX, "c1", "tcp://127.0.0.1:5021", 1.0, 0.5, 5.0),
    ]


class SiteUnderTest:
    """Implements minerd.runtime.service.SiteService over real components."""

    def __init__(self, db_path: Path, clock: ManualClock | None = None) -> None:
        self.clock = clock or ManualClock(START_S)
        self.db = Database(db_path)
        self.stores = Stores.open(self.db)
        self.site_name = "alatau-1"
        self.fleet = FleetState(_rigs(), _meters())
        self.rig_infos = self.fleet.rig_infos
        self.meter_infos = self.fleet.meter_infos
        self.quota_changes = 0
        self.grid_contacts = 0
        self.operator_cap_kw = self.stores.state.get_float(CAP_KEY)
        for rig_id in self.stores.maintenance.rig_ids():
            if self.fleet.has_rig(rig_id):
                self.fleet.set_maintenance(rig_id, True)
        self.feed()

    def feed(self) -> None:
        """Fresh readings for every device at the clock's now."""
        now = self.clock.now_s()
        for i, info in enumerate(self.rig_infos):
            asleep = i == 5
            self.fleet.update_rig(
                i,
                RigReading(
                    rig=info.rig_id,
                    taken_at_s=now,
                    state=RigState.SLEEPING if asleep else RigState.HASHING,
                    reason="asleep" if asleep else "",
                    hashrate_ths=0.0 if asleep else 100.0,
                    power_w=20.0 if asleep else 3200.0,
                    chip_temp_max_c=None if asleep else 71.5,
                    boards_ok=3,
                    boards_total=3,
                ),
            )
        # Energy counters advance with time: a meter repeating every value is "frozen".
        hours = (now - START_S) / 3600.0
        self.fleet.update_meter(
            MeterReading(
                "grid-main",
                now,
                power_w=17_500.0,
                power_l1_w=5800.0,
                voltage_l1_v=231.0,
                energy_import_kwh=1000.0 + 17.5 * hours,
            )
        )
        self.fleet.update_meter(
            MeterReading("aux-cooling", now, power_w=1_500.0, energy_import_kwh=50.0 + 1.5 * hours)
        )

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ SiteService

    def snapshot(self) -> FleetSnapshot:
        return self.fleet.snapshot(self.clock.now_s())

    def _limit(self, now_s: float, failsafe: bool) -> EffectiveLimit:
        return effective_limit(
            self.stores.quotas.all(),  # what the control cycle loads
            now_s,
            contracted_limit_kw=CONTRACTED_KW,
            operator_cap_kw=self.operator_cap_kw,
            failsafe=failsafe,
            failsafe_limit_kw=FAILSAFE_KW,
        )

    def status(self) -> SiteStatus:
        now = self.clock.now_s()
        snap = self.snapshot()
        failsafe = not snap.grid_fresh
        limit = self._limit(now, failsafe)
        counts = snap.counts_by_state()
        return SiteStatus(
            site=self.site_name,
            taken_at_s=now,
            grid_import_kw=snap.grid_import_w / 1000.0,
            grid_fresh=snap.grid_fresh,
            limit=limit,
            contracted_limit_kw=CONTRACTED_KW,
            failsafe_limit_kw=FAILSAFE_KW,
            operator_cap_kw=self.operator_cap_kw,
            rig_budget_kw=max(0.0, limit.limit_kw - 1.5),
            planned_power_kw=snap.rig_power_w / 1000.0,
            rig_power_kw=snap.rig_power_w / 1000.0,
            hashrate_ths=snap.hashrate_ths,
            rigs_by_state=tuple((s, n) for s, n in counts.items()),
            failsafe=failsafe,
            failsafe_reason="grid meter stale" if failsafe else "",
            cycle=42,
        )

    def quotas_changed(self) -> None:
        self.quota_changes += 1

    def note_grid_contact(self) -> None:
        self.grid_contacts += 1

    def set_operator_cap(self, cap_kw: float | None, by: str) -> None:
        # Like the daemon's Site: the site persists its cap.
        self.operator_cap_kw = cap_kw
        if cap_kw is None:
            self.stores.state.delete(CAP_KEY)
        else:
            self.stores.state.set(CAP_KEY, cap_kw)

    def set_maintenance(self, rig_id: str, on: bool) -> None:
        self.fleet.set_maintenance(rig_id, on)

    def readiness(self) -> tuple[bool, tuple[str, ...]]:
        reasons = []
        if not self.snapshot().grid_fresh:
            reasons.append("grid meter stale")
        if self.db.closed:
            reasons.append("storage closed")
        return not reasons, tuple(reasons)

    def site_history(self, from_s: float, to_s: float) -> list[HistoryPoint]:
        return flat_history(self.status(), from_s, to_s)

    def limit_timeline(
        self, from_s: float, to_s: float
    ) -> list[tuple[float, float, EffectiveLimit]]:
        # The real Site's, on this double's store, contract and cap.
        return site_limit_timeline(
            self.stores.quotas,
            from_s,
            to_s,
            contracted_limit_kw=CONTRACTED_KW,
            operator_cap_kw=self.operator_cap_kw,
        )
