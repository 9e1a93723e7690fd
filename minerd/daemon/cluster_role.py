"""[cluster] roles in `minerd run` (issue 16): the site controller, or a poller shard.

Both are the one-process daemon with a different control cycle; polling, the executor, the
journal, sinks, alerts and the API are the same parts.

- shard: polls and commands only its rigs (its rig groups, or crc32(rig id) mod the shard
  count) and reads no meter. Every interval ShardNode runs: the budget gate (fencing, hold,
  fail-safe share) -> plan its rigs -> the executor (sheds first) -> publish its aggregate.
  ShardControlCycle is the ShardFleet ShardNode drives: its snapshot and apply are the
  single process's cycle phases (sense, the rigs as the planner sees them, dispatch through
  the IntentBook, verify, publish to listeners). Only the loop phase is left out: the
  budget is the controller's, not the meter's.
- controller: reads the meters and no rig. ControllerControlCycle is the single process's
  cycle with the rig model taken from the shards' aggregates (silent shards at nominal);
  each result's rig budget goes to ControllerNode, which splits it over the shards while it
  holds the lease.
The cycle phases are ControlCycle's own methods (private to runtime.cycle): these two
subclasses are their only users outside it, which keeps one cycle rather than two.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client

from minerd.cancelling import raise_if_cancelled
from minerd.clock import Clock
from minerd.cluster.lease import open_lease
from minerd.cluster.nodes import ControllerNode, ShardMeasures, ShardNode, ShardSnapshot
from minerd.cluster.safety import BudgetGate, BudgetSource, GateDecision
from minerd.control.loop import LoopDecision, budget_for_import_kw
from minerd.control.overload import meter_excess_w
from minerd.control.planner import Plan
from minerd.control.utilization import Gap
from minerd.daemon.components import Components, LatestSlot
from minerd.model import EffectiveLimit, FleetSnapshot, RigState, ShedCapacity
from minerd.runtime.commandable import commandable
from minerd.runtime.cycle import (
    _NO_DISPATCH,
    ControlCycle,
    CycleConfig,
    CycleResult,
    _Limits,
    _Looped,
    _Rigs,
    _Sensed,
)
from minerd.runtime.service import SiteStatus
from minerd.runtime.site import Site
from minerd.settings import Settings
from minerd.settings.cluster import ClusterSettings
from minerd.sinks.cluster_metrics import ClusterMetricsCollector, ClusterStatus

log = logging.getLogger("minerd.daemon.cluster")

TaskFactory = Callable[[], Coroutine[Any, Any, None]]
_CONNECT_TIMEOUT_S = 2.0


def site_token(settings: Settings) -> str:
    return settings.cluster.site or settings.site.name


def failsafe_rig_budget_w(config: CycleConfig) -> float:
    """Rig power at the site's fail-safe import limit (what the shards' shares sum to)."""
    loop = config.loop
    return budget_for_import_kw(config.failsafe_limit_kw - loop.margin_kw, 0.0, loop)


# ---------------------------------------------------------------- shard


class ShardControlCycle(ControlCycle):
    """A shard's cycle: ShardNode drives it as its ShardFleet (see the module docstring)."""

    node: ShardNode
    _pending: tuple[_Sensed, _Rigs] | None = None  # snapshot() to apply() of one cycle

    async def snapshot(self) -> ShardSnapshot:
        """Phases sense and rigs: the shard's rigs as the planner sees them (built in the
        cycle's worker thread, as run_once_async does)."""
        sensed = self._sense()
        rigs = await self._off_loop(self._rigs, sensed.snap, sensed.now_s)
        self._pending = (sensed, rigs)
        snap = sensed.snap
        fresh = [r for r in snap.rigs if r.fresh]
        return ShardSnapshot(
            tuple(rigs.plan_rigs), sum(r.reading.hashrate_ths for r in fresh), len(fresh)
        )

    async def apply(self, plan: Plan, decision: GateDecision) -> ShardMeasures:
        """Phases dispatch (sheds first), verify and publish, for the plan ShardNode made;
        what this cycle measured (shed capacity, commandable power) goes in the aggregate."""
        assert self._pending is not None, "snapshot() comes first"
        sensed, rigs = self._pending
        self._pending = None
        failsafe = decision.source is BudgetSource.FAILSAFE
        reason = (
            f"no budget from the site controller for {decision.missed_cycles} cycles"
            if failsafe
            else ""
        )
        sensed = dataclasses.replace(sensed, failsafe_reason=reason)
        snap, now_s = sensed.snap, sensed.now_s
        limit = EffectiveLimit(
            decision.budget_w / 1000.0, "failsafe" if failsafe else "cluster-budget"
        )
        shedding = plan.planned_power_w < rigs.counted_w
        loop_decision = LoopDecision(
            rig_budget_w=decision.budget_w,
            limit=limit,
            target_import_kw=limit.limit_kw,
            predicted_import_kw=rigs.counted_w / 1000.0,
            error_kw=0.0,
            correction_kw=0.0,
            failsafe=failsafe,
            shedding=shedding,
            ramp_limited=False,
        )
        constraints = dataclasses.replace(
            self.config.constraints, max_wakes_per_cycle=decision.max_wakes
        )
        measured = self._rigs_read_since_start(snap)
        warm = self._warm(snap, sensed.t0_mono_s)
        # A shard (re)started before the controller has spoken keeps its rigs as they were
        # told for hold_cycles cycles, as it would hold a budget; then its starting share.
        first_wait = (
            decision.lease_revision == 0
            and failsafe
            and decision.missed_cycles < self.node.gate.hold_cycles
        )
        looped = _Looped(
            limits=_Limits(limit, limit, limit),
            decision=loop_decision,
            plan_rigs=tuple(rigs.plan_rigs),
            constraints=constraints,
            fleet_max_w=rigs.fleet_max_w,
            budget_before_w=None,
            measured=measured,
            dispatching=(warm or shedding) and not first_wait,
        )
        # Until warm (rigs read once), rigs keep what they were last told, as in one process.
        the_plan = plan if looped.dispatching else None
        dispatch = _NO_DISPATCH
        if the_plan is not None:
            dispatch = await self._dispatch_async(sensed, looped, the_plan)
            # The site over by the controller's meter, this shard's plan short of its
            # budget: its part of the excess comes from rigs counted at nominal.
            dispatch = self._sleep_unresponsive(
                now_s, looped, the_plan, decision.overload_w, dispatch
            )
        judged = await self._off_loop(self.book.verify, snap.rigs, now_s)
        self._verify(snap, now_s, judged)
        measures = await self._off_loop(self._measure, sensed, looped, the_plan)
        able = await self._off_loop(commandable, snap.rigs, self.models)
        result = self._publish(sensed, looped, the_plan, dispatch, measures)
        assert result.shed is not None  # every cycle measures it
        return ShardMeasures(
            result.shed,
            able,
            dispatched=the_plan is not None,
            moving_s=max(0.0, self._moving_until_s - now_s),
            rising_w=self._rising_w(now_s),
        )

    def _rigs_read_since_start(self, snap: FleetSnapshot) -> bool:
        """Raising waits until every rig of the shard was read by this process."""
        start = self._started_s
        return start is not None and all(r.reading.taken_at_s >= start for r in snap.rigs)

    async def run(self) -> None:
        """ShardNode.cycle every interval (its budget, not the meter, drives the shard)."""
        interval_s = self.config.loop.interval_s
        try:
            while True:
                started = self.clock.monotonic_s()
                await self.node.cycle()
                raise_if_cancelled()  # a cancel its publish lost still stops the loop
                elapsed = self.clock.monotonic_s() - started
                if elapsed > interval_s:
                    self.overruns += 1
                await self.clock.sleep(max(0.0, interval_s - elapsed))
        finally:
            if self._plan_pool is not None:
                self._plan_pool.shutdown(wait=False, cancel_futures=True)
                self._plan_pool = None


# ---------------------------------------------------------------- controller


class ControllerControlCycle(ControlCycle):
    """The site's closed loop over the shards' aggregates (this process has no rigs)."""

    node: ControllerNode
    _site_planned_w: float | None = None  # what the shards last planned (site_rigs)
    # The economics filter of the last cycle ([economics]; None: none): the shards plan by
    # it, sent in their budgets.
    max_j_per_th: float | None = None

    @property
    def measured(self) -> bool:
        """The site measured against its limit since start (one process raises only then)."""
        return self._measured

    def _rigs(self, snap: FleetSnapshot, now_s: float) -> _Rigs:
        v = self.node.site_rigs()
        self._site_planned_w = v.planned_w
        # The shards command the rigs: their rigs moving is this loop's (ControlCycle._loop).
        self._moving_until_s = max(self._moving_until_s, self.node.moving_until_s())
        return _Rigs(
            plan_rigs=[],
            unseen={},
            counted_w=v.counted_w,
            worst_case_w=v.nominal_w,
            fleet_max_w=v.nominal_w,
            uncounted_w=self.node.take_uncounted_w(),
        )

    def _rising_w(self, now_s: float) -> float:
        """The shards' raises in flight (this process sends none)."""
        return self.node.site_rising_w()

    def _plan(self, looped: _Looped) -> Plan:  # type: ignore[override]
        """No rigs to plan here: the shards plan; what they last planned is the loop's
        'planned' (readings still moving to it are a transient, not load)."""
        b = looped.decision.rig_budget_w
        self.max_j_per_th = looped.constraints.max_j_per_th
        planned_w = b if self._site_planned_w is None else self._site_planned_w
        return Plan((), b, planned_w, 0.0, 0.0, 0.0, 0)

    def _measure(
        self, sensed: _Sensed, looped: _Looped, the_plan: Plan | None
    ) -> tuple[Gap | None, ShedCapacity]:
        """The site's shed capacity is its live shards' (this process has no rig): every
        consumer of the cycle's figure (grid protocols, API, /metrics, MQTT) gets the sum."""
        gap_now, own = super()._measure(sensed, looped, the_plan)
        return gap_now, self.node.site_shed(own.horizons_s, own.site_factor)


def shards_status(node: ControllerNode, status: SiteStatus) -> SiteStatus:
    """The controller's status with the rigs of its live shards summed from their latest
    aggregates (it polls no rig itself): power, hashrate and rigs by state (awake =
    hashing, fresh and not awake = sleeping, not fresh = offline) and commandable power. A
    silent shard's rigs are not in these sums (its power is counted at nominal by the loop,
    not here). Shed capacity is already the shards' sum: the cycle computes it so."""
    live = node.live_aggregates()
    if not live:
        return status
    awake = sum(a.rigs_awake for a in live)
    fresh = sum(a.rigs_fresh for a in live)
    total = sum(a.rigs_total for a in live)
    by_state = dict(status.rigs_by_state)
    by_state[RigState.HASHING] = by_state.get(RigState.HASHING, 0) + awake
    by_state[RigState.SLEEPING] = by_state.get(RigState.SLEEPING, 0) + max(0, fresh - awake)
    by_state[RigState.OFFLINE] = by_state.get(RigState.OFFLINE, 0) + max(0, total - fresh)
    able = node.site_commandable()
    return dataclasses.replace(
        status,
        commandable_power_kw=status.commandable_power_kw + able.power_w / 1000.0,
        commandable_share=able.share,
        rig_power_kw=status.rig_power_kw + sum(a.power_w for a in live) / 1000.0,
        hashrate_ths=status.hashrate_ths + sum(a.hashrate_ths for a in live),
        rigs_by_state=tuple((st, by_state.get(st, 0)) for st in RigState),
    )


# ---------------------------------------------------------------- the role


def _swap_cycle(site: Site, cls: type[ControlCycle]) -> ControlCycle:
    """site.cycle rebuilt as cls with the same parts and wiring (Site made it)."""
    old = site.cycle
    new = cls(
        fleet=old.fleet,
        models=old.models,
        book=old.book,
        executor=old.executor,
        stores=old.stores,
        clock=old.clock,
        config=old.config,
        listeners=[x for x in old.listeners if x is not old.persister],
        economics=old.economics,
        energy=old.energy,
    )
    new.poll_now = old.poll_now
    site.cycle = new
    return new


@dataclass
class ClusterRole:
    settings: ClusterSettings
    site_token: str
    clock: Clock
    shard: ShardNode | None = None
    controller: ControllerNode | None = None
    max_wakes: int | None = None
    _tasks: list[tuple[str, TaskFactory]] = field(default_factory=list)

    def status(self) -> ClusterStatus:
        c = self.settings
        if self.controller is not None:
            node = self.controller
            last = node.last
            lease = node.lease
            return ClusterStatus(
                role="controller",
                shards_fresh=len(last.live_shards) if last else 0,
                shards_silent=len(last.silent_shards) if last else len(node.shard_ids),
                shards_late=last.late_shards if last else (),
                shards_held=last.held_shards if last else (),
                held_w=last.held_w if last else 0.0,
                budgets_sent=node.budgets_sent,
                lease_held=lease is not None and lease.held(),
                lease_terms=lease.terms if lease is not None else 0,
                shards_failsafe=tuple(
                    sorted(a.shard_id for a in node.live_aggregates() if a.failsafe)
                ),
                bad_messages=node.bad_messages,
            )
        assert self.shard is not None
        shard = self.shard
        d = shard.last.decision if shard.last is not None else None
        return ClusterStatus(
            role="shard",
            shard_id=c.shard_id or "",
            in_failsafe=d is None or d.source is BudgetSource.FAILSAFE,
            missed_cycles=d.missed_cycles if d is not None else 0,
            budgets_ignored=shard.gate.ignored,
            store_switches=shard.gate.epoch_switches,
            bad_messages=shard.bad_messages,
        )

    async def _serve(self) -> None:
        """Connect to NATS, subscribe, and for a controller hold or stand by for the lease.
        Raises on a failed first connect (the supervisor retries); nats-py reconnects."""
        c = self.settings
        node = self.shard or self.controller
        assert node is not None
        nc: Client = await nats.connect(
            c.nats_url,
            name=f"minerd-{self.site_token}-{c.shard_id or c.controller_id or 'controller'}",
            connect_timeout=_CONNECT_TIMEOUT_S,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
        )
        try:
            node.nc = nc
            await node.start()
            log.info("cluster %s on %s", c.role, c.nats_url)
            ctl = self.controller
            if ctl is None:
                await asyncio.Event().wait()  # serve budgets until stopped
                return
            # Re-creates its bucket if deleted (a new store epoch: nodes.ControllerNode)
            lease = await open_lease(
                nc.jetstream(),
                self.site_token,
                c.controller_id or "controller",
                c.lease_ttl_s,
                self.clock,
            )
            ctl.lease = lease
            try:
                await lease.keep()
            finally:
                ctl.lease = None
                with contextlib.suppress(Exception):
                    await asyncio.shield(lease.release())
        finally:
            with contextlib.suppress(Exception):
                await node.stop()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                    await nc.close()

    async def _send_budgets(self, slot: LatestSlot, cycle: ControllerControlCycle) -> None:
        """Each controller cycle's rig budget to the shards; none before the site has been
        measured since start (warm-up: rigs keep what they were told, as in one process;
        shards hold, then fall to their fail-safe shares)."""
        assert self.controller is not None
        while True:
            result = await slot.get()
            if result.plan is None or not cycle.measured:
                continue
            await self.controller.cycle(
                result.decision.rig_budget_w,
                self.max_wakes,
                _over_w(result, cycle.config),
                cycle.max_j_per_th,
            )
            raise_if_cancelled()  # a cancel its publish lost still stops the loop

    def wire(self, components: Components) -> None:
        """Its tasks to the daemon's supervised parts, its counters to /metrics."""
        components._tasks.extend(self._tasks)
        if components.prometheus is not None:
            components.prometheus.add_collector(ClusterMetricsCollector(self.status))


def _over_w(result: CycleResult, config: CycleConfig) -> float:
    """The rig power a fresh grid meter says the site is over its limit by (0: not over):
    the shards that cannot plan down to their budgets shed it past their plans."""
    snap, decision = result.snapshot, result.decision
    import_kw = snap.grid_import_w / 1000.0
    if not snap.grid_fresh or import_kw <= decision.limit.limit_kw:
        return 0.0
    return meter_excess_w(import_kw, decision.target_import_kw, config.loop.aux_fraction)


def build_cluster_role(
    settings: Settings, site: Site, site_config: CycleConfig, clock: Clock
) -> ClusterRole | None:
    """None for role = "single". Replaces site.cycle with the role's cycle; site_config is
    the whole site's (a shard's own holds its share of the fail-safe limit)."""
    c = settings.cluster
    if c.role == "single":
        return None
    token = site_token(settings)
    role = ClusterRole(c, token, clock)
    failsafe_w = failsafe_rig_budget_w(site_config)
    if c.role == "shard":
        cycle = _swap_cycle(site, ShardControlCycle)
        assert isinstance(cycle, ShardControlCycle) and c.shard_id is not None
        gate = BudgetGate(c.shard_id, failsafe_w / len(c.shards), c.hold_cycles)
        cycle.node = role.shard = ShardNode(
            Client(), token, c.shard_id, cycle, gate, site.config.constraints, clock
        )
    else:
        ctl = _swap_cycle(site, ControllerControlCycle)
        assert isinstance(ctl, ControllerControlCycle)
        node = ControllerNode(
            Client(),
            token,
            c.controller_id or "controller",
            None,
            c.shards,
            failsafe_w,
            clock,
            stale_cycles=c.hold_cycles,
        )
        ctl.node = role.controller = node
        site.status_view = lambda status: shards_status(node, status)
        role.max_wakes = site.config.constraints.max_wakes_per_cycle
        slot = LatestSlot()
        ctl.listeners.append(slot.put)
        role._tasks.append(("cluster-budgets", lambda: role._send_budgets(slot, ctl)))
    role._tasks.append(("cluster-nats", role._serve))
    return role
