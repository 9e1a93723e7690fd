"""A shard and the site controller on one NATS connection each.

ShardNode: every cycle, the budget gate says what to plan to; the shard plans its own rigs
inside it (control.planner), hands the plan to its fleet (executor: shedding first) and
publishes its aggregate. ControllerNode: every cycle, if it holds the lease, it splits the
site's rig budget over the shards whose aggregates are fresh and sends each its budget,
stamped with the lease revision and the lease store's epoch (read at each term's start: a
re-created lease bucket is a new epoch, safety.BudgetGate). A shard silent for
`stale_cycles` cycles is counted at its nominal power (its rigs may be running flat out) and
the others get the rest. A live shard not heard this cycle (late: maybe dead, not yet
silent) is not cut: while the split would lower its share, it is held and the shards heard
this cycle take the cut (late_split).

Cycles are driven by the caller (the daemon's cycle timer, or a test): staleness is counted
in cycles, never in wall time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from minerd.clock import Clock
from minerd.cluster.curve import ShardCurve, build_curve
from minerd.cluster.late_split import LateShard, split_with_late
from minerd.cluster.lease import ControllerLease
from minerd.cluster.messages import (
    Budget,
    ShardAggregate,
    decode_aggregate,
    decode_budget,
    encode_aggregate,
    encode_budget,
)
from minerd.cluster.overload_split import overload_shares_w
from minerd.cluster.safety import BudgetGate, BudgetSource, GateDecision
from minerd.cluster.site_shed import sum_commandable, sum_shed
from minerd.cluster.split import Split, split_budget, steady_split
from minerd.cluster.store_epoch import TermEpoch
from minerd.cluster.subjects import (
    aggregate_subject,
    aggregates_wildcard,
    budget_subject,
    lease_bucket,
)
from minerd.control.counting import NominalWatch, dispatched
from minerd.control.planner import Plan, PlanConstraints, PlanRig, plan
from minerd.errors import ClusterError
from minerd.model import RigState, ShedCapacity
from minerd.repeated_log import RepeatedLog
from minerd.runtime.commandable import Commandable

log = logging.getLogger("minerd.cluster")

_IO_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ShardSnapshot:
    rigs: Sequence[PlanRig]
    hashrate_ths: float  # measured
    rigs_fresh: int


@dataclass(frozen=True)
class ShardMeasures:
    """What the shard's cycle measured of its rigs: what they can shed how fast, and what its
    commandable rigs draw (sent in the aggregate for the controller to sum)."""

    shed: ShedCapacity
    commandable: Commandable
    dispatched: bool = True  # the plan went to the executor (False: rigs kept as told)
    # Its rigs still moving to the commands sent (seconds of its cycle's window left) and
    # what its raises in flight may still add to the meter: ShardAggregate.moving_s.
    moving_s: float = 0.0
    rising_w: float = 0.0


class ShardFleet(Protocol):
    """The shard's own rigs: the poller's snapshot in, the executor's plan out (and what the
    cycle measured, None when it measures nothing)."""

    async def snapshot(self) -> ShardSnapshot: ...
    async def apply(self, plan: Plan, decision: GateDecision) -> ShardMeasures | None: ...


@dataclass(frozen=True)
class ShardCycle:
    decision: GateDecision
    plan: Plan
    aggregate: ShardAggregate


class ShardNode:
    def __init__(
        self,
        nc: Client,
        site: str,
        shard_id: str,
        fleet: ShardFleet,
        gate: BudgetGate,
        constraints: PlanConstraints,
        clock: Clock,
    ) -> None:
        self.nc = nc
        self.site = site
        self.shard_id = shard_id
        self.fleet = fleet
        self.gate = gate
        self.constraints = constraints
        self.clock = clock
        self.bad_messages = 0
        self._seq = 0
        self._sub: Subscription | None = None
        self._log = RepeatedLog(log)
        self.last: ShardCycle | None = None
        self._nominal = NominalWatch()  # its rigs counted at nominal last cycle
        self._uncounted_total_w = 0.0  # ShardAggregate.uncounted_total_w

    @property
    def seq(self) -> int:
        """Sequence of the last aggregate published."""
        return self._seq

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(budget_subject(self.site, self.shard_id), cb=self._on)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on(self, msg: Msg) -> None:
        try:
            b = decode_budget(msg.data, msg.subject)
        except ClusterError as e:
            self.bad_messages += 1
            self._log.warning("bad-budget", "shard %s: %s", self.shard_id, e)
            return
        if b.site != self.site:
            return
        gate = self.gate
        switches, refused = gate.epoch_switches, gate.other_epoch_refused
        gate.offer(b)
        if gate.epoch_switches > switches and gate.last_switch is not None:
            w = gate.last_switch
            self._log.clear("other-epoch")
            log.warning(
                "shard %s: the controller's lease store changed (epoch %s revision %d -> "
                "epoch %s revision %d, controller %s): its budgets taken from the fail-safe share",
                self.shard_id,
                w.old_epoch,
                w.old_revision,
                w.new_epoch,
                w.new_revision,
                w.controller_id,
            )
        elif gate.other_epoch_refused > refused:
            self._log.warning(
                "other-epoch",
                "shard %s: budget of another lease store epoch %s (revision %d, controller %s) "
                "refused while epoch %s (revision %d) commands: taken once on the fail-safe share",
                self.shard_id,
                b.store_epoch,
                b.lease_revision,
                b.controller_id,
                gate.newest_epoch,
                gate.newest_revision,
            )

    async def cycle(self) -> ShardCycle:
        """One control cycle: plan to the gate's budget, apply, publish the aggregate."""
        decision = self.gate.next_cycle()
        snap = await self.fleet.snapshot()
        rigs = tuple(snap.rigs)
        # 12,500 rigs cost ~0.15 s of planning and classing: off the event loop (the rigs
        # are frozen, the snapshot a tuple).
        p = await asyncio.to_thread(self._plan, decision, rigs)
        # Shedding first: the plan goes out before anything is published.
        measures = await self.fleet.apply(p, decision)
        # The curve of the rigs as this plan leaves them (the controller splits for the
        # cycle to come): a curve of the rigs before it lags the shard by a cycle more, and
        # the split chases moves the shards have already made (issue 16).
        moved = measures is None or measures.dispatched
        curve = await asyncio.to_thread(self._curve, decision, rigs, p if moved else None)
        agg = self._aggregate(snap, decision, curve, p, measures)
        try:
            if not self.nc.is_connected:
                raise ClusterError("nats", self.site, "not connected")
            async with asyncio.timeout(_IO_TIMEOUT_S):
                await self.nc.publish(
                    aggregate_subject(self.site, self.shard_id), encode_aggregate(agg)
                )
            self._log.clear("publish")
        except Exception as e:  # NATS down: the shard goes on; the gate falls to fail-safe
            self._log.warning("publish", "shard %s cannot publish: %r", self.shard_id, e)
        self.last = ShardCycle(decision, p, agg)
        return self.last

    def _plan(self, decision: GateDecision, rigs: tuple[PlanRig, ...]) -> Plan:
        constraints = dataclasses.replace(
            self.constraints,
            max_wakes_per_cycle=decision.max_wakes,
            max_j_per_th=decision.max_j_per_th,
        )
        return plan(decision.budget_w, rigs, constraints)

    def _curve(
        self, decision: GateDecision, rigs: tuple[PlanRig, ...], p: Plan | None
    ) -> ShardCurve:
        """The curve of the rigs as plan p leaves them (None: not dispatched, as they are),
        with the points the controller's economics filter allows: it splits over what the
        shard will plan."""
        constraints = dataclasses.replace(self.constraints, max_j_per_th=decision.max_j_per_th)
        return build_curve(rigs if p is None else projected_rigs(rigs, p), constraints)

    def _aggregate(
        self,
        snap: ShardSnapshot,
        d: GateDecision,
        curve: ShardCurve,
        p: Plan,
        measures: ShardMeasures | None,
    ) -> ShardAggregate:
        self._seq += 1
        rigs = snap.rigs
        counted = self._nominal.count(rigs)
        self._uncounted_total_w += counted.uncounted_w
        return ShardAggregate(
            site=self.site,
            shard_id=self.shard_id,
            seq=self._seq,
            sent_at_s=self.clock.now_s(),
            power_w=sum(r.power_w for r in rigs),
            hashrate_ths=snap.hashrate_ths,
            nominal_power_w=sum(r.model.nominal_power_w for r in rigs),
            rigs_total=len(rigs),
            rigs_fresh=snap.rigs_fresh,
            rigs_awake=sum(1 for r in rigs if r.awake and r.state is not RigState.OFFLINE),
            rigs_unresponsive=sum(1 for r in rigs if r.unresponsive),
            budget_revision=d.lease_revision,
            failsafe=d.source is BudgetSource.FAILSAFE,
            curve=curve,
            planned_power_w=p.planned_power_w,
            counted_power_w=counted.counted_w,
            uncounted_total_w=self._uncounted_total_w,
            shed=measures.shed if measures is not None else None,
            commandable=measures.commandable if measures is not None else None,
            moving_s=measures.moving_s if measures is not None else 0.0,
            rising_w=measures.rising_w if measures is not None else 0.0,
        )


def projected_rigs(rigs: tuple[PlanRig, ...], p: Plan) -> tuple[PlanRig, ...]:
    """The rigs as the shard's next cycle will see them once the plan is carried out: each
    moved rig told what the plan gave it (a switch starts its min-on or min-off window), as
    the shard plans from what its rigs were told. Rigs the plan does not move stay as read."""
    out = list(rigs)
    for i, (r, sp) in enumerate(zip(rigs, p.setpoints, strict=True)):
        if not dispatched(r) or (not r.awake and not sp.awake):
            continue
        power_w = sp.power_w if sp.awake else None
        if sp.awake == r.awake and power_w == r.setpoint_power_w:
            continue
        since_s = 0.0 if sp.awake != r.awake else r.since_switch_s
        out[i] = dataclasses.replace(
            r, awake=sp.awake, setpoint_power_w=power_w, since_switch_s=since_s
        )
    return tuple(out)


@dataclass
class _Heard:
    aggregate: ShardAggregate
    cycle: int  # controller cycle it arrived in


@dataclass(frozen=True)
class _Counting:
    """How the controller last counted a shard's rigs (ControllerNode.take_uncounted_w)."""

    at_nominal: bool  # silent or never heard: counted at nominal (SiteRigs)
    counted_w: float
    seq: int  # of the aggregate taken (0: none)
    uncounted_total_w: float  # ShardAggregate.uncounted_total_w of that aggregate


@dataclass(frozen=True)
class SiteRigs:
    """Every shard's rigs summed, as the controller's closed loop counts them."""

    counted_w: float  # measured, silent shards at nominal
    planned_w: float  # what the shards' last plans gave their rigs (silent: nominal)
    nominal_w: float
    hashrate_ths: float  # measured, live shards
    live_shards: int


@dataclass(frozen=True)
class ControllerCycle:
    leader: bool
    lease_revision: int
    split: Split | None
    live_shards: tuple[str, ...]
    silent_shards: tuple[str, ...]  # counted at nominal
    reserved_w: float  # the silent shards' nominal power, taken off the budget
    late_shards: tuple[str, ...] = ()  # live, but not heard this cycle
    held_shards: tuple[str, ...] = ()  # late ones whose falling share was held (late_split)
    held_w: float = 0.0  # what the held shards are counted at, taken off the others' budget


class ControllerNode:
    def __init__(
        self,
        nc: Client,
        site: str,
        controller_id: str,
        lease: ControllerLease | None,  # None until NATS is reached: never leader
        shard_ids: Sequence[str],
        failsafe_limit_w: float,
        clock: Clock,
        stale_cycles: int = 3,
    ) -> None:
        self.nc = nc
        self.site = site
        self.controller_id = controller_id
        self.lease = lease
        self.shard_ids = tuple(shard_ids)
        self.failsafe_limit_w = failsafe_limit_w
        self.clock = clock
        self.stale_cycles = stale_cycles
        self.bad_messages = 0
        self.budgets_sent = 0
        # The lease store's epoch, read at each term's start ("": unknown).
        self.epoch = TermEpoch(f"controller {controller_id}", lease_bucket(site))
        self.last: ControllerCycle | None = None
        self._heard: dict[str, _Heard] = {}
        self._nominal_w: dict[str, float] = {}  # last known, kept after a shard goes silent
        self._given_w: dict[str, float] = {}  # the last budget that went out to each shard
        self._last_split: Split | None = None  # the last split sent with no shard late
        self._cycle = 0
        self._seq = 0
        self._sub: Subscription | None = None
        self._log = RepeatedLog(log)
        self._unmeasured: set[str] = set()  # shards named once for sending no shed figures
        self._counting: dict[str, _Counting] = {}  # take_uncounted_w's last count per shard
        self._moving_until_s = -math.inf  # a shard's rigs moving to commands, until (clock)

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(aggregates_wildcard(self.site), cb=self._on)

    def heard_seq(self, shard_id: str) -> int:
        """Sequence of the last aggregate heard from the shard (0: none)."""
        h = self._heard.get(shard_id)
        return 0 if h is None else h.aggregate.seq

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on(self, msg: Msg) -> None:
        try:
            a = decode_aggregate(msg.data, msg.subject)
        except ClusterError as e:
            self.bad_messages += 1
            self._log.warning("bad-aggregate", "controller %s: %s", self.controller_id, e)
            return
        if not self.hear(a):
            self.bad_messages += 1

    def hear(self, a: ShardAggregate) -> bool:
        """Take an aggregate (False: not of this site's shards)."""
        if a.site != self.site or a.shard_id not in self.shard_ids:
            return False
        old = self._heard.get(a.shard_id)
        if old is None or a.seq > old.aggregate.seq or a.seq == 1:  # seq 1: a restarted shard
            self._heard[a.shard_id] = _Heard(a, self._cycle)
            if a.moving_s > 0.0:  # counted from hearing it: the shard's clock is its own
                until_s = self.clock.now_s() + a.moving_s
                self._moving_until_s = max(self._moving_until_s, until_s)
            self._nominal_w[a.shard_id] = a.nominal_power_w
            if (a.shed is None or a.commandable is None) and a.shard_id not in self._unmeasured:
                self._unmeasured.add(a.shard_id)
                log.warning(
                    "controller %s: shard %s sends no shed capacity or commandable power "
                    "(an older minerd?): counted as 0 in the site's figures",
                    self.controller_id,
                    a.shard_id,
                )
        return True

    def failsafe_shares_w(self, silent: Collection[str] = ()) -> dict[str, float]:
        """Each shard's share of the site's fail-safe limit, by its share of nominal power.

        A shard never heard from keeps its starting share (the limit over the shard count),
        the one it plans to on its own. A silent shard (heard before, not now: dead, or cut
        off) gets no budget and its rigs hold their last plan, so it is reserved at its
        nominal power, and the live shards share what is left (0 if nothing is): should
        the controller be lost next, the live shards' fail-safe shares plus the dead shard
        at nominal still fit the limit. The shares never add up to more than the limit."""
        start_w = self.failsafe_limit_w / len(self.shard_ids)
        known = {s: w for s, w in self._nominal_w.items() if s in self.shard_ids}
        shares = {s: start_w for s in self.shard_ids if s not in known}
        dead = {s: w for s, w in known.items() if s in silent}
        live = {s: w for s, w in known.items() if s not in silent}
        reserved_w = sum(dead.values())
        shares.update({s: 0.0 for s in dead})  # never sent: a silent shard gets no budget
        rest_w = max(0.0, self.failsafe_limit_w - sum(shares.values()) - reserved_w)
        total_w = sum(live.values())
        for s, w in live.items():
            shares[s] = rest_w * w / total_w if total_w > 0 else rest_w / len(live)
        return shares

    async def cycle(
        self,
        rig_budget_w: float,
        max_wakes: int | None = None,
        over_w: float = 0.0,
        max_j_per_th: float | None = None,
    ) -> ControllerCycle:
        """Split rig_budget_w (the closed loop's budget for every rig) and send the budgets.
        over_w: the rig power the grid meter says the site is over by (0: not over), shared
        among the shards that cannot plan down to their budget (overload_shares_w).
        max_j_per_th: the site's economics filter (None: none), sent to every shard."""
        self._cycle += 1
        live = tuple(
            s
            for s in self.shard_ids
            if (h := self._heard.get(s)) is not None and self._cycle - h.cycle <= self.stale_cycles
        )
        silent = tuple(s for s in self.shard_ids if s not in live)
        # Heard this cycle: an aggregate came after the last cycle began (stamped with it).
        late = tuple(s for s in live if self._cycle - self._heard[s].cycle > 1)
        # A silent shard's rigs may run at nominal: count them so. One never heard from
        # plans to its starting fail-safe share (the limit over the shard count) at most.
        shares_w = self.failsafe_shares_w(silent)
        unknown_w = self.failsafe_limit_w / len(self.shard_ids)
        reserved_w = sum(self._nominal_w.get(s, unknown_w) for s in silent)
        lease = self.lease
        if lease is None or not lease.held():
            self._last_split = None
            self.last = ControllerCycle(False, 0, None, live, silent, reserved_w, late)
            return self.last
        curves = {s: self._heard[s].aggregate.curve for s in live}
        budget_w = max(0.0, rig_budget_w - reserved_w)
        # A steady budget keeps its split while that buys as much (the curves lag the shards:
        # a tie re-decided every cycle swaps rigs between shards); a late shard is held
        # against it, so a late message at a steady budget still sheds no one.
        plain = steady_split(self._last_split, split_budget(budget_w, curves, max_wakes), curves)
        ls = split_with_late(budget_w, curves, self._late(late), max_wakes, plain)
        split = ls.split
        self._last_split = None if ls.held else split
        if ls.held:
            self._log.warning(
                "late-hold",
                "controller %s: shard(s) %s not heard this cycle during a cut: held at "
                "%.0f W, the shards heard take the cut",
                self.controller_id,
                ",".join(ls.held),
                ls.held_w,
            )
        else:
            self._log.clear("late-hold")
        budgets_w = {s: split.shares[s].budget_w for s in live}
        overload_w = overload_shares_w(over_w, curves, budgets_w, late)
        await self.epoch.refresh(self.nc, lease.terms, lease.revision)
        rev = lease.revision
        # A new term begun during the read: its epoch is not known yet (revisions alone).
        epoch = self.epoch.of(lease.terms)
        now_s = self.clock.now_s()
        for s in live:
            share = split.shares[s]
            self._seq += 1
            b = Budget(
                self.site,
                s,
                self.controller_id,
                rev,
                self._seq,
                now_s,
                share.budget_w,
                shares_w[s],
                share.wakes,
                overload_w.get(s, 0.0),
                epoch,
                max_j_per_th,
            )
            await self._send(b)
        self.last = ControllerCycle(
            True, rev, split, live, silent, reserved_w, late, ls.held, ls.held_w
        )
        return self.last

    @property
    def store_epoch(self) -> str:
        """The lease store's epoch as last read ("": unknown)."""
        return self.epoch.epoch

    def _late(self, late: Sequence[str]) -> dict[str, LateShard]:
        """What a late shard may still run to and draw, from its last budget and aggregate."""
        out = {}
        for s in late:
            a = self._heard[s].aggregate
            given_w = self._given_w.get(s, a.planned_power_w)
            drawing_w = max(a.power_w, a.counted_power_w)
            out[s] = LateShard(given_w, a.planned_power_w, drawing_w, a.hashrate_ths)
        return out

    def live_aggregates(self) -> list[ShardAggregate]:
        """The latest aggregate of each shard heard within stale_cycles cycles."""
        return [
            h.aggregate
            for s, h in list(self._heard.items())
            if self._cycle - h.cycle <= self.stale_cycles
        ]

    def site_shed(self, horizons_s: tuple[float, ...], site_factor: float) -> ShedCapacity:
        """What the site can shed: the live shards' figures summed (a silent shard's rigs
        cannot be commanded, so they cannot be shed)."""
        return sum_shed(self.live_aggregates(), horizons_s, site_factor)

    def site_commandable(self) -> Commandable:
        """What the live shards' commandable rigs draw, and their nominal power."""
        return sum_commandable(self.live_aggregates())

    def site_rigs(self) -> SiteRigs:
        """The site's rigs as the closed loop sees them, from the shards' aggregates: a shard
        silent for stale_cycles cycles (or never heard) is counted at its nominal power (its
        starting fail-safe share if never heard)."""
        live = {a.shard_id: a for a in self.live_aggregates()}
        unknown_w = self.failsafe_limit_w / len(self.shard_ids)
        counted_w = planned_w = nominal_w = hashrate_ths = 0.0
        for s in self.shard_ids:
            a = live.get(s)
            if a is None:
                w = self._nominal_w.get(s, unknown_w)
                counted_w += w
                planned_w += w
                nominal_w += w
                continue
            counted_w += a.counted_power_w
            planned_w += a.planned_power_w
            nominal_w += a.nominal_power_w
            hashrate_ths += a.hashrate_ths
        return SiteRigs(counted_w, planned_w, nominal_w, hashrate_ths, len(live))

    def moving_until_s(self) -> float:
        """Until when (this node's clock) some shard's rigs may still be moving to the
        commands it sent: the closed loop learns no load from the meter meanwhile, as one
        process does after its own commands (-inf: none heard)."""
        return self._moving_until_s

    def site_rising_w(self) -> float:
        """What the live shards' raises in flight may still add to the meter."""
        return sum(a.rising_w for a in self.live_aggregates())

    def take_uncounted_w(self) -> float:
        """The rig power the site stopped counting at nominal since the last call, for the
        closed loop (LoopInputs.uncounted_w; call once per cycle): the shards' rigs that
        answered again (the rise of each shard's running total), and a shard counted at
        nominal (silent, or never heard) heard again, at what it counts now. The loop gave
        that difference to other rigs while the meter drew the real power all along."""
        live = {a.shard_id: a for a in self.live_aggregates()}
        unknown_w = self.failsafe_limit_w / len(self.shard_ids)
        out_w = 0.0
        for s in self.shard_ids:
            a, was = live.get(s), self._counting.get(s)
            if a is None:
                w = self._nominal_w.get(s, unknown_w)
                self._counting[s] = _Counting(True, w, 0, 0.0)
                continue
            if was is not None and was.at_nominal:
                out_w += max(0.0, was.counted_w - a.counted_power_w)
            elif was is not None and a.seq >= was.seq:
                out_w += max(0.0, a.uncounted_total_w - was.uncounted_total_w)
            elif was is not None:  # a restarted shard process: its total starts again at 0
                out_w += a.uncounted_total_w
            self._counting[s] = _Counting(False, a.counted_power_w, a.seq, a.uncounted_total_w)
        return out_w

    async def _send(self, b: Budget) -> None:
        try:
            if not self.nc.is_connected:
                raise ClusterError("nats", self.site, "not connected")
            async with asyncio.timeout(_IO_TIMEOUT_S):
                await self.nc.publish(budget_subject(self.site, b.shard_id), encode_budget(b))
            self.budgets_sent += 1
            self._given_w[b.shard_id] = b.budget_w
            self._log.clear(f"send:{b.shard_id}")
        except Exception as e:  # the shard holds, then falls to its fail-safe share
            self._log.warning(
                f"send:{b.shard_id}", "controller %s cannot send: %r", self.controller_id, e
            )
