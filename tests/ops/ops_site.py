"""A small real site for the ops tests: Stores on an SQLite file, a FleetState with a mixed
fleet (hashing, sleeping, offline, fault), quotas computed by minerd.control, an alerts view,
served by minerd's API app plus the status page on a free port with uvicorn."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from site_doubles import flat_history
from waiting import wait_until_sync

from minerd.api import create_app, hash_token
from minerd.api.status_page import router as status_router
from minerd.clock import ManualClock, SystemClock
from minerd.control.quota import effective_limit
from minerd.model import (
    Alert,
    EffectiveLimit,
    FleetSnapshot,
    MeterReading,
    MeterRole,
    Quota,
    QuotaSource,
    RigProtocol,
    RigReading,
    RigState,
    Severity,
)
from minerd.runtime.award_view import AwardView
from minerd.runtime.devices import MeterInfo, RigInfo
from minerd.runtime.economics_status import EconomicsView
from minerd.runtime.energy_view import EnergyView
from minerd.runtime.fleet import FleetState
from minerd.runtime.service import HistoryPoint, SiteStatus
from minerd.runtime.site import site_limit_timeline
from minerd.settings.models import ApiSettings, ApiToken
from minerd.storage import Database, NotFoundError, Stores

CONTRACTED_KW = 80.0
FAILSAFE_KW = 20.0
MARGIN_KW = 2.0
TOKENS = {"operator": "ops-operator-secret", "viewer": "ops-viewer-secret", "grid": "ops-grid"}

# rig index -> (state, hashrate TH/s, power W, chip temp)
FLEET = [
    (RigState.HASHING, 104.5, 3247.0, 71.0),
    (RigState.HASHING, 99.8, 3190.0, 74.5),
    (RigState.HASHING, 201.2, 3510.0, 68.0),
    (RigState.HASHING, 198.7, 3495.0, 69.5),
    (RigState.HASHING, 102.3, 3220.0, 72.0),
    (RigState.SLEEPING, 0.0, 18.0, None),
    (RigState.OFFLINE, 0.0, 0.0, None),
    (RigState.FAULT, 0.0, 40.0, 97.0),
]


def api_settings() -> ApiSettings:
    return ApiSettings(
        listen="127.0.0.1:8080",  # unused: uvicorn is given its own port
        tokens=tuple(
            ApiToken(name=f"ops-{role}", role=role, sha256=hash_token(secret))
            for role, secret in TOKENS.items()
        ),
    )


class StaticAlerts:
    """An AlertsView over a fixed list of alerts."""

    def __init__(self, alerts: Sequence[Alert]) -> None:
        self._alerts = list(alerts)

    def active(self) -> Sequence[Alert]:
        return [a for a in self._alerts if a.ends_at_s is None]

    def history(self, from_s: float, to_s: float, limit: int) -> Sequence[Alert]:
        return self._alerts[:limit]

    def acknowledge(self, alert_id: str, by: str) -> Alert:
        raise NotFoundError("alert", alert_id)


class OpsSite:
    """Implements minerd.runtime.service.SiteService over real components."""

    def __init__(self, db_path: Path, *, started_ago_s: float = 7200.0) -> None:
        self.now_s = float(int(SystemClock().now_s()))
        self.started_s = self.now_s - started_ago_s  # when "the daemon" started
        self.timezone = "Asia/Kolkata"  # +05:30: differs from any test machine's zone
        self.clock = ManualClock(self.now_s)
        self.db = Database(db_path)
        self.stores = Stores.open(self.db)
        self.site_name = "ops-site"
        rigs = [
            RigInfo(
                rig_id=f"c{1 + i // 4}-r{i:02d}",
                model="bitmain-s21" if i in (2, 3) else "bitmain-s19jpro",
                container=f"c{1 + i // 4}",
                host=f"127.0.2.{10 + i}",
                port=4028,
                protocol=RigProtocol.LUXOS,
                interval_s=15.0,
                timeout_s=3.0,
                stale_after_s=60.0,
            )
            for i in range(len(FLEET))
        ]
        meters = [MeterInfo("grid-main", MeterRole.GRID, "", "tcp://127.0.0.1:5020", 1, 0.5, 5)]
        self.fleet = FleetState(rigs, meters)
        self.rig_infos = self.fleet.rig_infos
        self.meter_infos = self.fleet.meter_infos
        self.operator_cap_kw: float | None = None
        self.failsafe_reason = ""  # set it to put the site in fail-safe
        for i, (state, ths, power_w, temp) in enumerate(FLEET):
            self.fleet.update_rig(
                i,
                RigReading(
                    rig=rigs[i].rig_id,
                    taken_at_s=self.now_s - 4.0,
                    state=state,
                    reason={RigState.OFFLINE: "offline: connection refused"}.get(state, ""),
                    hashrate_ths=ths,
                    power_w=power_w,
                    chip_temp_max_c=temp,
                    fan_rpm_min=None if temp is None else 5400 + i,
                    profile="stock" if state is RigState.HASHING else None,
                ),
            )
        self.fleet.update_meter(MeterReading("grid-main", self.now_s, power_w=17_654.0))
        hour = 3600.0
        for qid, kw, a, b in (("q-now", 60.0, -0.5, 0.5), ("q-evening", 45.0, 2.0, 3.0)):
            self.stores.quotas.add(
                Quota(
                    qid,
                    kw,
                    self.now_s + a * hour,
                    self.now_s + b * hour,
                    QuotaSource.API,
                    self.now_s - hour,
                    "ops-grid",
                )
            )
        self.alerts = StaticAlerts(
            [
                Alert(
                    "a-1",
                    "rig_overheat",
                    Severity.WARNING,
                    (("rig", "c2-r07"),),
                    "c2-r07 chip at 97 C",
                    "",
                    self.now_s - 600.0,
                ),
            ]
        )

    def close(self) -> None:
        self.db.close()

    def snapshot(self) -> FleetSnapshot:
        return self.fleet.snapshot(self.clock.now_s())

    def _limit(self, now_s: float) -> EffectiveLimit:
        return effective_limit(
            self.stores.quotas.all(),  # what the control cycle loads
            now_s,
            contracted_limit_kw=CONTRACTED_KW,
            operator_cap_kw=self.operator_cap_kw,
            failsafe=bool(self.failsafe_reason),
            failsafe_limit_kw=FAILSAFE_KW,
        )

    def status(self) -> SiteStatus:
        now = self.clock.now_s()
        snap = self.snapshot()
        limit = self._limit(now)
        return SiteStatus(
            site=self.site_name,
            taken_at_s=now,
            grid_import_kw=snap.grid_import_w / 1000.0,
            grid_fresh=snap.grid_fresh,
            limit=limit,
            contracted_limit_kw=CONTRACTED_KW,
            failsafe_limit_kw=FAILSAFE_KW,
            operator_cap_kw=self.operator_cap_kw,
            rig_budget_kw=limit.limit_kw - MARGIN_KW - 1.25,
            planned_power_kw=snap.rig_power_w / 1000.0,
            rig_power_kw=snap.rig_power_w / 1000.0,
            commandable_power_kw=snap.rig_power_w / 1000.0 - 3.0,  # one read-only rig's draw
            commandable_share=0.95,
            hashrate_ths=snap.hashrate_ths,
            rigs_by_state=tuple(snap.counts_by_state().items()),
            failsafe=bool(self.failsafe_reason),
            failsafe_reason=self.failsafe_reason,
            cycle=1234,
            started_at_s=self.started_s,
            interval_utilization=0.962,
            interval_under_reason="min-off hold",
        )

    def quotas_changed(self) -> None:
        return None

    def set_operator_cap(self, cap_kw: float | None, by: str) -> None:
        self.operator_cap_kw = cap_kw

    def set_maintenance(self, rig_id: str, on: bool) -> None:
        self.fleet.set_maintenance(rig_id, on)

    def readiness(self) -> tuple[bool, tuple[str, ...]]:
        return True, ()

    def site_history(self, from_s: float, to_s: float) -> list[HistoryPoint]:
        # The real Site keeps points only since it started.
        return flat_history(self.status(), max(from_s, self.started_s), to_s)

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

    def note_grid_contact(self) -> None:
        return None


class ServedSite:
    """The API app with the status page router, served by uvicorn in a thread."""

    def __init__(
        self,
        site: OpsSite,
        port: int,
        *,
        awards: AwardView | None = None,
        economics: EconomicsView | None = None,
        energy: EnergyView | None = None,
    ) -> None:
        app = create_app(
            site,
            api_settings(),
            None,
            site.alerts,
            timezone=site.timezone,
            awards=awards,
            economics=economics,
            energy=energy,
        )
        app.include_router(status_router)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()))

    def __enter__(self) -> ServedSite:
        self._thread.start()
        wait_until_sync(
            lambda: self.server.started or not self._thread.is_alive(), 30.0, "uvicorn to start"
        )
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(10.0)
