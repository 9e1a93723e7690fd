"""The control cycle: one snapshot in, setpoints and commands out, every interval.

1. take one consistent FleetSnapshot;
2. find the limit in force (quotas, operator cap, contract; fail-safe when the grid meter is
   stale or the grid authority has gone silent);
3. the closed loop (control.loop) turns it into a rig budget, correcting from the meter;
4. the planner (control.planner) splits the budget over the rigs;
5. the IntentBook keeps only what changed; the executor sends shedding first.
Everything slow (sinks, alerts) hangs off listeners that must not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from minerd.clock import Clock, elapsed_s
from minerd.control.compliance import Compliance, Sample
from minerd.control.fleet import (
    distrusted_w,
    max_rig_power_w,
    plan_rig,
    worst_case_rig_power_w,
)
from minerd.control.loop import (
    LoopConfig,
    LoopDecision,
    LoopInputs,
    LoopState,
    budget_for_import_kw,
    step,
)
from minerd.control.options import awake_points
from minerd.control.planner import MIN_OFF_REASON, Plan, PlanConstraints, PlanRig, plan
from minerd.control.quota import effective_limit
from minerd.control.shed_capacity import shed_capacity
from minerd.control.utilization import Gap, gap
from minerd.errors import StorageError
from minerd.model import (
    ComplianceRecord,
    EffectiveLimit,
    FleetSnapshot,
    Quota,
    RigAction,
    RigCommand,
    RigModel,
    RigSetpoint,
    RigState,
    RigStatus,
    ShedCapacity,
)
from minerd.runtime.energy_tracker import EnergyTracker
from minerd.runtime.executor import Executor
from minerd.runtime.fleet import FleetState
from minerd.runtime.intents import Dispatch, IntentBook
from minerd.storage import Stores
from minerd.storage.compliance import ComplianceKind

log = logging.getLogger("minerd.control")

STATE_OPERATOR_CAP = "control.operator_cap_kw"
STATE_INTEGRAL = "control.loop_integral_kw"
STATE_GRID_CONTACT = "control.grid_last_contact_s"
# Grid contact is noted in memory per request and written at most this often, off the loop.
CONTACT_PERSIST_S = 5.0
# Compliance records the disk refused wait in memory, newest kept: a week of minutes.
MAX_HELD_COMPLIANCE = 10_080


@dataclass(frozen=True)
class CycleConfig:
    site: str
    contracted_limit_kw: float
    failsafe_limit_kw: float
    settlement_interval_s: float
    loop: LoopConfig
    constraints: PlanConstraints
    quota_heartbeat_s: float | None = None  # None: the grid authority need not check in
    warmup_s: float = 30.0  # longest wait for first readings before dispatching anyway
    retry_unresponsive_s: float = 120.0


@dataclass(frozen=True)
class CycleResult:
    """What one cycle saw and decided; handed to listeners (sinks, alerts, API)."""

    cycle: int
    snapshot: FleetSnapshot
    decision: LoopDecision
    plan: Plan | None  # None while warming up
    dispatch: Dispatch
    failsafe_reason: str
    operator_cap_kw: float | None
    duration_s: float
    compliance: tuple[ComplianceRecord, ...] = ()  # settlement intervals closed this cycle
    utilization: Gap | None = None  # where the power under the limit went (fresh meter only)
    shed: ShedCapacity | None = None  # what could be shed within 5 s / 60 s / 600 s


CycleListener = Callable[[CycleResult], None]


@dataclass
class _Warmup:
    started_mono_s: float | None = None
    done: bool = False


@dataclass
class ControlCycle:
    fleet: FleetState
    models: Mapping[str, RigModel]
    book: IntentBook
    executor: Executor
    stores: Stores
    clock: Clock
    config: CycleConfig
    listeners: list[CycleListener] = field(default_factory=list)
    energy: EnergyTracker | None = None  # the energy award's pace (issue 15), when set

    def __post_init__(self) -> None:
        self.quotas: list[Quota] = []
        self.operator_cap_kw: float | None = None
        self.loop_state = LoopState()
        self.compliance = Compliance.with_settlement(self.config.settlement_interval_s)
        self.last: CycleResult | None = None
        self.cycles = 0
        self.last_cycle_mono_s = 0.0
        self.grid_last_contact_s: float | None = None
        self._contact_saved_s: float | None = None  # the value last written
        self._contact_saved_mono_s = -math.inf
        self._contact_write: asyncio.Task[None] | None = None
        # (kind, interval_s, start_s) -> record, written when the disk takes writes again
        self._held_compliance: dict[tuple[str, float, float], ComplianceRecord] = {}
        self.overruns = 0
        self._wake = asyncio.Event()
        self.first_cycle = asyncio.Event()  # set once a cycle has run (systemd READY=1)
        self._warmup = _Warmup()
        self._unresponsive_since: dict[str, float] = {}
        self._setpoints: dict[str, RigSetpoint] = {}  # last planned, per rig
        # rig_id -> (status, setpoint, (hold age, intent awake, power, recent), PlanRig)
        self._plan_cache: dict[str, tuple[RigStatus, RigSetpoint | None, object, PlanRig]] = {}
        self._by_name = {m.name: m for m in self.models.values()}
        # A scheduled cut must be met when it starts, not a sleep time later: look ahead by
        # the slowest shed (sleep time) plus two cycles and apply a coming cut that early.
        slowest_sleep_s = max((m.sleep_time_s for m in self.models.values()), default=0.0)
        self.lookahead_s = slowest_sleep_s + 2 * self.config.loop.interval_s
        # After commands, rigs move for up to their slowest switch: meter and readings may
        # then disagree by timing, which is not load (control.loop's `moving`).
        slowest_switch_s = max(
            (max(m.sleep_time_s, m.wake_time_s) for m in self.models.values()), default=0.0
        )
        self.moving_s = slowest_switch_s + self.config.loop.interval_s
        self._moving_until_s = -math.inf
        self._raising_until_s = -math.inf  # raises sent until then may still be rising
        self._in_flight: list[tuple[float, float]] = []  # (until_s, power step W) per dispatch
        # Read a rig at once (wired to the poller): a shed not yet seen while over the limit.
        self.poll_now: Callable[[str], None] | None = None
        self._started_s: float | None = None  # first cycle of this process
        self._measured = False  # the site measured against the limit since start
        self._unread: list[str] = []  # sheds not seen, no reading since: read them now
        self._caught: set[str] = set()  # sheds not seen, read since and unchanged

    # ------------------------------------------------------------ restart

    def restore(self) -> None:
        """Quotas, operator cap, loop integral, maintenance pins and intents from SQLite."""
        self.reload_quotas()
        if self.energy is not None:
            self.energy.restore()  # the interval's energy so far
        cap = self.stores.state.get_float(STATE_OPERATOR_CAP)
        self.operator_cap_kw = cap
        integral = self.stores.state.get_float(STATE_INTEGRAL, 0.0) or 0.0
        self.loop_state = LoopState(integral_kw=integral)
        self.grid_last_contact_s = self.stores.state.get_float(STATE_GRID_CONTACT)
        for rig_id in self.stores.maintenance.rig_ids():
            if self.fleet.has_rig(rig_id):
                self.fleet.set_maintenance(rig_id, True)
        latest = self.stores.journal.latest_intent_per_rig()
        # Only commands the rig acknowledged: one journaled but never answered (the process
        # died mid-dispatch) may never have left, so the rig's reading decides and the
        # planner's order is sent again if it still differs.
        confirmed = [e for e in latest.values() if e.ok]
        switches = self.stores.journal.latest_switch_per_rig()
        self.book.restore(((e.command, e.intent_at_s) for e in confirmed), switches)
        if len(confirmed) < len(latest):
            log.info(
                "%d rig commands had no acknowledged outcome: re-derived from readings",
                len(latest) - len(confirmed),
            )
        log.info(
            "state restored: %d quotas, operator cap %s, %d rig intents, %d in maintenance",
            len(self.quotas),
            cap,
            len(self.book),
            len(self.fleet.maintenance_rigs()),
        )

    def reload_quotas(self) -> None:
        now_s = self.clock.now_s()
        # Keep what can still matter: in force now or later (history stays in the store).
        self.quotas = [
            q for q in self.stores.quotas.all() if q.end_s is None or q.end_s > now_s - 3600
        ]

    # ------------------------------------------------------------ inputs from the API

    def quotas_changed(self) -> None:
        self.reload_quotas()
        self.note_grid_contact()
        self._wake.set()  # act within this cycle, not the next

    def note_grid_contact(self) -> None:
        """In memory only: the cycle writes it at most every CONTACT_PERSIST_S, off the
        loop, so a grid request never waits on an fsync nor fails on a read-only disk."""
        self.grid_last_contact_s = self.clock.now_s()

    def _persist_contact(self) -> None:
        last = self.grid_last_contact_s
        if last is None or last == self._contact_saved_s:
            return
        if self._contact_write is not None and not self._contact_write.done():
            return
        now_mono_s = self.clock.monotonic_s()
        if now_mono_s - self._contact_saved_mono_s < CONTACT_PERSIST_S:
            return
        self._contact_saved_mono_s = now_mono_s
        self._contact_write = asyncio.get_running_loop().create_task(
            self._write_contact(last), name="grid-contact-write"
        )

    async def _write_contact(self, contact_s: float) -> None:
        try:
            # A crash loses at most the last few seconds of contact: no fsync needed.
            await asyncio.to_thread(
                self.stores.state.set_many, {STATE_GRID_CONTACT: contact_s}, durable=False
            )
        except StorageError:
            return  # counted by storage health; the next contact tries again
        self._contact_saved_s = contact_s

    def set_operator_cap(self, cap_kw: float | None) -> None:
        self.operator_cap_kw = cap_kw
        if cap_kw is None:
            self.stores.state.delete(STATE_OPERATOR_CAP)
        else:
            self.stores.state.set(STATE_OPERATOR_CAP, cap_kw)
        self._wake.set()

    def on_command_sent(self, cmd: RigCommand) -> None:
        """The rig acknowledged: a shed should show in its readings within its show time,
        so read it then, before the grid meter has to judge it."""
        show_s = self.book.acknowledged(cmd.rig_id, self.clock.now_s())
        if show_s is not None and self.poll_now is not None:
            poll, rig_id = self.poll_now, cmd.rig_id
            self.clock.call_later(show_s, lambda: poll(rig_id))

    def on_command_failed(self, cmd: RigCommand, error: str) -> None:
        """The executor gave up on a command: count the rig at nominal until it obeys."""
        self.fleet.set_unresponsive(cmd.rig_id, True)
        self._unresponsive_since.setdefault(cmd.rig_id, self.clock.now_s())

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        interval_s = self.config.loop.interval_s
        while True:
            started = self.clock.monotonic_s()
            self.run_once()
            elapsed = self.clock.monotonic_s() - started
            if elapsed > interval_s:
                self.overruns += 1
                log.warning(
                    "control cycle took %.3fs, over its %.1fs interval", elapsed, interval_s
                )
            self._wake.clear()
            try:
                async with self.clock.timeout(max(0.0, interval_s - elapsed)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def failsafe_reason(self, snap: FleetSnapshot, now_s: float) -> str:
        if not snap.grid_meters:
            return "no grid meter configured"
        if not snap.grid_fresh:
            stale = [m.meter for m in snap.grid_meters if not m.fresh or m.reading is None]
            return "grid meter stale: " + ", ".join(stale)
        hb = self.config.quota_heartbeat_s
        if hb is not None:
            last = self.grid_last_contact_s
            if last is None or now_s - last > hb:
                return f"grid authority silent for more than {hb:.0f}s"
        return ""

    def run_once(self) -> CycleResult:
        t0 = self.clock.monotonic_s()
        t0_real = elapsed_s()  # the cycle's cost in real seconds, whatever the clock's speed
        now_s = self.clock.now_s()
        snap = self.fleet.snapshot(now_s)
        reason = self.failsafe_reason(snap, now_s)
        # The lowest limit anywhere in the look-ahead, not only at its far end: a short
        # block (or a schedule's last) inside it must not be seen and then forgotten.
        end_s = now_s + self.lookahead_s
        edges = {e for q in self.quotas for e in (q.start_s, q.end_s, q.withdrawn_at_s)}
        limit_now, *ahead = (
            effective_limit(
                self.quotas,
                t_s,
                contracted_limit_kw=self.config.contracted_limit_kw,
                operator_cap_kw=self.operator_cap_kw,
                failsafe=bool(reason),
                failsafe_limit_kw=self.config.failsafe_limit_kw,
            )
            for t_s in (now_s, end_s, *(e for e in edges if e is not None and now_s < e < end_s))
        )
        limit = min(ahead, key=lambda lim: lim.limit_kw)
        if limit.limit_kw >= limit_now.limit_kw:
            limit = limit_now  # nothing lower is coming within the look-ahead
        if self.energy is not None:
            limit = self.energy.cap(limit, snap, now_s)  # the award's pace, when lower
        if self._started_s is None:
            self._started_s = now_s
        plan_rigs = self._plan_rigs(snap, now_s)
        counted_w = sum(_counted_w(r) for r in plan_rigs)
        planned_w = self.last.plan.planned_power_w if self.last and self.last.plan else None
        unseen = self._unseen_sheds(snap, plan_rigs)
        fleet_max_w = max_rig_power_w(snap.rigs, self._by_name)
        budget_before_w = self.loop_state.budget_w
        self.loop_state, decision = step(
            self.loop_state,
            LoopInputs(
                t_s=now_s,
                limit=limit,
                grid_fresh=snap.grid_fresh,
                grid_import_kw=snap.grid_import_w / 1000.0,
                rig_power_w=counted_w,
                worst_case_rig_power_w=worst_case_rig_power_w(snap.rigs, self._by_name),
                max_rig_power_w=fleet_max_w,
                planned_rig_power_w=planned_w,
                moving=now_s < self._moving_until_s,
                falling=now_s >= self._raising_until_s,
                distrusted_rig_power_w=counted_w + sum(extra for _, extra in unseen.values()),
            ),
            self.config.loop,
        )
        if self.loop_state.over_cycles and self.poll_now is not None:
            for rig_id in self._unread:
                self.poll_now(rig_id)  # the meter says over: find out who obeys, now
        constraints = self.config.constraints
        if decision.distrust and unseen:
            plan_rigs = self._distrust(plan_rigs, unseen, now_s)
            constraints = replace(constraints, shed_fastest_first=True)
        elif self._caught:
            # Told to shed, read since it should show, and unchanged: its claimed reduction
            # is not handed to other rigs (that would raise the import over the limit on a
            # guess); it is counted at what it draws and left alone until it is seen to
            # obey or verification judges it. The meter gives back what it does not draw.
            plan_rigs = self._hold_caught(plan_rigs, unseen)
        measured = self._measured
        if not measured:
            constraints = replace(constraints, max_wakes_per_cycle=0)
        the_plan: Plan | None = None
        dispatch = Dispatch((), ())
        warm = self._warm(snap, t0)
        if not warm and not decision.shedding:
            # Nothing dispatched: this cycle's budget (in warm-up usually the fail-safe one,
            # the meter not read yet) must not become the first plan's starting point, or a
            # site restarted at full load is shed to it and ramped back up.
            self.loop_state = replace(self.loop_state, budget_w=None, rig_power_w=None)
        if warm or decision.shedding:
            the_plan = plan(decision.rig_budget_w, plan_rigs, constraints)
            # The planner hands back the very same object for an unchanged setpoint.
            last = self._setpoints
            redo = self.book.take_redo()
            # Setpoints of rigs the planner did not dispatch only say how they are counted;
            # they are no orders (a rig winding down after a sleep command reads "awake").
            # Setpoints come back in input order, so they pair with plan_rigs and statuses.
            orders = []
            statuses: dict[str, RigStatus] = {}
            for st, pr, sp in zip(snap.rigs, plan_rigs, the_plan.setpoints, strict=True):
                if last.get(sp.rig_id) is not sp or sp.rig_id in redo:
                    last[sp.rig_id] = sp
                    if _dispatched(pr):
                        orders.append(sp)
                        statuses[sp.rig_id] = st
            # Raise only once every shed command has its outcome: until then the planner
            # counts those rigs as asleep, and waking others on that belief could overshoot.
            # Nothing rises before the loop has measured the site against the limit.
            # ...and once the sheds sent have fallen to their setpoints (or their sleep
            # time is up): raises land faster than sheds fall.
            landing = self.book.sheds_landing(
                now_s, lambda rig_id: snap.rigs[self.fleet.rig_index(rig_id)]
            )
            dispatch = self.book.diff(
                orders,
                statuses,
                now_s,
                allow_raise=measured and not self.executor.shedding and not landing,
            )
            for rig_id in dispatch.held:
                last.pop(rig_id, None)  # planned anew, and sent, once shedding has landed
            held_w = self.loop_state.budget_w
            if dispatch.held and budget_before_w is not None and held_w is not None:
                # Raises held: the budget must not keep ramping meanwhile, or every raise
                # held lands at once when released, faster than the ramp allows.
                self.loop_state = replace(
                    self.loop_state, budget_w=min(held_w, budget_before_w), raised_w=0.0
                )
            self.executor.submit(dispatch.shed, dispatch.raise_)
            step_w = self._step_w(dispatch, orders, statuses)
            if step_w > 0.0:
                until_s = now_s + self._moving_for_s(dispatch)
                self._in_flight.append((until_s, step_w))
                if dispatch.raise_:
                    self._raising_until_s = max(self._raising_until_s, until_s)
            # The rigs still on their way (each command until its reaction time is up) move
            # the site when together they exceed the loop's settle tolerance.
            self._in_flight = [(u, w) for u, w in self._in_flight if u > now_s]
            cfg = self.config.loop
            tolerance_w = max(cfg.settle_tolerance_kw * 1000.0, 0.01 * the_plan.planned_power_w)
            if sum(w for _, w in self._in_flight) > tolerance_w:
                until_s = max(u for u, _ in self._in_flight)
                self._moving_until_s = max(self._moving_until_s, until_s)
        self._verify(snap, now_s)
        # Compliance is judged against the limit in force now, not the one looked ahead to.
        limit_in_force = decision.limit if limit is limit_now else limit_now
        gap_now = None
        if the_plan is not None and snap.grid_fresh:
            gap_now = self._gap(
                snap, decision, the_plan, plan_rigs, fleet_max_w, limit_in_force.limit_kw
            )
        if not measured and self._measured_since_start(snap):
            self._measured = True  # raising may start next cycle, from this measurement
            log.info("site measured against its limit since start: raising allowed")
        closed = self._account(now_s, snap, limit_in_force, gap_now)
        self.cycles += 1
        if self.cycles % 10 == 0:
            # A failed write is counted by storage health; the integral lives on in memory.
            with contextlib.suppress(StorageError):
                self.stores.state.set(STATE_INTEGRAL, self.loop_state.integral_kw)
        self._persist_contact()
        shed = shed_capacity(snap.rigs, self.models, aux_fraction=self.config.loop.aux_fraction)
        result = CycleResult(
            cycle=self.cycles,
            snapshot=snap,
            decision=decision,
            plan=the_plan,
            dispatch=dispatch,
            failsafe_reason=reason,
            operator_cap_kw=self.operator_cap_kw,
            duration_s=elapsed_s() - t0_real,
            compliance=tuple(closed),
            utilization=gap_now,
            shed=shed,
        )
        self.last = result
        self.first_cycle.set()
        self.last_cycle_mono_s = elapsed_s()
        for listener in self.listeners:
            try:
                listener(result)
            except Exception:  # a broken listener must never stop control
                log.exception("cycle listener %r failed", listener)
        return result

    # ------------------------------------------------------------ helpers

    def _warm(self, snap: FleetSnapshot, t0_mono_s: float) -> bool:
        """Dispatch only once the site has been seen: grid meter read and rigs polled once.

        Until then rigs keep what they were last told (restored from the journal).
        """
        w = self._warmup
        if w.done:
            return True
        if w.started_mono_s is None:
            w.started_mono_s = t0_mono_s
        seen = sum(1 for r in snap.rigs if r.reading.taken_at_s > 0)
        rigs_seen = not snap.rigs or seen >= 0.95 * len(snap.rigs)
        meter_seen = all(m.reading is not None for m in snap.grid_meters)
        if (rigs_seen and meter_seen) or t0_mono_s - w.started_mono_s >= self.config.warmup_s:
            w.done = True
            log.info(
                "warm-up done: %d/%d rigs read, grid meter read: %s",
                seen,
                len(snap.rigs),
                meter_seen,
            )
        return w.done

    @staticmethod
    def _step_w(
        dispatch: Dispatch, orders: list[RigSetpoint], statuses: Mapping[str, RigStatus]
    ) -> float:
        """How much the commands sent move the rig power (sum of |setpoint - reading|). On a
        large site a few rigs are always being told something (retries, profile follow-ups):
        counting every such trickle as "moving" froze the loop for good, so power counted
        but not drawn was never given back; what is in flight together is what counts."""
        cmds = (*dispatch.shed, *dispatch.raise_)
        if not cmds:
            return 0.0
        target = {sp.rig_id: sp.power_w if sp.awake else 0.0 for sp in orders}
        step_w = 0.0
        for cmd in cmds:
            st = statuses.get(cmd.rig_id)
            now_w = st.reading.power_w if st is not None else 0.0
            to_w = target.get(cmd.rig_id, now_w)
            step_w += abs(to_w - now_w) if to_w > 0.0 else now_w
        return step_w

    def _moving_for_s(self, dispatch: Dispatch) -> float:
        """How long the commands just sent keep rigs moving: the slowest of their own
        reactions (sleep, wake, or a profile/power change, per family), plus a cycle. The
        loop learns from the meter only once they have landed; waiting for the slowest rig
        model of the site after every command would keep it from ever learning."""
        slowest_s = 0.0
        for cmd in (*dispatch.shed, *dispatch.raise_):
            m = self.models[cmd.rig_id]
            if cmd.action is RigAction.SLEEP:
                react_s = m.sleep_time_s
            elif cmd.action is RigAction.WAKE:
                # A woken rig may still be ramping its boards after wake_time_s: until it
                # has arrived, the meter sees it before its (slower) readings do.
                react_s = 1.5 * m.wake_time_s
            else:
                react_s = max(m.sleep_time_s, m.wake_time_s)
            slowest_s = max(slowest_s, react_s)
        return min(1.5 * self.moving_s, slowest_s + self.config.loop.interval_s)

    def _gap(
        self,
        snap: FleetSnapshot,
        decision: LoopDecision,
        the_plan: Plan,
        plan_rigs: list[PlanRig],
        fleet_max_w: float,
        limit_now_kw: float,
    ) -> Gap:
        cfg = self.config.loop
        unclipped_w = budget_for_import_kw(decision.target_import_kw, decision.correction_kw, cfg)
        min_off_w = 0.0
        unresponsive_w = 0.0
        for pr, sp in zip(plan_rigs, the_plan.setpoints, strict=True):
            if sp.reason == MIN_OFF_REASON:
                m = pr.model
                min_off_w += awake_points(m)[0].power_w - m.sleep_power_w
            elif pr.unresponsive:
                unresponsive_w += max(0.0, _counted_w(pr) - pr.power_w)
        return gap(
            limit_kw=decision.limit.limit_kw,
            limit_now_kw=limit_now_kw,
            import_kw=snap.grid_import_w / 1000.0,
            target_kw=decision.target_import_kw,
            correction_kw=decision.correction_kw,
            aux_base_kw=cfg.aux_base_kw,
            aux_fraction=cfg.aux_fraction,
            wanted_unclipped_w=unclipped_w,
            wanted_w=min(unclipped_w, fleet_max_w),
            budget_w=decision.rig_budget_w,
            planned_w=the_plan.planned_power_w,
            min_off_w=min_off_w,
            unresponsive_w=unresponsive_w,
        )

    def _measured_since_start(self, snap: FleetSnapshot) -> bool:
        """A fresh grid-meter reading and a reading (or failed read) of every rig, all taken
        after this process started: the loop then knows where the site stands."""
        start = self._started_s
        if start is None or not snap.grid_fresh:
            return False
        if any(m.reading is None or m.reading.taken_at_s < start for m in snap.grid_meters):
            return False
        return all(r.reading.taken_at_s >= start for r in snap.rigs)

    def _unseen_sheds(
        self, snap: FleetSnapshot, plan_rigs: list[PlanRig]
    ) -> dict[str, tuple[int, float]]:
        """Rigs told to shed whose change the grid meter could show by now and no reading has
        shown: index -> extra power to count if the meter is believed over them."""
        self._unread, self._caught = [], set()
        if not snap.grid_fresh or not snap.grid_meters:
            return {}
        meter_at_s = min(m.reading.taken_at_s for m in snap.grid_meters if m.reading)
        self.book.observe_sheds(lambda rig_id: snap.rigs[self.fleet.rig_index(rig_id)])
        caught, unread = self.book.unconfirmed(meter_at_s)
        if not caught and not unread:
            return {}
        self._unread = unread
        self._caught = set(caught)
        out: dict[str, tuple[int, float]] = {}
        for rig_id in (*caught, *unread):
            i = self.fleet.rig_index(rig_id)
            st, pr = snap.rigs[i], plan_rigs[i]
            extra = distrusted_w(st, self.models[rig_id]) - _counted_w(pr)
            out[rig_id] = (i, max(0.0, extra))
        return out

    def _hold_caught(
        self, plan_rigs: list[PlanRig], unseen: dict[str, tuple[int, float]]
    ) -> list[PlanRig]:
        rigs = list(plan_rigs)
        for rig_id in self._caught:
            i = unseen[rig_id][0]
            rigs[i] = replace(rigs[i], unresponsive=True)
        return rigs

    def _distrust(
        self, plan_rigs: list[PlanRig], unseen: dict[str, tuple[int, float]], now_s: float
    ) -> list[PlanRig]:
        """The grid meter is over the limit: rigs not seen to obey are counted at measured or
        nominal power and not moved; those read since and unchanged are marked unresponsive
        (verification clears them once a reading shows they obey)."""
        rigs = list(plan_rigs)
        for rig_id, (i, _) in unseen.items():
            rigs[i] = replace(rigs[i], unresponsive=True)
            if rig_id in self._caught and rig_id not in self._unresponsive_since:
                log.warning(
                    "rig %s has not changed since its command and the grid meter says over: "
                    "counted at nominal",
                    rig_id,
                )
                self._unresponsive_since[rig_id] = now_s
                self.fleet.set_unresponsive(rig_id, True)
        return rigs

    def _plan_rigs(self, snap: FleetSnapshot, now_s: float) -> list[PlanRig]:
        """PlanRigs with control.fleet's safety rules, each with the setpoint it last got.

        A rig's PlanRig is rebuilt only when something it depends on changed (its status
        object, setpoint, hold window or intent): at 50,000 rigs most are reused as is.
        """
        book = self.book
        c = self.config.constraints
        short_s, hold_s = sorted((c.min_on_s, c.min_off_s))
        last = self._setpoints
        cache = self._plan_cache
        rigs: list[PlanRig] = []
        append = rigs.append
        for st in snap.rigs:
            rig_id = st.rig_id
            # The planner only compares the age with min_on_s and min_off_s: pass which side
            # of them it is on, so the cached PlanRig stays valid while nothing else changes.
            since = book.since_switch_s(rig_id, now_s)
            since = 0.0 if since < short_s else short_s if since < hold_s else math.inf
            sp = last.get(rig_id)
            it = book.get(rig_id)
            recent = it is not None and now_s - it.sent_at_s < self.moving_s
            key = (since, it.awake, it.power_w, recent) if it is not None else (since,)
            hit = cache.get(rig_id)
            if hit is not None and hit[0] is st and hit[1] is sp and hit[2] == key:
                append(hit[3])
                continue
            pr = plan_rig(st, self.models[rig_id], since_switch_s=since, setpoint=sp)
            if (
                it is not None
                and pr.state is RigState.FAULT
                and st.fresh
                and not st.unresponsive
                and recent
            ):
                # Just told to sleep, wake or change profile: boards stopping and starting
                # read as "dead boards" meanwhile. Planned by what it was told (the grid meter
                # catches one that does not follow), not frozen at its passing power.
                power_w = max(pr.power_w, it.power_w) if it.awake else pr.power_w
                pr = replace(pr, awake=it.awake, dispatchable=True, power_w=power_w)
            elif it is not None and pr.awake != it.awake and _dispatched(pr):
                # What it was told wins over a reading taken before the command landed, or
                # a rig just told to sleep looks awake, falls in its min-on window and is
                # woken again. Verification catches a rig that does not obey.
                pr = replace(pr, awake=it.awake)
            elif it is not None and it.awake and pr.state is RigState.UNKNOWN and st.fresh:
                # Told to wake and still ramping (no hashrate yet): it is heading for its
                # setpoint, so count that, or its rise lands on top of what others get.
                pr = replace(pr, power_w=max(pr.power_w, it.power_w))
            cache[rig_id] = (st, sp, key, pr)
            append(pr)
        return rigs

    def _verify(self, snap: FleetSnapshot, now_s: float) -> None:
        bad, good = self.book.verify(snap.rigs, now_s)
        for rig_id in bad:
            if rig_id not in self._unresponsive_since:
                log.warning("rig %s does not follow its setpoint: counted at nominal", rig_id)
            self._unresponsive_since.setdefault(rig_id, now_s)
            self.fleet.set_unresponsive(rig_id, True)
        for rig_id in good:
            self._unresponsive_since.pop(rig_id, None)
            self.fleet.set_unresponsive(rig_id, False)
        retries: list[RigCommand] = []
        for rig_id, since in list(self._unresponsive_since.items()):
            if now_s - since >= self.config.retry_unresponsive_s:
                self._unresponsive_since[rig_id] = now_s
                st = snap.rigs[self.fleet.rig_index(rig_id)]
                cmd = self.book.retry(rig_id, st.reading, now_s)
                if cmd is not None:
                    # Sent again while still counted at nominal: if it has come back to
                    # life, verification clears it; if not, nobody was raised on its behalf.
                    retries.append(cmd)
                    continue
                self.book.forget(rig_id)  # the next diff sends the command again
                self._setpoints.pop(rig_id, None)
                # ...which it only does for a rig the planner may move: give it that chance
                # (counted at its fresh reading meanwhile); verification marks it again.
                self.fleet.set_unresponsive(rig_id, False)
        if retries:
            sleeps = tuple(c for c in retries if c.action is RigAction.SLEEP)
            self.executor.submit(sleeps, tuple(c for c in retries if c not in sleeps))

    def _account(
        self, now_s: float, snap: FleetSnapshot, limit: EffectiveLimit, gap_now: Gap | None
    ) -> list[ComplianceRecord]:
        """Feed compliance; returns the settlement intervals this sample closed."""
        if not snap.grid_fresh:
            return []
        terms = tuple(gap_now.terms_kw().items()) if gap_now is not None else ()
        self.compliance, minutes, intervals = self.compliance.add(
            Sample(now_s, snap.grid_import_w / 1000.0, limit.limit_kw, terms)
        )
        self._store(minutes, "minute")
        self._store(intervals, "interval")
        return intervals

    def _store(self, records: list[ComplianceRecord], kind: ComplianceKind) -> None:
        """Write closed records; ones the disk refuses wait in memory (bounded) and go out
        with the next that works. Control never waits for them."""
        held = self._held_compliance
        if not records and not held:
            return
        if held:
            for r in records:
                held[(kind, r.interval_s, r.interval_start_s)] = r
            try:
                with self.stores.db.transaction("upsert compliance (held)"):
                    for k in ("minute", "interval"):
                        batch = [r for key, r in held.items() if key[0] == k]
                        if batch:
                            self.stores.compliance.upsert_many(batch, k)
            except StorageError:
                self._trim_held_compliance()
                return
            log.info("compliance records written again (%d held in memory)", len(held))
            held.clear()
            return
        try:
            self.stores.compliance.upsert_many(records, kind)
        except StorageError:
            for r in records:
                held[(kind, r.interval_s, r.interval_start_s)] = r

    def _trim_held_compliance(self) -> None:
        held = self._held_compliance
        while len(held) > MAX_HELD_COMPLIANCE:
            del held[next(iter(held))]  # the oldest goes first


def _dispatched(r: PlanRig) -> bool:
    """The planner's own test for a rig it may move (see control.planner.plan)."""
    return not (
        r.maintenance or r.unresponsive or not r.dispatchable or r.state is RigState.OFFLINE
    )


def _counted_w(r: PlanRig) -> float:
    """Rig power as the planner counts it, so the loop's model matches the plan's."""
    if r.maintenance:
        return r.power_w
    if r.unresponsive:
        return max(r.power_w, r.model.nominal_power_w)
    if r.state is RigState.OFFLINE:
        return 0.0
    return r.power_w
