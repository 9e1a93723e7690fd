"""Closed-loop rig budget: feed-forward from the aux model, corrected by the grid meter.

Per cycle:  target import = limit - margin
            predicted import = rig power * (1 + aux_fraction) + aux_base     (the model)
            error = measured import - predicted import                        (unmodelled load)
A PI loop tracks that error (the correction, kW): innovation = error - integral,
integral += ki * dt * innovation (clamped; held while stale; held downward while rigs move
or the ramp holds the budget, but never upward while the site is over the limit, the
error then judged on the rig power the meter may still be seeing; while rigs move, kept
between the least and the most load the meter allows, see step),
correction = integral + kp * innovation; from below (settled, meter under the prediction
for BELOW_CYCLES_TO_GIVE steps in a row) the integral itself follows at the kp pace, so
power counted but not drawn is given back within a few settled cycles. The rig budget is
what the model allows once the correction is taken off:
budget = (target - aux_base - correction) / (1 + aux_fraction).
The correction is the error at the operating point it was learnt at (anchor_w); above it,
it grows along the slope fitted over settled cycles (control/error_slope.py), and a settled
point higher up starts from the integral carried up that slope.
Shedding is immediate: the budget may fall at once, and measured import over the limit cuts
it at once to the rig power that brings the import back to target. While rigs are still
moving to their plan, the meter and the rig readings are taken at different moments (a cut
shows in the readings before the meter): the excess is then judged against the rig power
of the step before, which the meter may still be seeing. The grid meter has the last word:
over the limit for more than two cycles, the cut by the measured excess is made whatever
the rigs claim, counting every rig not yet seen to obey at its measured or nominal power
(distrusted_rig_power_w).
Raising is limited to ramp_up_kw_per_s * dt (dt at most one interval: a stall banks no
ramp), less any rig power that arrived late (woken rigs reach their power after the wake
time, so a raise must not stack on top of them).
A stale grid meter means the fail-safe limit and the worst-case rig power (nominal for
every rig not known to be asleep).
Pure: `step(state, inputs, config) -> (state, decision)`; the state is a frozen value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from minerd.control.error_slope import ErrorSlope
from minerd.model import EffectiveLimit

_MAX_DT_FACTOR = 5.0  # a long pause counts as this many cycles, not as one huge step
OVER_CYCLES_TO_DISTRUST = 2  # the meter over the limit longer than this: trust the meter only
# Settled and under the prediction this many steps in a row: a lasting error, not a transient
# (readings catching up after a restart), so it is given back at the kp pace.
BELOW_CYCLES_TO_GIVE = 5
# A raise the deadband held this many steps in a row is not noise (noise alternates): it
# goes through. Held for good, it left up to the deadband unused for as long as the site
# stayed at one limit (issue 19: 0.7 kW of a 206 kW block on average, 98.46 % used).
DEADBAND_RAISE_CYCLES = 10


@dataclass(frozen=True)
class LoopConfig:
    margin_kw: float
    aux_base_kw: float
    aux_fraction: float  # cooling etc. as a fraction of rig power
    ramp_up_kw_per_s: float  # site import may rise at most this fast (rig budget: / (1+f))
    failsafe_limit_kw: float
    interval_s: float = 1.0
    kp: float = 0.3  # share of a new surprise corrected in the same cycle (0..1)
    ki: float = 0.3  # 1/s: how fast the correction follows a lasting error
    correction_max_kw: float = math.inf  # integral clamp (anti-windup), both signs
    # Budget changes smaller than this are ignored unless the import is over the limit, so
    # meter noise does not move rigs between profiles every cycle; a raise held
    # DEADBAND_RAISE_CYCLES steps in a row goes through. Keep it below margin_kw.
    deadband_kw: float = 0.0
    settle_tolerance_kw: float = 2.0  # rigs "at their plan" within this (or 2 %), see inputs


@dataclass(frozen=True)
class LoopState:
    t_s: float | None = None  # time of the last step
    budget_w: float | None = None  # rig budget decided last step
    integral_kw: float = 0.0  # estimated unmodelled import (kW)
    rig_power_w: float | None = None  # rig power seen last step
    raised_w: float = 0.0  # how much the budget rose last step
    over_cycles: int = 0  # consecutive steps with a fresh meter over the limit
    below_cycles: int = 0  # consecutive settled steps with the meter under the prediction
    held_raise_cycles: int = 0  # consecutive steps the deadband held a raise
    anchor_w: float | None = None  # rig power at which the integral was last learnt, settled
    error_slope: ErrorSlope = field(default_factory=ErrorSlope)  # error vs rig power, settled


@dataclass(frozen=True)
class LoopInputs:
    t_s: float
    limit: EffectiveLimit  # from control.quota (already "failsafe" if the quota source is silent)
    grid_fresh: bool
    grid_import_kw: float  # measured; ignored when not fresh
    rig_power_w: float  # rig power now (freshest readings), all rigs
    worst_case_rig_power_w: float  # nominal for every rig not known to be asleep
    max_rig_power_w: float = math.inf  # most the fleet can draw: the budget never exceeds it
    # Power the last plan gave the same rigs that rig_power_w sums. Rig readings lag (rigs
    # are polled slowly): while they disagree with the plan the error is a transient, not
    # unmodelled load, and is not integrated. None: always integrate.
    planned_rig_power_w: float | None = None
    # Commands went out recently and rigs are still moving: the meter and the readings may
    # be taken either side of a change, so their difference is timing, not load.
    moving: bool = False
    # rig_power_w with every rig not yet seen to obey an outstanding command counted at its
    # measured or nominal power, whichever is higher. None: same as rig_power_w.
    distrusted_rig_power_w: float | None = None
    # Every rig moving heads down but the raises counted in rising_w, so no rig draws less
    # than the lower of its reading and its plan (a rig still rising could, the readings
    # being older). In-flight sheds only lower the meter.
    falling: bool = False
    # The power the raises still in flight may add (W): the least rig power the site can be
    # drawing is taken that much lower, so a few raises in flight on a large fleet do not
    # stop a correction the meter does not show from being given back, and give nothing away.
    rising_w: float = 0.0
    # Rig power no longer counted since last step with no rig changing: rigs counted at
    # nominal and now at their reading (verification saw them obey, a retry released them).
    # The integral had given back what the meter showed they did not draw; it takes that
    # back at once, or the planner hands the same power out twice.
    uncounted_w: float = 0.0


@dataclass(frozen=True)
class LoopDecision:
    rig_budget_w: float
    limit: EffectiveLimit  # the limit actually used (fail-safe applied)
    target_import_kw: float
    predicted_import_kw: float
    error_kw: float  # measured - predicted (0 when stale)
    correction_kw: float
    failsafe: bool  # plan with every rig not known asleep at nominal power
    shedding: bool  # measured import over the limit: budget cut at once
    ramp_limited: bool
    # Over the limit for more than OVER_CYCLES_TO_DISTRUST steps: the cut was made with rigs
    # not seen to obey counted at measured-or-nominal power; plan them that way too.
    distrust: bool = False


def predicted_import_kw(rig_power_w: float, config: LoopConfig) -> float:
    return rig_power_w / 1000.0 * (1.0 + config.aux_fraction) + config.aux_base_kw


def budget_for_import_kw(import_kw: float, correction_kw: float, config: LoopConfig) -> float:
    """Rig power (W) at which the model predicts import_kw, given the correction."""
    rig_kw = (import_kw - config.aux_base_kw - correction_kw) / (1.0 + config.aux_fraction)
    return max(0.0, rig_kw * 1000.0)


def hold_raise(state: LoopState, budget_before_w: float) -> LoopState:
    """The raise this step made, taken back while raises wait for sheds to land: the budget
    must not keep ramping meanwhile, or every raise held lands at once when released,
    faster than the ramp allows. A raise taken back got through the deadband, so it is not
    noise: it goes through again next step. Held by the deadband anew, the plan without
    it undid the sheds sent for it: a dip every DEADBAND_RAISE_CYCLES steps and the raise
    never made (issue 19: 0.6 kW of a 206 kW block, 98.51 % used)."""
    if state.budget_w is None:
        return state
    held_raise_cycles = state.held_raise_cycles
    if state.budget_w > budget_before_w:
        held_raise_cycles = DEADBAND_RAISE_CYCLES - 1
    return replace(
        state,
        budget_w=min(state.budget_w, budget_before_w),
        raised_w=0.0,
        held_raise_cycles=held_raise_cycles,
    )


def _clamp(x: float, bound: float) -> float:
    return max(-bound, min(bound, x))


def step(
    state: LoopState, inputs: LoopInputs, config: LoopConfig
) -> tuple[LoopState, LoopDecision]:
    if state.t_s is None:
        dt_s = config.interval_s
    else:
        dt_s = min(max(inputs.t_s - state.t_s, 0.0), _MAX_DT_FACTOR * config.interval_s)
    limit = inputs.limit
    failsafe = not inputs.grid_fresh or limit.origin == "failsafe"
    if failsafe and limit.limit_kw > config.failsafe_limit_kw:
        limit = EffectiveLimit(config.failsafe_limit_kw, "failsafe", limit.quota_id)
    elif failsafe:
        limit = EffectiveLimit(limit.limit_kw, "failsafe", limit.quota_id)
    target_kw = limit.limit_kw - config.margin_kw
    integral = state.integral_kw
    shedding = False
    jumped = False
    planned = inputs.planned_rig_power_w
    consistent = planned is None or abs(inputs.rig_power_w - planned) / 1000.0 <= max(
        config.settle_tolerance_kw, 0.02 * planned / 1000.0
    )
    settled = consistent and not inputs.moving

    over = inputs.grid_fresh and inputs.grid_import_kw > limit.limit_kw
    over_cycles = state.over_cycles + 1 if over else 0
    slope = state.error_slope.slope()
    anchor_w = state.anchor_w
    at_point = inputs.grid_fresh and settled and not over
    if at_point:
        # At an operating point the integral is the error here. Come up from the last one,
        # it is carried up the learnt slope first: a level learnt lower lends what is not
        # there. Come down, it is kept (too high: less budget, given back from below).
        if anchor_w is not None and inputs.rig_power_w > anchor_w:
            carried_kw = integral + slope * (inputs.rig_power_w - anchor_w) / 1000.0
            integral = _clamp(carried_kw, config.correction_max_kw)
        anchor_w = inputs.rig_power_w
    if inputs.grid_fresh and inputs.uncounted_w > 0.0:
        # As far as the meter shows it: the error on the counting now bounds the take-back
        # (rigs only just marked had nothing given back yet). 21 rigs cleared at once in a
        # 1,000-rig benchmark put the site 26 kW over its limit (issue 19).
        back_kw = inputs.uncounted_w / 1000.0 * (1.0 + config.aux_fraction)
        error_now_kw = inputs.grid_import_kw - predicted_import_kw(inputs.rig_power_w, config)
        integral = _clamp(
            max(integral, min(integral + back_kw, error_now_kw)), config.correction_max_kw
        )
    distrust = over_cycles > OVER_CYCLES_TO_DISTRUST
    rig_power_w = inputs.rig_power_w
    if distrust and inputs.distrusted_rig_power_w is not None:
        rig_power_w = max(rig_power_w, inputs.distrusted_rig_power_w)
    # Rigs moving: the meter reading may predate a change the readings already show, so the
    # meter's excess is judged against the rig power it may still be seeing (last step's).
    seen_w = rig_power_w
    if inputs.moving and state.rig_power_w is not None:
        seen_w = max(rig_power_w, state.rig_power_w)

    if inputs.grid_fresh:
        predicted = predicted_import_kw(rig_power_w, config)
        error = inputs.grid_import_kw - predicted
        innovation = error - integral
        # Rigs still moving to their plan: their readings lag, the error is not load.
        correction = integral + (config.kp * innovation if settled else 0.0)
        if over and (consistent or distrust):
            # Over the limit: the budget is cut by the measured excess below.
            shedding = True
        if over and consistent:
            # Readings agree with the plan, so the error is load: take it all now.
            jumped = True
            seen_error = inputs.grid_import_kw - predicted_import_kw(seen_w, config)
            integral = _clamp(max(integral, seen_error), config.correction_max_kw)
            correction = max(correction, seen_error)
            anchor_w = inputs.rig_power_w  # the level now belongs here
    else:
        # Worst case: every rig not known asleep at nominal; keep only a pessimistic correction.
        predicted = predicted_import_kw(inputs.worst_case_rig_power_w, config)
        error = 0.0
        innovation = 0.0
        correction = max(integral, 0.0)

    wanted_w = budget_for_import_kw(target_kw, correction, config)
    if slope > 0.0 and anchor_w is not None and wanted_w > anchor_w:
        # Above the point the correction was learnt at, it grows along the slope: the rise
        # is what the model plus the slope allow (the correction reported is the one used).
        f = 1.0 + config.aux_fraction
        wanted_w = anchor_w + (wanted_w - anchor_w) * f / (f + slope)
        correction += slope * (wanted_w - anchor_w) / 1000.0
    wanted_w = min(wanted_w, inputs.max_rig_power_w)
    if shedding:
        excess_kw = inputs.grid_import_kw - target_kw
        cut_w = seen_w - excess_kw * 1000.0 / (1.0 + config.aux_fraction)
        wanted_w = min(wanted_w, max(0.0, cut_w))
    if not inputs.grid_fresh:
        wanted_w = min(wanted_w, budget_for_import_kw(target_kw, correction, config))

    prev_w = state.budget_w
    if prev_w is None:
        prev_w = min(inputs.rig_power_w, wanted_w)  # start from what runs, ramp from there
    prev_w = min(prev_w, inputs.max_rig_power_w)
    # One interval's ramp at most: a stall's time is not banked. Spent at once after a 4 s
    # pause it lands 4 s of ramp in one step, and the import climbs faster than the ramp.
    ramp_s = min(dt_s, config.interval_s)
    ramp_w = config.ramp_up_kw_per_s * ramp_s * 1000.0 / (1.0 + config.aux_fraction)
    if state.rig_power_w is not None:
        # Rigs woken earlier arrive late (wake time) while profile steps arrive at once: power
        # that rose more than the budget did last step is taken off this step's ramp.
        late_w = (inputs.rig_power_w - state.rig_power_w) - state.raised_w
        ramp_w = max(0.0, ramp_w - max(0.0, late_w))
    ramp_limited = wanted_w > prev_w + ramp_w
    budget_w = prev_w + ramp_w if ramp_limited else wanted_w
    deadband_w = config.deadband_kw * 1000.0 / (1.0 + config.aux_fraction)
    held_raise_cycles = 0
    if (
        state.budget_w is not None
        and not over
        and inputs.grid_fresh
        and abs(budget_w - prev_w) < deadband_w
        and prev_w <= inputs.max_rig_power_w
    ):
        if budget_w <= prev_w:
            budget_w = prev_w
        elif state.held_raise_cycles + 1 < DEADBAND_RAISE_CYCLES:
            held_raise_cycles = state.held_raise_cycles + 1
            budget_w = prev_w

    # Conditional integration: only on a fresh meter, with rigs at their plan, not when it
    # jumped, and not upward while the ramp holds the budget (that would store a surge for
    # later). Anti-windup holds a raise, never a shed: over the limit the integral follows
    # a larger error at its rate even while rigs are moving.
    # Over the limit with rigs moving, the error is judged like the excess: against the rig
    # power the meter may still be seeing. On the readings now, a cut that shows in them
    # before the meter read as load: the integral rose 3.3 kW in two cycles of a 75 % to
    # 45 % cut and kept the next block 1-3 kW under its target (issue 19).
    over_innovation = innovation
    if over and not settled and inputs.grid_fresh:
        over_innovation = inputs.grid_import_kw - predicted_import_kw(seen_w, config) - integral
    below = inputs.grid_fresh and settled and not over and innovation < 0.0
    if below:
        below_cycles = state.below_cycles + 1
    elif inputs.grid_fresh and not settled and not over:
        below_cycles = state.below_cycles  # rigs moving tell nothing either way: keep count
    else:
        below_cycles = 0
    if (
        inputs.grid_fresh
        and not jumped
        and (settled or (over and over_innovation > 0.0))
        and not (ramp_limited and innovation < 0.0)
    ):
        rate = config.ki * dt_s
        if settled and not over and innovation < 0.0 and below_cycles >= BELOW_CYCLES_TO_GIVE:
            # From below: rigs at their plan and the meter under what the model plus the
            # correction predict (a correction learnt at a cut from timing, a rig counted at
            # nominal that draws less): give it back at the kp pace, not ki's, or the site
            # sits under its limit for minutes. Raising stays ramp-limited and the next
            # cycle's meter judges it, so this never raises over the limit.
            rate = max(rate, config.kp)
        learnt = innovation if settled else over_innovation
        integral = _clamp(integral + min(1.0, rate) * learnt, config.correction_max_kw)
    elif (
        inputs.grid_fresh
        and not over
        and not settled
        and planned is not None
        and state.rig_power_w is not None
    ):
        # Rigs moving: the error is not the load (readings and meter straddle a change), but
        # the meter bounds it from both sides.
        if inputs.falling and not ramp_limited:
            # At most the meter less the least rig power the site can be drawing: the
            # readings before and now, and the plan the rigs head to, less what raises in
            # flight may still add. A correction above that (learnt from a cut's timing) is
            # given back now, at ki's pace, never below what the meter justifies; else it sits
            # on the site for as long as a large fleet has commands in flight (always).
            least_w = min(inputs.rig_power_w, state.rig_power_w, planned) - inputs.rising_w
            load_max_kw = inputs.grid_import_kw - predicted_import_kw(least_w, config)
            if integral > load_max_kw:
                integral -= min(1.0, config.ki * dt_s) * (integral - load_max_kw)
                integral = _clamp(integral, config.correction_max_kw)
        # At least the meter less the most rig power the site can be drawing (no rig draws
        # more than the higher of its reading and its plan). A correction below that (given
        # back from below before the move, on readings now out of date) would plan the next
        # raise on load that is there: it comes up at the kp pace, never above the meter's
        # error on the readings now, so it takes back nothing the site really has. One
        # meter sample is noisy, and only its highs passed this bound: within the deadband
        # (the meter noise the budget ignores) it is left to the settled cycles, which
        # learn both ways. Pulled at every high, the correction sat 1-2 kW above the error
        # of a block whose rigs kept moving (issue 19, the 45 % block of the scenario).
        most_w = max(inputs.rig_power_w, state.rig_power_w, planned)
        load_min_kw = inputs.grid_import_kw - predicted_import_kw(most_w, config)
        load_min_kw -= config.deadband_kw
        if integral < load_min_kw:
            integral += min(1.0, config.kp) * (load_min_kw - integral)
            integral = _clamp(integral, config.correction_max_kw)

    decision = LoopDecision(
        rig_budget_w=budget_w,
        limit=limit,
        target_import_kw=target_kw,
        predicted_import_kw=predicted,
        error_kw=error,
        correction_kw=correction,
        failsafe=failsafe,
        shedding=shedding,
        ramp_limited=ramp_limited,
        distrust=distrust,
    )
    new_state = LoopState(
        t_s=inputs.t_s,
        budget_w=budget_w,
        integral_kw=integral,
        rig_power_w=inputs.rig_power_w,
        raised_w=max(0.0, budget_w - prev_w),
        over_cycles=over_cycles,
        below_cycles=below_cycles,
        held_raise_cycles=held_raise_cycles,
        anchor_w=anchor_w,
        error_slope=(
            state.error_slope.add(inputs.rig_power_w / 1000.0, error, dt_s)
            if at_point
            else state.error_slope
        ),
    )
    return new_state, decision
