"""The control cycle: one snapshot in, setpoints and commands out, every interval.

1. take one consistent FleetSnapshot;
2. find the limit in force (quotas, operator cap, contract; fail-safe when the grid meter is
   stale or the grid authority has gone silent);
3. the closed loop (control.loop) turns it into a rig budget, correcting from the meter;
4. the planner (control.planner) splits the budget over the rigs;
5. the IntentBook keeps only what changed; the executor sends shedding first.
Everything slow (sinks, alerts) hangs off listeners that must not block; what the cycle
leaves on disk is written by one of them (runtime.cycle_persist).

run_once is that cycle in named phases: sense, limit, loop, plan, dispatch, verify, account.
run() uses run_once_async, the same phases with the heavy work (planning and the 50,000-rig
passes around it) in a worker thread, so polls, API requests and MQTT messages are served
while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from minerd.clock import Clock, elapsed_s
from minerd.control.compliance import Compliance, Sample
from minerd.control.counting import NominalWatch, counted_power_w, dispatched
from minerd.control.error_slope import ErrorSlope
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
    hold_raise,
    step,
)
from minerd.control.options import awake_points
from minerd.control.overload import REASON as OVERLOAD_REASON
from minerd.control.overload import meter_excess_w, overload_sheds
from minerd.control.planner import MIN_OFF_REASON, Plan, PlanConstraints, PlanRig, plan
from minerd.control.quota import effective_limit
from minerd.control.region_lease import RegionalLease
from minerd.control.shed_capacity import shed_capacity
from minerd.control.utilization import Gap, gap
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
from minerd.runtime.cycle_persist import (
    STATE_ERROR_FIT,
    STATE_GRID_CONTACT,
    STATE_INTEGRAL,
    CyclePersister,
)
from minerd.runtime.energy_tracker import ORIGIN_AWARD, EnergyTracker
from minerd.runtime.executor import Executor, ShedGate
from minerd.runtime.fleet import FleetState
from minerd.runtime.intents import Dispatch, IntentBook
from minerd.runtime.unresponsive import Unresponsive
from minerd.storage import Stores

log = logging.getLogger("minerd.control")

STATE_OPERATOR_CAP = "control.operator_cap_kw"


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
    # Over the limit with only unresponsive rigs left to shed (control.overload): a rig
    # told to sleep is told again only after this, unless no other is left to tell.
    overload_resend_s: float = 120.0
    # A rig read hashing whose next read is late (control.fleet.late_hashing) is counted at
    # that reading, not at nominal, until it is this old, and only on a fresh grid meter.
    late_reading_trust_s: float = 60.0


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
    compliance_minutes: tuple[ComplianceRecord, ...] = ()  # minutes closed this cycle
    loop_integral_kw: float = 0.0  # the loop's integral after this cycle (persisted)
    loop_error_fit: ErrorSlope = field(default_factory=ErrorSlope)  # its slope fit (persisted)
    grid_last_contact_s: float | None = None  # last heard from the grid authority
    shed: ShedCapacity | None = None  # what could be shed within 5 s / 60 s / 600 s


CycleListener = Callable[[CycleResult], None]
# Commands handed to the executor at a time by run_once_async: one journal transaction each.
SUBMIT_BATCH = 2000
_NO_DISPATCH = Dispatch((), ())
_T = TypeVar("_T")


@dataclass
class _Warmup:
    started_mono_s: float | None = None
    done: bool = False


@dataclass(frozen=True)
class _Sensed:
    """Phase sense: the one snapshot a cycle works from."""

    t0_mono_s: float
    t0_real_s: float  # the cycle's cost in real seconds, whatever the clock's speed
    now_s: float
    snap: FleetSnapshot
    failsafe_reason: str


@dataclass(frozen=True)
class _Limits:
    """Phase limit: what the loop steers to, and what compliance is judged against."""

    ahead: EffectiveLimit  # the lowest within the look-ahead (or the one in force now)
    now: EffectiveLimit  # in force now
    # ahead without the award's pace: the power the site may draw (safety), not the energy
    # it should (money). Over it, shedding is never delayed; over only the pace, warm-up is.
    power: EffectiveLimit


@dataclass(frozen=True)
class _Rigs:
    """Phase loop's inputs from the rigs (built off the loop by run_once_async)."""

    plan_rigs: list[PlanRig]
    unseen: dict[str, tuple[int, float]]  # sheds not yet seen: index, extra W to count
    counted_w: float  # rig power as the planner counts it
    worst_case_w: float
    fleet_max_w: float
    uncounted_w: float  # counted at nominal last cycle, now less: LoopInputs.uncounted_w


@dataclass(frozen=True)
class _Rise:
    """A raise sent to one rig: what it may still add to the meter until its reaction time
    is up."""

    until_s: float
    rise_w: float


@dataclass(frozen=True)
class _Orders:
    """Phase dispatch: the commands, and the setpoints and statuses they were made from."""

    dispatch: Dispatch
    setpoints: list[RigSetpoint]
    statuses: dict[str, RigStatus]


@dataclass(frozen=True)
class _Looped:
    """Phase loop: the rig budget and the rigs (with the safety rules) to plan it over."""

    limits: _Limits
    decision: LoopDecision
    plan_rigs: tuple[PlanRig, ...]  # immutable: handed to the planner's thread as is
    constraints: PlanConstraints
    fleet_max_w: float
    budget_before_w: float | None
    measured: bool  # raising allowed (the site measured against its limit since start)
    dispatching: bool  # warm, or shedding: plan and dispatch this cycle


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
    # Price-aware dispatch (runtime.economics): (now_s, an award covers now) -> the planner's
    # J/TH filter, or None.
    economics: Callable[[float, bool], float | None] | None = None
    energy: EnergyTracker | None = None  # the energy award's pace (issue 15), when set

    def __post_init__(self) -> None:
        self.quotas: list[Quota] = []
        self.operator_cap_kw: float | None = None
        # [region]: the coordinator's allocation, one more limit (the daemon wires it).
        self.region: RegionalLease | None = None
        self.loop_state = LoopState()
        self.compliance = Compliance.with_settlement(self.config.settlement_interval_s)
        self.last: CycleResult | None = None
        self.cycles = 0
        self.last_cycle_mono_s = 0.0
        self.grid_last_contact_s: float | None = None
        self.persister = CyclePersister(self.stores, self.clock)
        self.listeners.insert(0, self.persister)  # on disk before anyone else hears of it
        self.overruns = 0
        self.cycles_skipped = 0  # intervals that passed while one long cycle ran
        self.wakes_coalesced = 0  # wakes while a cycle ran: served by the next one, at once
        self._cycle_running = False
        self._plan_pool: ThreadPoolExecutor | None = None
        self._wake = asyncio.Event()
        self.first_cycle = asyncio.Event()  # set once a cycle has run (systemd READY=1)
        self._warmup = _Warmup()
        self.unresponsive = Unresponsive(self.fleet)
        self._lowest_awake_w: dict[str, float] = {}  # per model name (utilization's min-off)
        self._setpoints: dict[str, RigSetpoint] = {}  # last planned, per rig
        # rig_id -> (status, setpoint, (hold age, intent awake, power, recent), PlanRig)
        self._plan_cache: dict[str, tuple[RigStatus, RigSetpoint | None, object, PlanRig]] = {}
        self._nominal = NominalWatch()  # rigs counted at nominal last cycle
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
        self._rising: dict[str, _Rise] = {}  # raises that may still add to the meter
        self._in_flight: list[tuple[float, float]] = []  # (until_s, power step W) per dispatch
        # Read a rig at once (wired to the poller): a shed not yet seen while over the limit.
        self.poll_now: Callable[[str], None] | None = None
        self._started_s: float | None = None  # first cycle of this process
        self._measured = False  # the site measured against the limit since start
        self._unread: list[str] = []  # sheds not seen, no reading since: read them now
        self._caught: set[str] = set()  # sheds not seen, read since and unchanged
        self._overload_told: dict[str, float] = {}  # rig -> told to sleep past the plan at

    # ------------------------------------------------------------ restart

    def restore(self) -> None:
        """Quotas, operator cap, loop integral, maintenance pins and intents from SQLite."""
        self.reload_quotas()
        if self.energy is not None:
            self.energy.restore()  # the interval's energy so far
        cap = self.stores.state.get_float(STATE_OPERATOR_CAP)
        self.operator_cap_kw = cap
        integral = self.stores.state.get_float(STATE_INTEGRAL, 0.0) or 0.0
        fit = ErrorSlope.from_json(self.stores.state.get(STATE_ERROR_FIT))
        self.loop_state = LoopState(integral_kw=integral, error_slope=fit)
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
        self._request_cycle()  # act within this cycle, not the next

    def note_grid_contact(self) -> None:
        """In memory only: the persister writes it at most every CONTACT_PERSIST_S, off the
        loop, so a grid request never waits on an fsync nor fails on a read-only disk."""
        self.grid_last_contact_s = self.clock.now_s()

    def set_operator_cap(self, cap_kw: float | None) -> None:
        self.operator_cap_kw = cap_kw
        if cap_kw is None:
            self.stores.state.delete(STATE_OPERATOR_CAP)
        else:
            self.stores.state.set(STATE_OPERATOR_CAP, cap_kw)
        self._request_cycle()

    def region_changed(self) -> None:
        """A new regional allocation: a lower one is obeyed now, not at the next interval."""
        self._request_cycle()

    def _request_cycle(self) -> None:
        """Run a cycle now. One already running finishes first; any number of requests
        meanwhile are served by one cycle that starts right after it (counted)."""
        if self._cycle_running:
            self.wakes_coalesced += 1
            log.debug("cycle requested while one runs: the next starts when it ends")
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
        self.unresponsive.mark(cmd.rig_id, self.clock.now_s())

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        """A cycle every interval, or at once when woken, one at a time; planning runs in a
        worker thread (run_once_async) so the loop serves polls and requests meanwhile."""
        interval_s = self.config.loop.interval_s
        try:
            while True:
                started = self.clock.monotonic_s()
                self._wake.clear()  # a wake from here on is served by the next cycle
                await self.run_once_async()
                elapsed = self.clock.monotonic_s() - started
                if elapsed > interval_s:
                    self.overruns += 1
                    skipped = int(elapsed // interval_s)
                    self.cycles_skipped += skipped
                    log.warning(
                        "control cycle took %.3fs, over its %.1fs interval (%d due meanwhile "
                        "skipped)",
                        elapsed,
                        interval_s,
                        skipped,
                    )
                try:
                    async with self.clock.timeout(max(0.0, interval_s - elapsed)):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            if self._plan_pool is not None:
                # A plan still in flight is dropped: its thread ends with it, nobody waits.
                self._plan_pool.shutdown(wait=False, cancel_futures=True)
                self._plan_pool = None

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
        if self.region is not None:
            return self.region.failsafe_reason(now_s)
        return ""

    def run_once(self) -> CycleResult:
        """One cycle, planning on the caller's thread (tests, benchmarks, tools)."""
        with self._one_cycle():
            sensed = self._sense()
            limits = self._limit(sensed)
            looped = self._loop(sensed, limits, self._rigs(sensed.snap, sensed.now_s))
            the_plan = self._plan(looped) if looped.dispatching else None
            dispatch = _NO_DISPATCH
            if the_plan is not None:
                dispatch = self._dispatch(sensed, looped, the_plan)
                dispatch = self._shed_past_plan(sensed, looped, the_plan, dispatch)
            self._verify(sensed.snap, sensed.now_s)
            return self._account(sensed, looped, the_plan, dispatch)

    async def run_once_async(self) -> CycleResult:
        """The same phases as run_once, the heavy work in the cycle's worker thread: the rigs
        as the planner sees them, the plan, the diff into commands, verification's judging
        and the measures. The snapshot is immutable; the IntentBook and the cycle's own state
        change only in cycle phases, one cycle at a time (the executor's acknowledgement
        only stamps a command's ack time). On the loop stay the loop's decision, handing the
        commands to the executor (sheds first, the first batch as soon as the diff is back),
        marking unresponsive rigs and publishing the result. Polls, API requests and MQTT
        messages are served meanwhile."""
        with self._one_cycle():
            sensed = self._sense()
            limits = self._limit(sensed)
            rigs = await self._off_loop(self._rigs, sensed.snap, sensed.now_s)
            looped = self._loop(sensed, limits, rigs)
            the_plan = await self._off_loop(self._plan, looped) if looped.dispatching else None
            dispatch = _NO_DISPATCH
            if the_plan is not None:
                dispatch = await self._dispatch_async(sensed, looped, the_plan)
                dispatch = self._shed_past_plan(sensed, looped, the_plan, dispatch)
            judged = await self._off_loop(self.book.verify, sensed.snap.rigs, sensed.now_s)
            self._verify(sensed.snap, sensed.now_s, judged)
            measured = await self._off_loop(self._measure, sensed, looped, the_plan)
            return self._publish(sensed, looped, the_plan, dispatch, measured)

    @contextlib.contextmanager
    def _one_cycle(self) -> Iterator[None]:
        if self._cycle_running:
            raise RuntimeError("a control cycle is already running: one at a time")
        self._cycle_running = True
        try:
            yield
        finally:
            self._cycle_running = False

    # ------------------------------------------------------------ phases

    def _sense(self) -> _Sensed:
        t0 = self.clock.monotonic_s()
        t0_real = elapsed_s()
        now_s = self.clock.now_s()
        snap = self.fleet.snapshot(now_s)
        if self._started_s is None:
            self._started_s = now_s
        return _Sensed(t0, t0_real, now_s, snap, self.failsafe_reason(snap, now_s))

    def _limit(self, sensed: _Sensed) -> _Limits:
        """The limit in force, and the lowest one coming within the look-ahead."""
        now_s = sensed.now_s
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
                failsafe=bool(sensed.failsafe_reason),
                failsafe_limit_kw=self.config.failsafe_limit_kw,
            )
            for t_s in (now_s, end_s, *(e for e in edges if e is not None and now_s < e < end_s))
        )
        limit = min(ahead, key=lambda lim: lim.limit_kw)
        if limit.limit_kw >= limit_now.limit_kw:
            limit = limit_now  # nothing lower is coming within the look-ahead
        power = limit
        if self.energy is not None:
            limit = self.energy.cap(limit, sensed.snap, now_s)  # the award's pace, when lower
        if self.region is not None:  # the regional allocation, when lower
            limit, limit_now = self.region.cap(limit, now_s), self.region.cap(limit_now, now_s)
            power = self.region.cap(power, now_s)
        return _Limits(limit, limit_now, power)

    def _rigs(self, snap: FleetSnapshot, now_s: float) -> _Rigs:
        """The rigs as the planner sees them, the sheds not yet seen to land, and the fleet
        sums the loop needs. Reads the immutable snapshot, changes only the cycle's caches
        and the IntentBook's shed tracking (no other task does): may run in the worker
        thread."""
        plan_rigs = self._plan_rigs(snap, now_s)
        counted = self._nominal.count(plan_rigs)
        return _Rigs(
            plan_rigs=plan_rigs,
            unseen=self._unseen_sheds(snap, plan_rigs),
            counted_w=counted.counted_w,
            worst_case_w=worst_case_rig_power_w(snap.rigs, self._by_name),
            fleet_max_w=max_rig_power_w(snap.rigs, self._by_name),
            uncounted_w=counted.uncounted_w,
        )

    def _loop(self, sensed: _Sensed, limits: _Limits, rigs: _Rigs) -> _Looped:
        """The closed loop: the rig budget from the limit and the meter, and the rigs to
        plan it over (from _rigs), with whom the meter says not to trust."""
        snap, now_s = sensed.snap, sensed.now_s
        plan_rigs, unseen, counted_w = rigs.plan_rigs, rigs.unseen, rigs.counted_w
        planned_w = None
        if self.last is not None and self.last.plan is not None:
            # What the rigs were told: raises held back for shedding are planned, not sent.
            # Counted in, the readings never matched the plan (never settled) and the meter's
            # error was bounded by power not drawn: the loop learnt none of an 80 kW error,
            # and each held raise, released, put the site 40 kW over (issue 19).
            planned_w = self.last.plan.planned_power_w - self.last.dispatch.held_rise_w
        fleet_max_w = rigs.fleet_max_w
        budget_before_w = self.loop_state.budget_w
        self.loop_state, decision = step(
            self.loop_state,
            LoopInputs(
                t_s=now_s,
                limit=limits.ahead,
                grid_fresh=snap.grid_fresh,
                grid_import_kw=snap.grid_import_w / 1000.0,
                rig_power_w=counted_w,
                worst_case_rig_power_w=rigs.worst_case_w,
                max_rig_power_w=fleet_max_w,
                planned_rig_power_w=planned_w,
                moving=now_s < self._moving_until_s,
                falling=True,  # the raises in flight are known: rising_w
                rising_w=self._rising_w(now_s),
                uncounted_w=rigs.uncounted_w,
                distrusted_rig_power_w=counted_w + sum(extra for _, extra in unseen.values()),
            ),
            self.config.loop,
        )
        if self.loop_state.over_cycles and self.poll_now is not None:
            for rig_id in self._unread:
                self.poll_now(rig_id)  # the meter says over: find out who obeys, now
        constraints = self.config.constraints
        if self.economics is not None:
            # Energy in an award is paid in advance: price decides only beyond the awards.
            prepaid = self.energy is not None and self.energy.award is not None
            constraints = replace(constraints, max_j_per_th=self.economics(now_s, prepaid))
        if decision.distrust and unseen:
            plan_rigs = self._distrust(plan_rigs, unseen, now_s)
            constraints = replace(constraints, shed_fastest_first=True)
        elif self._caught:
            # Told to shed, read since it should show, and unchanged: its claimed reduction
            # is not handed to other rigs (that would raise the import over the limit on a
            # guess); it is counted at what it draws and left alone until it is seen to
            # obey or verification judges it. The meter gives back what it does not draw.
            plan_rigs = self._hold_caught(plan_rigs, unseen)
        if decision.ramp_limited and not decision.shedding:
            constraints = replace(constraints, hold_awake=True)  # a raise: no reshuffle dips
        measured = self._measured
        if not measured:
            constraints = replace(constraints, max_wakes_per_cycle=0)
        warm = self._warm(snap, sensed.t0_mono_s)
        shed_now = decision.shedding and (
            limits.ahead.origin != ORIGIN_AWARD
            or (snap.grid_fresh and snap.grid_import_w / 1000.0 > limits.power.limit_kw)
        )
        if not warm and not shed_now:
            # Nothing dispatched: this cycle's budget (in warm-up usually the fail-safe one,
            # the meter not read yet) must not become the first plan's starting point, or a
            # site restarted at full load is shed to it and ramped back up.
            self.loop_state = replace(self.loop_state, budget_w=None, rig_power_w=None)
        return _Looped(
            limits=limits,
            decision=decision,
            plan_rigs=tuple(plan_rigs),
            constraints=constraints,
            fleet_max_w=fleet_max_w,
            budget_before_w=budget_before_w,
            measured=measured,
            # In warm-up most rigs are unread and counted at nominal: a plan made on that
            # sheds many times the excess. Over a power limit it goes out all the same
            # (safety); over only the award's pace, the energy count absorbs a few seconds.
            dispatching=warm or shed_now,
        )

    @staticmethod
    def _plan(looped: _Looped) -> Plan:
        """Split the budget over the rigs (control.planner: pure)."""
        return plan(looped.decision.rig_budget_w, looped.plan_rigs, looped.constraints)

    async def _off_loop(self, fn: Callable[..., _T], *args: object) -> _T:
        """fn(*args) in the cycle's own worker thread (one job in flight at most: the cycle
        awaits it, and run() starts no cycle while one runs)."""
        pool = self._plan_pool
        if pool is None:
            pool = self._plan_pool = ThreadPoolExecutor(1, thread_name_prefix="minerd-plan")
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    def _dispatch(self, sensed: _Sensed, looped: _Looped, the_plan: Plan) -> Dispatch:
        """Orders for the rigs the planner moved, only what changed; sheds go first."""
        orders = self._diff(sensed, looped, the_plan, self.executor.shedding)
        self._hold(looped, orders.dispatch)
        d = orders.dispatch
        self.executor.submit(d.shed, d.raise_, gate=_swap_gate(d))
        self._note_in_flight(sensed.now_s, orders, the_plan)
        return orders.dispatch

    async def _dispatch_async(self, sensed: _Sensed, looped: _Looped, the_plan: Plan) -> Dispatch:
        """_dispatch with the diff and the bookkeeping in the worker thread, and a large
        dispatch handed to the executor in batches, sheds first: the executor starts on the
        first batch while the next is journaled, and the loop is never held for all of it."""
        orders = await self._off_loop(self._diff, sensed, looped, the_plan, self.executor.shedding)
        d = orders.dispatch
        self._hold(looped, d)
        gate = _swap_gate(d)
        for cmds, is_shed in ((d.shed, True), (d.raise_, False)):
            for i in range(0, len(cmds), SUBMIT_BATCH):
                batch = cmds[i : i + SUBMIT_BATCH]
                if is_shed:
                    self.executor.submit(batch, (), gate=gate)
                else:
                    self.executor.submit((), batch, gate=gate)
                if i + SUBMIT_BATCH < len(cmds) or (is_shed and d.raise_):
                    await asyncio.sleep(0)
        await self._off_loop(self._note_in_flight, sensed.now_s, orders, the_plan)
        return d

    def _shed_past_plan(
        self, sensed: _Sensed, looped: _Looped, the_plan: Plan, dispatch: Dispatch
    ) -> Dispatch:
        """Over the limit by a fresh grid meter with the plan's floor over its budget: sleep
        the unresponsive rigs that cover the shortfall (control.overload), after the plan's
        own sheds and on the executor's slow lane, so no shed to a rig that answers waits.
        Not on a blind meter: counted at nominal, every unread rig then looks like load,
        and a loaded host (reads and meter timing out together) slept nearly the whole
        fleet and kept it asleep (7-48 % of the limit used, measured)."""
        over_w = 0.0
        if self.loop_state.over_cycles > 0 and the_plan.shortfall_w > 0.0:
            over_w = meter_excess_w(
                sensed.snap.grid_import_w / 1000.0,
                looped.decision.target_import_kw,
                self.config.loop.aux_fraction,
            )
            # Of the excess, the plan's own sheds (rigs it moves, falling to their
            # setpoints) take this much: only the rest is for the unresponsive rigs, or a
            # cut from full load sleeps all of them on top of the readable ones.
            falling_w = sum(
                max(0.0, pr.power_w - sp.power_w)
                for pr, sp in zip(looped.plan_rigs, the_plan.setpoints, strict=True)
                if dispatched(pr)
            )
            over_w = max(0.0, over_w - falling_w)
        return self._sleep_unresponsive(sensed.now_s, looped, the_plan, over_w, dispatch)

    def _sleep_unresponsive(
        self, now_s: float, looped: _Looped, the_plan: Plan, over_w: float, dispatch: Dispatch
    ) -> Dispatch:
        """Sleep unresponsive rigs for the lesser of the plan's shortfall and over_w, the rig
        power the site is over by (0: not over). No more than the meter says: the shortfall
        counts these rigs at nominal, which a rig told to sleep (and not read since) no
        longer draws. A poller shard gets over_w with its budget (its share of the site's)."""
        told = self._overload_told
        cfg = self.config
        for rig_id in [r for r, t in told.items() if now_s - t >= cfg.overload_resend_s]:
            del told[rig_id]
        need_w = min(the_plan.shortfall_w, over_w)
        if need_w <= 0.0:
            return dispatch
        landing_s = 2.0 * cfg.loop.interval_s  # the readings and the meter a cycle behind
        ids = overload_sheds(
            looped.plan_rigs, need_w, told, now_s, cfg.overload_resend_s, landing_s
        )
        if not ids:
            return dispatch
        cmds = tuple(self.book.sleep_outside_plan(r, now_s, OVERLOAD_REASON) for r in ids)
        for rig_id in ids:
            told[rig_id] = now_s
            self._setpoints.pop(rig_id, None)  # planned anew once it is trusted again
        self.executor.submit((), (), cmds)
        log.warning(
            "site over its limit with %.1f kW the planner cannot shed: %d unresponsive "
            "rigs told to sleep",
            need_w / 1000.0,
            len(cmds),
        )
        return replace(dispatch, shed=dispatch.shed + cmds)

    def _diff(
        self, sensed: _Sensed, looped: _Looped, the_plan: Plan, executor_shedding: bool
    ) -> _Orders:
        """The setpoints that changed, as commands (IntentBook.diff). Touches only the
        cycle's own state and the IntentBook, so it may run in the worker thread."""
        snap, now_s = sensed.snap, sensed.now_s
        # The planner hands back the very same object for an unchanged setpoint.
        last = self._setpoints
        redo = self.book.take_redo()
        # Setpoints of rigs the planner did not dispatch only say how they are counted;
        # they are no orders (a rig winding down after a sleep command reads "awake").
        # Setpoints come back in input order, so they pair with plan_rigs and statuses.
        orders = []
        statuses: dict[str, RigStatus] = {}
        for st, pr, sp in zip(snap.rigs, looped.plan_rigs, the_plan.setpoints, strict=True):
            if last.get(sp.rig_id) is not sp or sp.rig_id in redo:
                last[sp.rig_id] = sp
                if dispatched(pr):
                    orders.append(sp)
                    statuses[sp.rig_id] = st
        # Raise only once every shed command has its outcome: until then the planner
        # counts those rigs as asleep, and waking others on that belief could overshoot.
        # Nothing rises before the loop has measured the site against the limit.
        # ...and once the sheds sent have fallen to their setpoints (or their sleep
        # time is up): raises land faster than sheds fall. The IntentBook holds them
        # while sheds land (sheds_landing forgets those that have); while the wake limit
        # holds rigs back (a raised limit followed wave by wave) it lets a wake go that
        # cannot draw before they have fallen.
        self.book.sheds_landing(now_s, lambda rig_id: snap.rigs[self.fleet.rig_index(rig_id)])
        dispatch = self.book.diff(
            orders,
            statuses,
            now_s,
            allow_raise=looped.measured and not executor_shedding,
            wakes_with_sheds=the_plan.wake_limited,
        )
        for rig_id in dispatch.held:
            last.pop(rig_id, None)  # planned anew, and sent, once shedding has landed
        return _Orders(dispatch, orders, statuses)

    def _hold(self, looped: _Looped, dispatch: Dispatch) -> None:
        budget_before_w = looped.budget_before_w
        if dispatch.held and budget_before_w is not None:
            self.loop_state = hold_raise(self.loop_state, budget_before_w)

    def _note_in_flight(self, now_s: float, orders: _Orders, the_plan: Plan) -> None:
        """The power the commands just sent move, until their rigs have reacted: the loop
        does not learn from the meter while together they move the site (cycle state only:
        may run in the worker thread)."""
        dispatch = orders.dispatch
        step_w = self._step_w(dispatch, orders.setpoints, orders.statuses)
        if step_w > 0.0:
            until_s = now_s + self._moving_for_s(dispatch)
            self._in_flight.append((until_s, step_w))
        self._note_rising(now_s, orders)
        # The rigs still on their way (each command until its reaction time is up) move
        # the site when together they exceed the loop's settle tolerance.
        self._in_flight = [(u, w) for u, w in self._in_flight if u > now_s]
        self._rising = {r: rise for r, rise in self._rising.items() if rise.until_s > now_s}
        if sum(w for _, w in self._in_flight) > self._settle_tolerance_w(the_plan.planned_power_w):
            until_s = max(u for u, _ in self._in_flight)
            self._moving_until_s = max(self._moving_until_s, until_s)

    def _account(
        self, sensed: _Sensed, looped: _Looped, the_plan: Plan | None, dispatch: Dispatch
    ) -> CycleResult:
        """Compliance, the cycle's result, and the listeners (persistence among them)."""
        return self._publish(
            sensed, looped, the_plan, dispatch, self._measure(sensed, looped, the_plan)
        )

    def _measure(
        self, sensed: _Sensed, looped: _Looped, the_plan: Plan | None
    ) -> tuple[Gap | None, ShedCapacity]:
        """Where the power under the limit went, and what the site could shed how fast
        (pure, from the snapshot and the plan: may run in the worker thread)."""
        snap = sensed.snap
        gap_now = None
        if the_plan is not None and snap.grid_fresh:
            gap_now = self._gap(
                snap,
                looped.decision,
                the_plan,
                looped.plan_rigs,
                looped.fleet_max_w,
                _limit_in_force(looped).limit_kw,
            )
        shed = shed_capacity(snap.rigs, self.models, aux_fraction=self.config.loop.aux_fraction)
        return gap_now, shed

    def _publish(
        self,
        sensed: _Sensed,
        looped: _Looped,
        the_plan: Plan | None,
        dispatch: Dispatch,
        measured: tuple[Gap | None, ShedCapacity],
    ) -> CycleResult:
        snap, now_s = sensed.snap, sensed.now_s
        decision = looped.decision
        limit_in_force = _limit_in_force(looped)
        gap_now, shed = measured
        if not looped.measured and self._measured_since_start(snap):
            self._measured = True  # raising may start next cycle, from this measurement
            log.info("site measured against its limit since start: raising allowed")
        minutes, closed = self._feed_compliance(now_s, snap, limit_in_force, gap_now)
        self.cycles += 1
        result = CycleResult(
            cycle=self.cycles,
            snapshot=snap,
            decision=decision,
            plan=the_plan,
            dispatch=dispatch,
            failsafe_reason=sensed.failsafe_reason,
            operator_cap_kw=self.operator_cap_kw,
            duration_s=elapsed_s() - sensed.t0_real_s,
            compliance=tuple(closed),
            utilization=gap_now,
            shed=shed,
            compliance_minutes=tuple(minutes),
            loop_integral_kw=self.loop_state.integral_kw,
            loop_error_fit=self.loop_state.error_slope,
            grid_last_contact_s=self.grid_last_contact_s,
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

    def _settle_tolerance_w(self, planned_w: float | None) -> float:
        """In-flight power that together still counts as the site at its plan."""
        tolerance_w = self.config.loop.settle_tolerance_kw * 1000.0
        return max(tolerance_w, 0.01 * planned_w) if planned_w is not None else tolerance_w

    def _note_rising(self, now_s: float, orders: _Orders) -> None:
        """Each rig told to rise, at what it may still add until its own reaction time is
        up. Per rig: a wake after its profile was set counts once, not twice; a rig told to
        shed since heads down."""
        for cmd in orders.dispatch.shed:
            self._rising.pop(cmd.rig_id, None)
        target = {sp.rig_id: sp.power_w if sp.awake else 0.0 for sp in orders.setpoints}
        for cmd in orders.dispatch.raise_:
            st = orders.statuses.get(cmd.rig_id)
            now_w = st.reading.power_w if st is not None else 0.0
            to_w = target.get(cmd.rig_id, now_w)
            # A woken rig starts from asleep whatever an older reading says.
            rise_w = to_w if cmd.action is RigAction.WAKE else max(0.0, to_w - now_w)
            until_s = now_s + self._moving_for_s(Dispatch((), (cmd,)))
            before = self._rising.get(cmd.rig_id)
            if before is not None:
                until_s = max(until_s, before.until_s)
            self._rising[cmd.rig_id] = _Rise(until_s, rise_w)

    def _rising_w(self, now_s: float) -> float:
        """What the raises sent may still add to the meter: in-flight sheds only lower it,
        so only these keep the loop from giving back a correction the meter does not show."""
        return sum(rise.rise_w for rise in self._rising.values() if rise.until_s > now_s)

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
        plan_rigs: tuple[PlanRig, ...],
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
                lowest_w = self._lowest_awake_w.get(m.name)
                if lowest_w is None:  # per model: tens of thousands may be in min-off
                    lowest_w = self._lowest_awake_w[m.name] = awake_points(m)[0].power_w
                min_off_w += lowest_w - m.sleep_power_w
            elif pr.unresponsive:
                unresponsive_w += max(0.0, counted_power_w(pr) - pr.power_w)
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
            award=decision.limit.origin == "award",
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
            extra = distrusted_w(st, self.models[rig_id]) - counted_power_w(pr)
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
            if rig_id in self._caught and rig_id not in self.unresponsive:
                log.warning(
                    "rig %s has not changed since its command and the grid meter says over: "
                    "counted at nominal",
                    rig_id,
                )
                self.unresponsive.mark(rig_id, now_s)
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
        # Late readings count as read only while a fresh grid meter watches the site.
        late_from_s = now_s - self.config.late_reading_trust_s if snap.grid_fresh else math.inf
        for st in snap.rigs:
            rig_id = st.rig_id
            late_ok = not st.fresh and st.reading.taken_at_s >= late_from_s
            # The planner only compares the age with min_on_s and min_off_s: pass which side
            # of them it is on, so the cached PlanRig stays valid while nothing else changes.
            since = book.since_switch_s(rig_id, now_s)
            since = 0.0 if since < short_s else short_s if since < hold_s else math.inf
            sp = last.get(rig_id)
            it = book.get(rig_id)
            recent = it is not None and now_s - it.sent_at_s < self.moving_s
            key = (
                (since, late_ok, it.awake, it.power_w, recent)
                if it is not None
                else (since, late_ok)
            )
            hit = cache.get(rig_id)
            if hit is not None and hit[0] is st and hit[1] is sp and hit[2] == key:
                append(hit[3])
                continue
            pr = plan_rig(
                st, self.models[rig_id], since_switch_s=since, setpoint=sp, late_as_read=late_ok
            )
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
            elif it is not None and pr.awake != it.awake and dispatched(pr):
                # What it was told wins over a reading taken before the command landed, or
                # a rig just told to sleep looks awake, falls in its min-on window and is
                # woken again. Verification catches a rig that does not obey.
                pr = replace(pr, awake=it.awake)
            elif it is not None and it.awake and pr.state is RigState.UNKNOWN and st.fresh:
                # Told to wake and still ramping (no hashrate yet): it is heading for its
                # setpoint, so count that, or its rise lands on top of what others get.
                pr = replace(pr, power_w=max(pr.power_w, it.power_w))
            elif it is not None and it.awake and late_ok and not pr.unresponsive:
                # Late, counted as last read: a raise it was told since may have landed.
                pr = replace(pr, power_w=max(pr.power_w, it.power_w))
            cache[rig_id] = (st, sp, key, pr)
            append(pr)
        return rigs

    def _verify(
        self,
        snap: FleetSnapshot,
        now_s: float,
        judged: tuple[set[str], set[str]] | None = None,
    ) -> None:
        """Phase verify: readings against intents (IntentBook.verify, or its result
        `judged` when it ran in the worker thread); who does not obey is counted at nominal
        and, every retry_unresponsive_s, told again."""
        bad, good = judged if judged is not None else self.book.verify(snap.rigs, now_s)
        for rig_id in bad:
            if self.unresponsive.mark(rig_id, now_s):
                log.warning("rig %s does not follow its setpoint: counted at nominal", rig_id)
        for rig_id in good:
            self.unresponsive.clear(rig_id)
        for rig_id in self.book.take_landed():
            if rig_id in self.unresponsive and rig_id not in bad:
                self.unresponsive.clear(rig_id)  # seen taking its shed: it obeys
        retries: list[RigCommand] = []
        for rig_id in self.unresponsive.due_for_retry(now_s, self.config.retry_unresponsive_s):
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
            self.unresponsive.release(rig_id)
        if retries:
            sleeps = tuple(c for c in retries if c.action is RigAction.SLEEP)
            self.executor.submit(sleeps, tuple(c for c in retries if c not in sleeps))

    def _feed_compliance(
        self, now_s: float, snap: FleetSnapshot, limit: EffectiveLimit, gap_now: Gap | None
    ) -> tuple[list[ComplianceRecord], list[ComplianceRecord]]:
        """Feed compliance; returns the minutes and settlement intervals this sample closed
        (the persister writes them)."""
        if not snap.grid_fresh:
            return [], []
        terms = tuple(gap_now.terms_kw().items()) if gap_now is not None else ()
        self.compliance, minutes, intervals = self.compliance.add(
            Sample(now_s, snap.grid_import_w / 1000.0, limit.limit_kw, terms)
        )
        return minutes, intervals


def _swap_gate(dispatch: Dispatch) -> ShedGate | None:
    """Wakes sent with the sheds that pay for them (a swap) leave once those are done (obeyed
    or failed for good): a woken rig draws at once, a cut only once it has landed."""
    return ShedGate() if dispatch.shed and dispatch.raise_ else None


def _limit_in_force(looped: _Looped) -> EffectiveLimit:
    """Compliance is judged against the limit in force now, not the one looked ahead to."""
    limits = looped.limits
    return looped.decision.limit if limits.ahead is limits.now else limits.now
