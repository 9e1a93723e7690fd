"""The planner on a rising budget (PlanConstraints.hold_awake, issue 19: a raised limit is
followed at the ramp's pace): no awake rig is lowered, a rig to wake is woken at its first
awake point as soon as the increment pays for it, and awake rigs wait for the wakes unless
the wakes allowed this cycle cannot take the headroom. Safety stays first: a budget below
the rigs' current points, or a hot rig, still lowers them.

PROFILE_RIG: sleep 20 W; p2000 80 TH/s, p2600 96 TH/s, p3200 108 TH/s."""

from __future__ import annotations

import pytest
from control_models import PROFILE_RIG

from minerd.control.planner import Plan, PlanConstraints, PlanRig, plan
from minerd.model import RigState

FREE = PlanConstraints()
RISING = PlanConstraints(hold_awake=True)


def awake(rid: str, power_w: float, **kw: object) -> PlanRig:
    return PlanRig(
        rid,
        PROFILE_RIG,
        True,
        power_w,
        RigState.HASHING,
        setpoint_power_w=power_w,
        setpoint_profile=f"p{int(power_w)}",
        **kw,  # type: ignore[arg-type]
    )


def asleep(rid: str) -> PlanRig:
    return PlanRig(rid, PROFILE_RIG, False, 20.0, RigState.SLEEPING)


def powers(p: Plan) -> dict[str, float]:
    return {s.rig_id: s.power_w for s in p.setpoints}


def lowered(p: Plan, rigs: list[PlanRig]) -> list[str]:
    got = powers(p)
    return [r.rig_id for r in rigs if r.awake and got[r.rig_id] < (r.setpoint_power_w or 0.0)]


def test_an_increment_short_of_a_wake_lowers_nobody_and_raises_nobody() -> None:
    rigs = [awake(f"a{i}", 2600.0) for i in range(4)] + [asleep("s0"), asleep("s1")]
    budget_w = 4 * 2600 + 2 * 20 + 960.0  # a wake costs 1,980 W
    free = plan(budget_w, rigs, FREE)
    # Steady state would pay for a wake by lowering two rigs: the dip a raise must avoid.
    assert lowered(free, rigs) and free.wakes == 1
    held = plan(budget_w, rigs, RISING)
    assert lowered(held, rigs) == [] and held.wakes == 0
    assert [powers(held)[f"a{i}"] for i in range(4)] == [2600.0] * 4  # saved for the wake
    assert held.planned_power_w <= budget_w


def test_an_increment_that_pays_for_a_wake_wakes_at_the_first_point() -> None:
    rigs = [awake(f"a{i}", 2600.0) for i in range(4)] + [asleep("s0"), asleep("s1")]
    budget_w = 4 * 2600 + 2 * 20 + 1980.0 + 500.0
    held = plan(budget_w, rigs, RISING)
    assert held.wakes == 1 and lowered(held, rigs) == []
    woken = [s for s in held.setpoints if s.rig_id.startswith("s") and s.awake]
    assert len(woken) == 1 and woken[0].profile == "p2000"
    assert [powers(held)[f"a{i}"] for i in range(4)] == [2600.0] * 4


def test_with_no_rig_to_wake_awake_rigs_only_rise() -> None:
    rigs = [awake("a0", 3200.0), awake("a1", 3200.0), awake("a2", 2000.0), awake("a3", 2000.0)]
    budget_w = 2 * 3200 + 2 * 2000 + 100.0
    # Four at p2600 is more hashrate for the same power, but it lowers two rigs at once.
    assert lowered(plan(budget_w, rigs, FREE), rigs)
    held = plan(budget_w, rigs, RISING)
    assert lowered(held, rigs) == []
    assert held.planned_power_w == pytest.approx(2 * 3200 + 2 * 2000)


def test_headroom_past_the_wakes_allowed_goes_to_awake_rigs() -> None:
    rigs = [awake(f"a{i}", 2000.0) for i in range(4)] + [asleep("s0"), asleep("s1")]
    one_wake = PlanConstraints(hold_awake=True, max_wakes_per_cycle=1)
    budget_w = 4 * 2000 + 2 * 20 + 1980.0 + 1200.0
    held = plan(budget_w, rigs, one_wake)
    assert held.wakes == 1 and lowered(held, rigs) == []
    raised = [r for r in rigs if r.awake and powers(held)[r.rig_id] > 2000.0]
    assert len(raised) == 2  # 1,200 W the one wake could not take: two steps to p2600


def test_a_budget_below_the_current_points_still_cuts() -> None:
    rigs = [awake(f"a{i}", 3200.0) for i in range(4)] + [asleep("s0")]
    held = plan(8000.0, rigs, RISING)
    assert held.planned_power_w <= 8000.0 and held.shortfall_w == 0.0
    assert lowered(held, rigs)
    # The plan says the hold was let go (the scenarios' traces show it).
    assert not held.held_awake


def test_the_plan_says_whether_the_hold_applied() -> None:
    rigs = [awake(f"a{i}", 2600.0) for i in range(4)] + [asleep("s0")]
    budget_w = 4 * 2600 + 20 + 500.0
    assert plan(budget_w, rigs, RISING).held_awake
    assert not plan(budget_w, rigs, FREE).held_awake


def test_a_hot_rig_still_steps_down_on_a_rising_budget() -> None:
    rigs = [awake("hot", 3200.0, chip_temp_c=90.0), awake("a1", 2600.0), asleep("s0")]
    held = plan(3200 + 2600 + 20 + 500.0, rigs, RISING)
    assert powers(held)["hot"] < 3200.0
    assert powers(held)["a1"] == 2600.0


def test_a_held_rig_that_no_point_pays_for_may_still_sleep() -> None:
    """Economics on a rising budget: at 20 J/TH none of PROFILE_RIG's points (25-30 J/TH) pays,
    so held rigs are not kept awake at their lowest point; the price sleeps them."""
    rigs = [awake(f"a{i}", 2600.0) for i in range(4)]
    priced = PlanConstraints(hold_awake=True, max_j_per_th=20.0)
    p = plan(4 * 3200.0, rigs, priced)
    assert all(not s.awake for s in p.setpoints)
    # Where a point pays (26 J/TH: p2000 only), a held rig above it steps down to it.
    p = plan(4 * 3200.0, rigs, PlanConstraints(hold_awake=True, max_j_per_th=26.0))
    assert [s.profile for s in p.setpoints] == ["p2000"] * 4
