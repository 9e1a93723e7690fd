"""Closed-loop behaviour over many cycles against the simulated plant in control_plant.py."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
from control_models import CURVE_RIG, PROFILE_RIG
from control_plant import SimRig, Site

from minerd.control.loop import (
    DEADBAND_RAISE_CYCLES,
    LoopConfig,
    LoopInputs,
    LoopState,
    hold_raise,
    step,
)
from minerd.control.planner import PlanConstraints
from minerd.model import EffectiveLimit, RigModel

CONFIG = LoopConfig(
    margin_kw=3.0,
    aux_base_kw=10.0,  # the model is a bit wrong on purpose: the meter loop must fix it
    aux_fraction=0.05,
    ramp_up_kw_per_s=2.0,
    failsafe_limit_kw=100.0,
    kp=0.3,
    ki=0.3,
    correction_max_kw=50.0,
)
CONSTRAINTS = PlanConstraints(min_on_s=30.0, min_off_s=10.0, max_wakes_per_cycle=5)


def site(model: RigModel, n: int = 100, **kw: float) -> Site:
    rigs = [
        SimRig(f"r{i:03d}", model, model.nominal_power_w, True, model.nominal_power_w)
        for i in range(n)
    ]
    return Site(rigs, CONFIG, CONSTRAINTS, **kw)  # type: ignore[arg-type]


def run(s: Site, seconds: int, limit_kw: float) -> None:
    for _ in range(seconds):
        s.cycle(limit_kw)


@pytest.mark.parametrize("model", [PROFILE_RIG, CURVE_RIG], ids=["profiles", "curve"])
def test_limit_cut_to_30_percent(model: RigModel) -> None:
    s = site(model)
    run(s, 90, 300.0)
    assert s.history[-1][1] <= 300.0
    start = len(s.history)
    t_cut = s.t_s
    run(s, 120, 90.0)  # 30 %
    settle_s = model.sleep_time_s + 2
    after = [(t, imp) for t, imp, _, _ in s.history[start:] if t >= t_cut + settle_s]
    assert after, "no samples after settling"
    worst = max(imp for _, imp in after)
    assert worst <= 90.0, f"import {worst:.1f} kW over the 90 kW limit after {settle_s} s"
    # And it does not give away the whole quota: settles within a few % of the target.
    final = [imp for t, imp, _, _ in s.history[-30:]]
    assert sum(final) / len(final) >= 0.9 * 90.0


@pytest.mark.parametrize("model", [PROFILE_RIG, CURVE_RIG], ids=["profiles", "curve"])
def test_limit_raise_follows_ramp_without_crossing(model: RigModel) -> None:
    s = site(model)
    run(s, 60, 90.0)
    start = len(s.history)
    run(s, 240, 300.0)
    series = [(t, imp) for t, imp, _, _ in s.history[start:]]
    assert max(imp for _, imp in series) <= 300.0
    # Climb rate over 30 s and 60 s windows: the ramp (the plant's aux is 1 % above the model),
    # plus one rig step (a wake lands whole) and the meter noise at both ends.
    step_kw = (model.profiles[0].power_w if model.profiles else model.min_power_w) / 1000 * 1.06
    slack_kw = step_kw + 2 * s.noise_kw
    for window in (30, 60):
        for (t0, a), (t1, b) in zip(series, series[window:], strict=False):
            assert b - a <= CONFIG.ramp_up_kw_per_s * 1.02 * (t1 - t0) + slack_kw, (t0, t1)
    final = [imp for _, imp in series[-30:]]
    assert sum(final) / len(final) >= 0.97 * 300.0


def test_unmodelled_load_over_limit_is_shed_at_once() -> None:
    s = site(PROFILE_RIG)
    run(s, 90, 300.0)
    s.unmodelled_kw = 40.0  # a chiller starts: import jumps over the limit
    start = len(s.history)
    t0 = s.t_s
    run(s, 60, 300.0)
    d = s.history[start][3]
    assert d.shedding and d.rig_budget_w < s.history[start - 1][3].rig_budget_w - 30_000
    late = [imp for t, imp, _, _ in s.history[start:] if t >= t0 + PROFILE_RIG.sleep_time_s + 2]
    assert max(late) <= 300.0
    # The integral learnt the load: no re-crossing later.
    # True unmodelled import: the chiller + aux base error (2 kW) + aux fraction error (1 %).
    expected = 40.0 + 2.0 + 0.01 * s.rig_power_w() / 1000
    assert s.state.integral_kw == pytest.approx(expected, abs=1.0)


def test_stale_meter_sheds_to_failsafe() -> None:
    s = site(PROFILE_RIG)
    run(s, 60, 300.0)
    s.grid_fresh = False
    start = len(s.history)
    t0 = s.t_s
    run(s, 40, 300.0)
    decisions = [d for _, _, _, d in s.history[start:]]
    assert all(d.failsafe and d.limit.origin == "failsafe" for d in decisions)
    assert all(d.limit.limit_kw == CONFIG.failsafe_limit_kw for d in decisions)
    assert decisions[0].rig_budget_w <= (100.0 - 3.0 - 10.0) / 1.05 * 1000 + 1e-6
    late = [imp for t, imp, _, _ in s.history[start:] if t >= t0 + PROFILE_RIG.sleep_time_s + 2]
    assert len(late) > 20 and max(late) <= CONFIG.failsafe_limit_kw
    # Meter back: the loop leaves fail-safe and ramps up again.
    s.grid_fresh = True
    d = s.cycle(300.0)
    assert not d.failsafe and d.limit.limit_kw == 300.0


def test_step_is_pure_and_ramps_from_running_power() -> None:
    limit = EffectiveLimit(500.0, "quota", "q")
    inputs = LoopInputs(
        t_s=100.0,
        limit=limit,
        grid_fresh=True,
        grid_import_kw=110.0,
        rig_power_w=100_000.0,
        worst_case_rig_power_w=200_000.0,
    )
    s1, d1 = step(LoopState(), inputs, CONFIG)
    s1b, d1b = step(LoopState(), inputs, CONFIG)
    assert (s1, d1) == (s1b, d1b)
    # First step: budget may rise from running power by at most one ramp step.
    assert d1.ramp_limited
    assert d1.rig_budget_w == pytest.approx(100_000.0 + 2.0 * 1000 / 1.05)
    # Limit drops far below: the budget follows at once (no ramp on the way down).
    low = LoopInputs(101.0, EffectiveLimit(50.0, "quota", "q2"), True, 110.0, 100_000.0, 2e5)
    _, d2 = step(s1, low, CONFIG)
    assert d2.shedding and not d2.ramp_limited
    # error -5 kW (less load than modelled): correction -0.3*5, budget from the model.
    assert d2.rig_budget_w == pytest.approx((47.0 - 10.0 + 1.5) / 1.05 * 1000)


def test_a_stall_banks_no_ramp() -> None:
    """A cycle 4 s after the last (the daemon stalled) raises one interval's ramp, not 4 s
    of it at once: nothing rose during the stall, and the import must not climb faster."""
    limit = EffectiveLimit(500.0, "quota", "q")
    first = LoopInputs(100.0, limit, True, 110.0, 100_000.0, 200_000.0)
    s1, d1 = step(LoopState(), first, CONFIG)
    late = replace(first, t_s=104.0, rig_power_w=d1.rig_budget_w)
    _, d2 = step(s1, late, CONFIG)
    assert d2.ramp_limited
    one_interval_w = CONFIG.ramp_up_kw_per_s * CONFIG.interval_s * 1000 / 1.05
    assert d2.rig_budget_w - d1.rig_budget_w == pytest.approx(one_interval_w)


def test_integral_is_clamped() -> None:
    state = LoopState()
    for k in range(200):
        inputs = LoopInputs(
            float(k), EffectiveLimit(10_000.0, "quota", "q"), True, 1000.0, 100_000.0, 1e5
        )
        state, d = step(state, inputs, CONFIG)
    assert state.integral_kw == CONFIG.correction_max_kw
    assert math.isfinite(d.rig_budget_w)


def test_deadband_stops_noise_from_moving_rigs() -> None:
    def moves(deadband_kw: float) -> tuple[int, float]:
        s = site(PROFILE_RIG)
        s.config = replace(CONFIG, deadband_kw=deadband_kw)
        s.noise_kw = 1.0
        run(s, 150, 300.0)
        budgets = [d.rig_budget_w for _, _, _, d in s.history[-60:]]
        changes = sum(a != b for a, b in itertools.pairwise(budgets))
        return changes, max(imp for _, imp, _, _ in s.history[-60:])

    noisy, worst_noisy = moves(0.0)
    calm, worst_calm = moves(2.0)
    assert noisy > 30 and calm <= 5
    assert worst_noisy <= 300.0 and worst_calm <= 300.0


def test_lagging_rig_readings_do_not_fool_the_integral() -> None:
    # Rigs are polled every 15 s (staggered): after a cut their readings stay high for a while.
    def worst_after_cut(use_planned: bool) -> float:
        s = site(PROFILE_RIG)
        s.reading_interval_s = 15
        s.use_planned = use_planned
        run(s, 120, 300.0)
        start = len(s.history)
        t_cut = s.t_s
        run(s, 120, 90.0)
        late = PROFILE_RIG.sleep_time_s + 2
        return max(imp for t, imp, _, _ in s.history[start:] if t >= t_cut + late)

    assert worst_after_cut(use_planned=True) <= 90.0


def _falling_inputs(t_s: float, import_kw: float, falling: bool) -> LoopInputs:
    # 100 kW of rigs planned and read, a limit they about fill (no ramp holding the budget).
    return LoopInputs(
        t_s=t_s,
        limit=EffectiveLimit(118.0, "quota", "q"),
        grid_fresh=True,
        grid_import_kw=import_kw,
        rig_power_w=100_000.0,
        worst_case_rig_power_w=150_000.0,
        planned_rig_power_w=100_000.0,
        moving=True,
        falling=falling,
    )


def test_a_cut_correction_is_given_back_while_rigs_still_fall() -> None:
    # A cut taught the loop 3 kW of "load" that was timing; rigs are still falling (moving).
    # The meter allows at most -2 kW of load given the least power the rigs can draw: the
    # correction comes down to that bound while they fall, never below it.
    meter_kw = 100.0 * 1.05 + 10.0 - 2.0  # the load is 2 kW under the model
    state = LoopState(t_s=0.0, budget_w=100_000.0, integral_kw=3.0, rig_power_w=100_000.0)
    seen = []
    for k in range(1, 30):
        state, _ = step(state, _falling_inputs(float(k), meter_kw, falling=True), CONFIG)
        seen.append(state.integral_kw)
    assert seen[0] < 3.0 and seen[-1] == pytest.approx(-2.0, abs=0.01)
    assert min(seen) >= -2.0 - 1e-9
    # A raise still in flight: a rising rig may draw less than its reading, so no bound holds.
    state = LoopState(t_s=0.0, budget_w=100_000.0, integral_kw=3.0, rig_power_w=100_000.0)
    for k in range(1, 30):
        state, _ = step(state, _falling_inputs(float(k), meter_kw, falling=False), CONFIG)
    assert state.integral_kw == 3.0


def test_falling_rigs_never_lower_the_correction_below_a_real_load() -> None:
    # Readings still show rigs high (120 kW) while they fall to the 100 kW planned; the meter
    # sees them part way (110 kW) plus 5 kW of real unmodelled load: the bound uses the plan.
    state = LoopState(t_s=0.0, budget_w=120_000.0, integral_kw=5.0, rig_power_w=120_000.0)
    for k in range(1, 20):
        inputs = replace(
            _falling_inputs(float(k), 110.0 * 1.05 + 10.0 + 5.0, falling=True),
            rig_power_w=120_000.0,
            limit=EffectiveLimit(140.0, "quota", "q"),  # under it, the budget not ramp-held
        )
        state, d = step(state, inputs, CONFIG)
        assert not d.shedding and not d.ramp_limited
    assert state.integral_kw == 5.0


def test_a_correction_below_the_load_comes_up_while_rigs_move() -> None:
    # The loop had given back to -3 kW (meter under the model on readings since out of date);
    # the load is really -1 kW. Rigs are rising to a raise (not falling): the meter bounds
    # the load from below by the most the rigs can draw, so the correction comes up to it
    # before the next raise is planned on it, and never above the error on the readings.
    meter_kw = 100.0 * 1.05 + 10.0 - 1.0
    state = LoopState(t_s=0.0, budget_w=100_000.0, integral_kw=-3.0, rig_power_w=100_000.0)
    seen = []
    for k in range(1, 21):
        state, d = step(state, _falling_inputs(float(k), meter_kw, falling=False), CONFIG)
        assert not d.shedding
        seen.append(state.integral_kw)
    assert seen[0] > -3.0 and seen[-1] == pytest.approx(-1.0, abs=0.01)
    assert max(seen) <= -1.0 + 1e-9
    # Rigs heading to a plan above their readings: the bound counts them at the plan, so a
    # meter that has not seen them rise yet raises nothing.
    state = LoopState(t_s=0.0, budget_w=120_000.0, integral_kw=-3.0, rig_power_w=100_000.0)
    for k in range(1, 12):
        inputs = replace(
            _falling_inputs(float(k), meter_kw, falling=False), planned_rig_power_w=120_000.0
        )
        state, _ = step(state, inputs, CONFIG)
    assert state.integral_kw == -3.0


def test_meter_noise_does_not_pull_the_correction_up_while_rigs_move() -> None:
    # The correction has learnt the load (-2 kW); rigs keep moving, so only the meter's
    # lower bound acts. Its noise (+-0.8 kW, inside the 1 kW deadband) once pulled the
    # correction up at every high sample and never down: it sat above the load and the site
    # under its limit. A load really higher than the deadband still comes up, to within it.
    config = replace(CONFIG, deadband_kw=1.0)
    model_kw = 100.0 * 1.05 + 10.0
    state = LoopState(t_s=0.0, budget_w=100_000.0, integral_kw=-2.0, rig_power_w=100_000.0)
    for k in range(1, 41):
        noise_kw = 0.8 if k % 2 else -0.8
        inputs = _falling_inputs(float(k), model_kw - 2.0 + noise_kw, falling=False)
        state, _ = step(state, inputs, config)
    assert state.integral_kw == -2.0
    for k in range(41, 81):
        inputs = _falling_inputs(float(k), model_kw + 2.0, falling=False)  # load now +2 kW
        state, _ = step(state, inputs, config)
    assert state.integral_kw == pytest.approx(2.0 - 1.0, abs=0.01)


def test_a_lasting_raise_gets_through_the_deadband() -> None:
    # Settled, the budget 0.5 kW under what the target allows: within the 1 kW deadband.
    # Noise alternates and is held; a raise wanted DEADBAND_RAISE_CYCLES steps in a row is
    # a lasting offset and goes through (held for good, it was unused power at one limit).
    config = replace(CONFIG, deadband_kw=1.0)
    model_kw = 100.0 * 1.05 + 10.0
    limit_kw = model_kw + config.margin_kw + 0.5  # the target is 0.5 kW above the import
    state = LoopState(t_s=0.0, budget_w=100_000.0, integral_kw=0.0, rig_power_w=100_000.0)

    def settled(t_s: float, import_kw: float, limit_kw: float = limit_kw) -> LoopInputs:
        return LoopInputs(
            t_s=t_s,
            limit=EffectiveLimit(limit_kw, "quota", "q"),
            grid_fresh=True,
            grid_import_kw=import_kw,
            rig_power_w=100_000.0,
            worst_case_rig_power_w=150_000.0,
            planned_rig_power_w=100_000.0,
        )

    budgets = []
    for k in range(1, DEADBAND_RAISE_CYCLES + 1):
        state, d = step(state, settled(float(k), model_kw), config)
        budgets.append(d.rig_budget_w)
    assert budgets[:-1] == [100_000.0] * (DEADBAND_RAISE_CYCLES - 1)
    assert budgets[-1] > 100_000.0
    # Noise of +-0.6 kW around a budget on target: every other step wants a raise, none lasts.
    on_target_kw = model_kw + config.margin_kw
    state = LoopState(t_s=0.0, budget_w=100_000.0, integral_kw=0.0, rig_power_w=100_000.0)
    for k in range(1, 41):
        noisy_kw = model_kw + (0.6 if k % 2 else -0.6)
        state, d = step(state, settled(float(k), noisy_kw, on_target_kw), config)
        assert d.rig_budget_w == 100_000.0


def test_a_raise_held_for_sheds_to_land_is_not_held_again_by_the_deadband() -> None:
    # The raise got through the deadband; its plan sheds a rig first, so the cycle takes
    # the raise back while the shed lands (hold_raise). Next step it goes through again:
    # held by the deadband anew, the plan without it undid the shed, every 10 steps.
    config = replace(CONFIG, deadband_kw=1.0)
    model_kw = 100.0 * 1.05 + 10.0
    inputs = LoopInputs(
        t_s=0.0,
        limit=EffectiveLimit(model_kw + config.margin_kw + 0.5, "quota", "q"),
        grid_fresh=True,
        grid_import_kw=model_kw,
        rig_power_w=100_000.0,
        worst_case_rig_power_w=150_000.0,
        planned_rig_power_w=100_000.0,
    )
    state = LoopState(t_s=0.0, budget_w=100_000.0, rig_power_w=100_000.0)
    for k in range(1, DEADBAND_RAISE_CYCLES + 1):
        state, d = step(state, replace(inputs, t_s=float(k)), config)
    raised_w = d.rig_budget_w
    assert raised_w > 100_000.0
    for k in range(DEADBAND_RAISE_CYCLES + 1, DEADBAND_RAISE_CYCLES + 4):
        state = hold_raise(state, budget_before_w=100_000.0)  # raises wait for the shed
        assert state.budget_w == 100_000.0 and state.raised_w == 0.0
        state, d = step(state, replace(inputs, t_s=float(k)), config)
        assert d.rig_budget_w == pytest.approx(raised_w)
    # Once the shed has landed nothing is held: the budget stays where the raise took it.
    state, d = step(state, replace(inputs, t_s=float(k + 1)), config)
    assert d.rig_budget_w == pytest.approx(raised_w)
    # A fall taken back (no raise this step) leaves the deadband's count alone.
    lower = replace(state, budget_w=99_000.0, held_raise_cycles=2)
    assert hold_raise(lower, budget_before_w=100_000.0).held_raise_cycles == 2


def test_a_cut_seen_in_the_readings_first_teaches_the_loop_no_load() -> None:
    # Over the look-ahead limit while rigs fall: the readings show the cut a cycle before
    # the meter does. Judged on the readings now, the meter's lag read as 25-35 kW of load
    # and the integral rose by it; judged on the rig power the meter may still be seeing
    # (the step before's), there is none. A real surge while rigs move is still learnt.
    model_kw = 100.0 * 1.05 + 10.0
    state = LoopState(t_s=0.0, budget_w=100_000.0, integral_kw=-2.0, rig_power_w=100_000.0)

    def cut(t_s: float, import_kw: float, read_w: float) -> LoopInputs:
        return LoopInputs(
            t_s=t_s,
            limit=EffectiveLimit(75.0, "quota", "q"),
            grid_fresh=True,
            grid_import_kw=import_kw,
            rig_power_w=read_w,
            worst_case_rig_power_w=150_000.0,
            planned_rig_power_w=55_000.0,
            moving=True,
        )

    # Step 1: readings fell to 80 kW, the meter still sees 100 kW of rigs (-2 kW load).
    state, d = step(state, cut(1.0, model_kw - 2.0, 80_000.0), CONFIG)
    assert d.shedding is False and state.integral_kw == -2.0
    # Step 2: readings at 60 kW, the meter sees the 80 kW of the step before.
    state, _ = step(state, cut(2.0, 80.0 * 1.05 + 10.0 - 2.0, 60_000.0), CONFIG)
    assert state.integral_kw == -2.0
    # A surge: 6 kW more than the model on the readings the meter may still see.
    state, _ = step(state, cut(3.0, 60.0 * 1.05 + 10.0 + 6.0, 60_000.0), CONFIG)
    assert state.integral_kw == pytest.approx(-2.0 + CONFIG.ki * (6.0 + 2.0))
