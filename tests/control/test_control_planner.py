"""Planner invariants: budget, fixed rigs, min on/off, max wakes, derating, determinism."""

from __future__ import annotations

import random

import pytest
from control_models import CURVE_RIG, PROFILE_RIG, SLEEP_ONLY_RIG, make_model

from minerd.control.planner import Plan, PlanConstraints, PlanRig, plan
from minerd.model import RigModel, RigSetpoint, RigState

FREE = PlanConstraints()


def rig(
    rid: str,
    model: RigModel = PROFILE_RIG,
    *,
    awake: bool = True,
    power_w: float | None = None,
    **kw: object,
) -> PlanRig:
    if power_w is None:
        power_w = model.nominal_power_w if awake else model.sleep_power_w
    state = RigState.HASHING if awake else RigState.SLEEPING
    return PlanRig(rid, model, awake, power_w, state, **kw)  # type: ignore[arg-type]


def by_id(p: Plan) -> dict[str, RigSetpoint]:
    return {s.rig_id: s for s in p.setpoints}


def check_consistent(p: Plan, rigs: list[PlanRig]) -> None:
    assert [s.rig_id for s in p.setpoints] == [r.rig_id for r in rigs]
    assert p.planned_power_w == pytest.approx(sum(s.power_w for s in p.setpoints))
    assert p.planned_power_w <= p.budget_w + 1e-6 or p.shortfall_w > 0


def random_fleet(rng: random.Random, n: int) -> list[PlanRig]:
    models = [PROFILE_RIG, CURVE_RIG, SLEEP_ONLY_RIG]
    rigs = []
    for k in range(n):
        m = rng.choice(models)
        awake = rng.random() < 0.7
        rigs.append(
            rig(
                f"r{k:03d}",
                m,
                awake=awake,
                chip_temp_c=rng.choice([None, 60.0, 83.0, 88.0, 96.0]),
                since_switch_s=rng.choice([10.0, 1000.0]),
                maintenance=rng.random() < 0.05,
                unresponsive=rng.random() < 0.05,
            )
        )
    return rigs


@pytest.mark.parametrize("seed", range(30))
def test_planned_power_never_exceeds_budget(seed: int) -> None:
    rng = random.Random(seed)
    rigs = random_fleet(rng, rng.randint(1, 60))
    budget = rng.uniform(0, 1.2) * sum(r.model.nominal_power_w for r in rigs)
    c = PlanConstraints(min_on_s=60, min_off_s=60, max_wakes_per_cycle=rng.choice([None, 2]))
    p = plan(budget, rigs, c)
    check_consistent(p, rigs)
    fixed = sum(
        r.power_w if r.maintenance else r.model.nominal_power_w
        for r in rigs
        if r.maintenance or r.unresponsive
    )
    if p.shortfall_w > 0:
        # Only a floor of fixed rigs, sleepers and min-off rigs may exceed the budget.
        floor = fixed + sum(
            r.model.sleep_power_w for r in rigs if not (r.maintenance or r.unresponsive)
        )
        assert p.planned_power_w <= floor + 1e-6
    # Same fleet, shuffled: the same plan (deterministic, ties by rig_id).
    shuffled = rigs[:]
    rng.shuffle(shuffled)
    assert by_id(plan(budget, shuffled, c)) == by_id(p)


def test_concave_profiles_prefer_many_rigs_low() -> None:
    rigs = [rig(f"r{i}", awake=False) for i in range(3)]
    p = plan(3 * 2000 + 20, rigs, FREE)  # room for 3 x 2000 W (+ no sleepers left)
    assert [s.profile for s in p.setpoints] == ["p2000"] * 3
    assert p.hashrate_ths == pytest.approx(240.0)


def test_upgrades_go_best_marginal_first_and_fill_remainder() -> None:
    rigs = [rig(f"r{i}") for i in range(4)]
    # 4 x 2000 = 8000; 900 W left buys one 2000->2600 step (16 TH for 600 W).
    p = plan(8900, rigs, FREE)
    profiles = sorted(s.profile or "" for s in p.setpoints)
    assert profiles == ["p2000", "p2000", "p2000", "p2600"]
    assert p.planned_power_w == pytest.approx(8600)


def test_curve_rigs_use_the_budget_exactly() -> None:
    rigs = [rig(f"c{i}", CURVE_RIG) for i in range(5)]
    p = plan(9_123.0, rigs, FREE)
    assert p.planned_power_w == pytest.approx(9_123.0)
    assert all(s.awake for s in p.setpoints)
    # Equal concave curves: everyone near the same point (at most one rig partial).
    assert len({round(s.power_w) for s in p.setpoints}) <= 2


def test_pinned_and_unresponsive_are_counted_and_not_dispatched() -> None:
    rigs = [
        rig("a-maint", maintenance=True, power_w=2500.0),
        rig("b-unresp", unresponsive=True, power_w=100.0),
        PlanRig("c-offline", PROFILE_RIG, False, 3000.0, RigState.OFFLINE),
        rig("d"),
        rig("e"),
    ]
    p = plan(2500 + 3200 + 2020, rigs, FREE)
    sp = by_id(p)
    assert sp["a-maint"].power_w == 2500.0 and "maintenance" in sp["a-maint"].reason
    assert sp["b-unresp"].power_w == PROFILE_RIG.nominal_power_w  # nominal, not measured
    assert sp["c-offline"].power_w == 0.0
    assert p.fixed_power_w == pytest.approx(5700.0)
    # 2020 W left: one rig at 2000 W, the other asleep.
    assert sorted(s.power_w for s in (sp["d"], sp["e"])) == [20.0, 2000.0]
    assert p.planned_power_w <= p.budget_w


def test_min_on_holds_unless_shedding() -> None:
    rigs = [rig("a", since_switch_s=5.0), rig("b", since_switch_s=5.0), rig("c")]
    c = PlanConstraints(min_on_s=60.0)
    # Budget for two rigs at minimum: the free rig c sleeps, a and b are held awake.
    p = plan(4020, rigs, c)
    sp = by_id(p)
    assert sp["a"].awake and sp["b"].awake and not sp["c"].awake
    assert "min-on" in sp["a"].reason
    # Budget below the floor of the held rigs: shedding overrides min-on.
    p2 = plan(2100, rigs, c)
    assert p2.planned_power_w <= 2100
    assert sum(s.awake for s in p2.setpoints) == 1
    assert any("overrides min-on" in s.reason for s in p2.setpoints)


def test_min_off_keeps_rig_asleep() -> None:
    rigs = [rig("a", awake=False, since_switch_s=5.0), rig("b", awake=False, since_switch_s=500.0)]
    p = plan(10_000, rigs, PlanConstraints(min_off_s=60.0))
    sp = by_id(p)
    assert not sp["a"].awake and "min-off" in sp["a"].reason
    assert sp["b"].awake


def test_max_wakes_per_cycle_staggers_start() -> None:
    rigs = [rig(f"r{i:02d}", awake=False) for i in range(10)]
    p = plan(100_000, rigs, PlanConstraints(max_wakes_per_cycle=3))
    woken = [s.rig_id for s in p.setpoints if s.awake]
    assert woken == ["r00", "r01", "r02"] and p.wakes == 3
    assert all("max wakes" in s.reason for s in p.setpoints if not s.awake)
    # Awake rigs are not limited: they may move between profiles freely.
    awake = [rig(f"a{i}") for i in range(5)]
    p2 = plan(100_000, awake + rigs, PlanConstraints(max_wakes_per_cycle=0))
    assert sum(s.awake for s in p2.setpoints) == 5


def test_temperature_derating() -> None:
    hot = rig("hot", chip_temp_c=88.0, setpoint_power_w=3200.0, setpoint_profile="p3200")
    warm = rig("warm", chip_temp_c=83.0, setpoint_power_w=2600.0, setpoint_profile="p2600")
    tripped = rig("tripped", chip_temp_c=96.0, setpoint_power_w=3200.0)
    cool = rig("cool", chip_temp_c=60.0, setpoint_power_w=2000.0)
    p = plan(100_000, [hot, warm, tripped, cool], FREE)
    sp = by_id(p)
    assert sp["hot"].profile == "p2600" and "derated" in sp["hot"].reason  # one step down
    assert sp["warm"].profile == "p2600"  # hold band: no increase
    assert sp["tripped"].profile == "p2000"  # at max: lowest profile
    assert sp["cool"].profile == "p3200"
    # Continuous rig: steps down by the configured fraction.
    c_hot = rig("c", CURVE_RIG, chip_temp_c=90.0, setpoint_power_w=3000.0)
    p2 = plan(100_000, [c_hot], PlanConstraints(derate_step_fraction=0.1))
    assert p2.setpoints[0].power_w == pytest.approx(2700.0)


def test_zero_budget_sleeps_everything_and_reports_shortfall() -> None:
    rigs = [rig("a"), rig("b", unresponsive=True)]
    p = plan(0.0, rigs, FREE)
    sp = by_id(p)
    assert not sp["a"].awake
    assert p.shortfall_w == pytest.approx(20.0 + PROFILE_RIG.nominal_power_w)
    assert plan(float("nan"), [rig("a")], FREE).setpoints[0].awake is False


def test_replanning_with_own_setpoints_changes_nothing() -> None:
    rng = random.Random(3)
    rigs = [rig(f"r{i:02d}", rng.choice([PROFILE_RIG, CURVE_RIG])) for i in range(40)]
    budget = 70_000.0
    first = plan(budget, rigs, FREE)
    again = [
        PlanRig(
            r.rig_id,
            r.model,
            s.awake,
            s.power_w,
            RigState.HASHING if s.awake else RigState.SLEEPING,
            setpoint_power_w=s.power_w if s.awake else None,
            setpoint_profile=s.profile,
        )
        for r, s in zip(rigs, first.setpoints, strict=True)
    ]
    second = plan(budget, again, FREE)
    changed = [
        (a.rig_id, a.power_w, b.power_w)
        for a, b in zip(first.setpoints, second.setpoints, strict=True)
        if (a.awake, round(a.power_w, 3), a.profile) != (b.awake, round(b.power_w, 3), b.profile)
    ]
    assert changed == []


def test_non_concave_profiles_use_the_hull() -> None:
    # The middle profile is inefficient: the hull skips it (sleep -> 3000 directly is better).
    m = make_model("bumpy", profiles=((1000.0, 20.0), (3000.0, 120.0)))
    rigs = [rig(f"r{i}", m, awake=False) for i in range(2)]
    p = plan(3100, rigs, FREE)
    assert sorted(s.power_w for s in p.setpoints) == [20.0, 3000.0]
    # Leftover too small for the hull step: fix-up wakes the other rig at 1000 W if it fits.
    p2 = plan(4040, rigs, FREE)
    assert sorted(s.power_w for s in p2.setpoints) == [1000.0, 3000.0]
