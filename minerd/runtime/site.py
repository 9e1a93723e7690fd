"""Site: the running runtime (poller, control cycle, executor) behind the SiteService face."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from minerd.clock import Clock
from minerd.control.energy_pace import PaceConfig
from minerd.control.quota import limit_timeline
from minerd.devices.rig import command_limit_s
from minerd.errors import StorageError
from minerd.model import EffectiveLimit, FleetSnapshot, RigCommand, RigModel, RigState
from minerd.runtime.commandable import commandable
from minerd.runtime.cycle import ControlCycle, CycleConfig
from minerd.runtime.devices import MeterInfo, PollableMeter, PollableRig, RigInfo
from minerd.runtime.energy_tracker import EnergyTracker
from minerd.runtime.executor import CommandRoute, Executor
from minerd.runtime.fleet import FleetState
from minerd.runtime.history import SiteHistory
from minerd.runtime.intents import IntentBook
from minerd.runtime.poller import Poller
from minerd.runtime.service import HistoryPoint, SiteStatus
from minerd.storage import QuotaStore, Stores

log = logging.getLogger("minerd.site")


def site_limit_timeline(
    quotas: QuotaStore,
    from_s: float,
    to_s: float,
    *,
    contracted_limit_kw: float,
    operator_cap_kw: float | None,
) -> list[tuple[float, float, EffectiveLimit]]:
    """Site.limit_timeline: the limit steps over [from_s, to_s) from the stored quotas.

    A function so that the test doubles of the site service show the same timeline."""
    return limit_timeline(
        quotas.covering(from_s, to_s),
        from_s,
        to_s,
        contracted_limit_kw=contracted_limit_kw,
        operator_cap_kw=operator_cap_kw,
    )


def command_routes(
    rig_infos: Sequence[RigInfo], models: Mapping[str, RigModel]
) -> dict[str, CommandRoute]:
    """Each rig's endpoint and command limit, from its model's reaction to its family
    (a stock set_miner_conf answers after ~21 s, a LuxOS curtail within 5 s)."""
    routes: dict[str, CommandRoute] = {}
    for info in rig_infos:
        model = models.get(info.rig_id)
        if model is None:
            continue  # no model: the executor's default limit
        timeout_s = model.reaction(info.protocol).command_timeout_s
        routes[info.rig_id] = CommandRoute(
            f"{info.host}:{info.port}", command_limit_s(timeout_s, info.timeout_s)
        )
    return routes


class Site:
    def __init__(
        self,
        *,
        rig_infos: Sequence[RigInfo],
        rigs: Sequence[PollableRig],
        models: Mapping[str, RigModel],
        meter_infos: Sequence[MeterInfo],
        meters: Sequence[PollableMeter],
        stores: Stores,
        clock: Clock,
        config: CycleConfig,
        poll_concurrency: int = 256,
        command_concurrency: int = 64,
        command_rate_per_s: float = 100.0,
    ) -> None:
        self._clock = clock
        self._stores = stores
        self.config = config
        self.fleet = FleetState(rig_infos, meter_infos)
        self.poller = Poller(self.fleet, rigs, meters, clock, concurrency=poll_concurrency)
        by_id = {r.rig_id: r for r in rigs}
        self.cycle: ControlCycle
        self.executor = Executor(
            by_id,
            stores.journal,
            clock,
            concurrency=command_concurrency,
            raise_rate_per_s=command_rate_per_s,
            routes=command_routes(rig_infos, models),
            on_sent=self._on_sent,
            on_failed=lambda cmd, err: self.cycle.on_command_failed(cmd, err),
        )
        self.cycle = ControlCycle(
            fleet=self.fleet,
            models=models,
            book=IntentBook(models),
            executor=self.executor,
            stores=stores,
            clock=clock,
            config=config,
        )
        self.cycle.poll_now = self.poller.poll_now
        # Energy awards (issue 15): the interval's pace caps the limit while one is in force.
        pace = PaceConfig(max_kw=config.contracted_limit_kw, margin_kw=config.loop.margin_kw)
        self.cycle.energy = EnergyTracker(stores.awards, pace, stores.state)
        self.history = SiteHistory()
        self.cycle.listeners.append(self.history)
        self.started_at_s: float | None = None  # set when run() starts
        # A cluster controller polls no rig: its status shows the shards' rigs instead.
        self.status_view: Callable[[SiteStatus], SiteStatus] | None = None

    def _on_sent(self, cmd: RigCommand) -> None:
        self.cycle.on_command_sent(cmd)
        self.poller.poll_now(cmd.rig_id)  # verify it

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Restore state, then poll, control and execute until cancelled."""
        self.started_at_s = self._clock.now_s()
        self.cycle.restore()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.poller.run(), name="poller")
            tg.create_task(self.executor.run(), name="executor")
            tg.create_task(self.cycle.run(), name="control-cycle")

    # ------------------------------------------------------------ SiteService

    @property
    def site_name(self) -> str:
        return self.config.site

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def stores(self) -> Stores:
        return self._stores

    @property
    def rig_infos(self) -> tuple[RigInfo, ...]:
        return self.fleet.rig_infos

    @property
    def meter_infos(self) -> tuple[MeterInfo, ...]:
        return self.fleet.meter_infos

    def snapshot(self) -> FleetSnapshot:
        last = self.cycle.last
        return last.snapshot if last is not None else self.fleet.snapshot(self._clock.now_s())

    def status(self) -> SiteStatus:
        last = self.cycle.last
        snap = self.snapshot()
        counts = snap.counts_by_state()
        able = commandable(snap.rigs, self.cycle.models)
        progress = self.cycle.compliance.settlement.progress()
        if last is None:
            limit = EffectiveLimit(self.config.contracted_limit_kw, "contracted")
            budget_kw = planned_kw = 0.0
            reason, cycles = "", 0
        else:
            limit = last.decision.limit
            budget_kw = last.decision.rig_budget_w / 1000.0
            planned_kw = last.plan.planned_power_w / 1000.0 if last.plan else 0.0
            reason, cycles = last.failsafe_reason, last.cycle
        status = SiteStatus(
            site=self.config.site,
            taken_at_s=snap.taken_at_s,
            grid_import_kw=snap.grid_import_w / 1000.0,
            grid_fresh=snap.grid_fresh,
            limit=limit,
            contracted_limit_kw=self.config.contracted_limit_kw,
            failsafe_limit_kw=self.config.failsafe_limit_kw,
            operator_cap_kw=self.cycle.operator_cap_kw,
            rig_budget_kw=budget_kw,
            planned_power_kw=planned_kw,
            rig_power_kw=snap.rig_power_w / 1000.0,
            hashrate_ths=snap.hashrate_ths,
            rigs_by_state=tuple((s, counts[s]) for s in RigState),
            failsafe=bool(reason),
            failsafe_reason=reason,
            cycle=cycles,
            started_at_s=self.started_at_s,
            commandable_power_kw=able.power_w / 1000.0,
            commandable_share=able.share,
            interval_utilization=progress[0] if progress else None,
            interval_under_reason=progress[1] if progress else "",
            shed=last.shed if last is not None else None,
        )
        return status if self.status_view is None else self.status_view(status)

    def quotas_changed(self) -> None:
        self.cycle.quotas_changed()

    def awards_changed(self) -> None:
        """Energy awards were stored: the pace reads them on the next cycle."""
        if self.cycle.energy is not None:
            self.cycle.energy.awards_changed()

    def note_grid_contact(self) -> None:
        self.cycle.note_grid_contact()

    def set_operator_cap(self, cap_kw: float | None, by: str) -> None:
        if cap_kw is None:
            log.info("operator cap cleared by %s", by)
        else:
            log.info("operator cap set to %g kW by %s", cap_kw, by)
        self.cycle.set_operator_cap(cap_kw)

    def set_maintenance(self, rig_id: str, on: bool) -> None:
        self.fleet.set_maintenance(rig_id, on)

    def limit_timeline(
        self, from_s: float, to_s: float
    ) -> list[tuple[float, float, EffectiveLimit]]:
        return site_limit_timeline(
            self._stores.quotas,
            from_s,
            to_s,
            contracted_limit_kw=self.config.contracted_limit_kw,
            operator_cap_kw=self.cycle.operator_cap_kw,
        )

    def site_history(self, from_s: float, to_s: float) -> list[HistoryPoint]:
        return self.history.between(from_s, to_s)

    def readiness(self) -> tuple[bool, tuple[str, ...]]:
        reasons: list[str] = []
        snap = self.snapshot()
        for m in snap.meters:
            if not m.fresh:
                reasons.append(f"meter {m.meter} not fresh ({m.error or 'no reading'})")
        if self.cycle.last is None:
            reasons.append("no control cycle run yet")
        try:
            self._stores.state.set("readyz.probe", self._clock.now_s())
        except StorageError as e:
            reasons.append(f"storage not writable: {e}")
        return (not reasons, tuple(reasons))
