"""A negative correction is not lent to a raise to a new operating point (issue 19).

The model's error moves with the load: in a traced utilization run the loop learnt -1.8 kW
at a 30 % block (the meter read less than the model), planned the 75 % block with it, and
the meter there showed +1.3 kW: the raise went 0.07 kW over the limit. A target that rises
by more than the margin now plans without a negative correction; a positive one (load the
meter saw) is kept; a small rise (an award's pace moving) keeps either.
"""

from __future__ import annotations

import pytest

from minerd.control.loop import (
    BELOW_CYCLES_TO_GIVE,
    LoopConfig,
    LoopInputs,
    LoopState,
    budget_for_import_kw,
    step,
)
from minerd.model import EffectiveLimit

CONFIG = LoopConfig(
    margin_kw=1.5,
    aux_base_kw=10.0,
    aux_fraction=0.05,
    ramp_up_kw_per_s=500.0,  # no ramp holds the raise: the budget goes where the model says
    failsafe_limit_kw=50.0,
    kp=0.5,
    ki=0.05,
)
RIG_W = 100_000.0
MODEL_KW = RIG_W / 1000.0 * 1.05 + 10.0  # what the model predicts for 100 kW of rigs


def _inputs(t_s: float, limit_kw: float, error_kw: float) -> LoopInputs:
    """Rigs settled at their plan; the meter reads the model plus error_kw."""
    return LoopInputs(
        t_s=t_s,
        limit=EffectiveLimit(limit_kw, "quota", "q"),
        grid_fresh=True,
        grid_import_kw=MODEL_KW + error_kw,
        rig_power_w=RIG_W,
        worst_case_rig_power_w=RIG_W * 2,
        planned_rig_power_w=RIG_W,
    )


def _settled_at(limit_kw: float, integral_kw: float) -> LoopState:
    return LoopState(
        t_s=0.0,
        budget_w=RIG_W,
        integral_kw=integral_kw,
        rig_power_w=RIG_W,
        target_kw=limit_kw - CONFIG.margin_kw,
    )


def test_a_raise_to_a_new_level_plans_without_a_negative_correction() -> None:
    low_kw = MODEL_KW - 1.8 + CONFIG.margin_kw  # the site sits at its target, 1.8 kW under
    state = _settled_at(low_kw, -1.8)
    high_kw = 250.0
    state, d = step(state, _inputs(1.0, high_kw, -1.8), CONFIG)
    assert d.correction_kw == 0.0
    assert d.rig_budget_w == pytest.approx(
        budget_for_import_kw(high_kw - CONFIG.margin_kw, 0.0, CONFIG)
    )
    # The old level's error is not integrated on the way either.
    assert state.integral_kw == 0.0 and state.below_cycles == 0


def test_settled_at_the_new_level_the_meter_gives_it_back() -> None:
    state = _settled_at(100.0, -1.8)
    high_kw = 250.0
    state, _ = step(state, _inputs(1.0, high_kw, -1.8), CONFIG)
    for k in range(2, 2 + BELOW_CYCLES_TO_GIVE + 6):
        state, d = step(state, _inputs(float(k), high_kw, -1.8), CONFIG)
    assert d.correction_kw == pytest.approx(-1.8, abs=0.05)


def test_a_positive_correction_is_kept_across_a_raise() -> None:
    state = _settled_at(100.0, 2.0)
    _, d = step(state, _inputs(1.0, 250.0, 2.0), CONFIG)
    assert d.correction_kw == pytest.approx(2.0)


def test_a_rise_within_the_margin_keeps_a_negative_correction() -> None:
    # An award's pace moves the target a little every cycle: not a new operating point.
    state = _settled_at(200.0, -1.8)
    _, d = step(state, _inputs(1.0, 200.0 + CONFIG.margin_kw * 0.9, -1.8), CONFIG)
    assert d.correction_kw == pytest.approx(-1.8)


def test_a_restored_state_without_a_target_keeps_its_correction() -> None:
    state = LoopState(t_s=0.0, budget_w=RIG_W, integral_kw=-1.8, rig_power_w=RIG_W)
    _, d = step(state, _inputs(1.0, 250.0, -1.8), CONFIG)
    assert d.correction_kw == pytest.approx(-1.8)
