"""The site budget split over 4 shards gives the hashrate of one planner over every rig."""

from __future__ import annotations

import pytest
from cluster_fleet import by_shard, mixed_fleet

from minerd.cluster.curve import build_curve
from minerd.cluster.split import Split, split_budget
from minerd.control.planner import Plan, PlanConstraints, plan

CONSTRAINTS = PlanConstraints(min_on_s=60.0, min_off_s=60.0)
FLEET = mixed_fleet(4000)
SHARDED = by_shard(FLEET)
NOMINAL_W = sum(r.model.nominal_power_w for r in FLEET)


def sharded_plans(
    budget_w: float, constraints: PlanConstraints = CONSTRAINTS
) -> tuple[Split, dict[str, Plan]]:
    curves = {s: build_curve(rigs, constraints) for s, rigs in SHARDED.items()}
    split = split_budget(budget_w, curves)
    plans = {s: plan(split.shares[s].budget_w, SHARDED[s], constraints) for s in SHARDED}
    return split, plans


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.9, 1.1])
def test_sharded_hashrate_within_half_a_percent_of_one_planner(fraction: float) -> None:
    budget_w = fraction * NOMINAL_W
    single = plan(budget_w, FLEET, CONSTRAINTS)
    split, plans = sharded_plans(budget_w)
    assert all(len(rigs) > 800 for rigs in SHARDED.values())  # 4 real shards
    sharded_ths = sum(p.hashrate_ths for p in plans.values())
    assert single.hashrate_ths > 0
    assert sharded_ths == pytest.approx(single.hashrate_ths, rel=0.005)
    if split.shortfall_w == 0.0 and fraction >= 0.3:
        # Above the floors, the split's own account of what it bought is the same bound.
        assert split.hashrate_ths == pytest.approx(single.hashrate_ths, rel=0.005)
    # Never more than the site budget, summed over the shards.
    assert sum(sh.budget_w for sh in split.shares.values()) <= budget_w + 1e-6
    assert sum(p.planned_power_w for p in plans.values()) <= budget_w + 1e-6


def test_split_budgets_sum_to_the_site_budget_and_each_plan_fits_its_share() -> None:
    budget_w = 0.55 * NOMINAL_W
    split, plans = sharded_plans(budget_w)
    assert sum(sh.budget_w for sh in split.shares.values()) == pytest.approx(budget_w)
    for s, p in plans.items():
        assert p.planned_power_w <= split.shares[s].budget_w + 1e-6
        assert p.shortfall_w == 0.0


def test_below_the_floors_min_on_is_released_and_no_shard_wakes_a_rig() -> None:
    curves = {s: build_curve(rigs, CONSTRAINTS) for s, rigs in SHARDED.items()}
    floor_w = sum(c.floor_w for c in curves.values())
    min_w = sum(c.min_w for c in curves.values())
    assert min_w < floor_w  # the fleet has min-on rigs
    budget_w = (floor_w + min_w) / 2
    split = split_budget(budget_w, curves, max_wakes=10)
    assert sum(sh.budget_w for sh in split.shares.values()) == pytest.approx(budget_w)
    assert all(sh.wakes == 0 for sh in split.shares.values())
    for s, rigs in SHARDED.items():
        p = plan(split.shares[s].budget_w, rigs, CONSTRAINTS)
        assert p.planned_power_w <= split.shares[s].budget_w + 1e-6


def test_below_every_minimum_the_shortfall_is_reported() -> None:
    curves = {s: build_curve(rigs, CONSTRAINTS) for s, rigs in SHARDED.items()}
    min_w = sum(c.min_w for c in curves.values())
    split = split_budget(min_w / 2, curves)
    assert split.shortfall_w == pytest.approx(min_w / 2)
    assert sum(sh.budget_w for sh in split.shares.values()) == pytest.approx(min_w / 2)


def test_site_wake_limit_is_shared_not_multiplied() -> None:
    # Everyone asleep and free to wake: the site may wake 40 rigs this cycle, not 4 x 40.
    asleep = [r for r in FLEET if not r.awake and r.since_switch_s > 60.0 and not r.maintenance]
    groups = by_shard(asleep)
    curves = {s: build_curve(rigs, CONSTRAINTS) for s, rigs in groups.items()}
    split = split_budget(1e9, curves, max_wakes=40)
    wakes = {s: sh.wakes for s, sh in split.shares.items()}
    assert sum(w or 0 for w in wakes.values()) == 40
    woken = 0
    for s, rigs in groups.items():
        c = PlanConstraints(min_on_s=60.0, min_off_s=60.0, max_wakes_per_cycle=wakes[s])
        woken += plan(split.shares[s].budget_w, rigs, c).wakes
    assert woken == 40


def test_split_is_deterministic_and_names_every_shard() -> None:
    curves = {s: build_curve(rigs, CONSTRAINTS) for s, rigs in SHARDED.items()}
    a = split_budget(0.4 * NOMINAL_W, curves)
    b = split_budget(0.4 * NOMINAL_W, dict(reversed(list(curves.items()))))
    assert a == b
    assert set(a.shares) == set(SHARDED)


def test_nan_or_negative_budget_plans_the_minimum() -> None:
    curves = {s: build_curve(rigs, CONSTRAINTS) for s, rigs in SHARDED.items()}
    for bad in (float("nan"), -5.0):
        split = split_budget(bad, curves)
        assert split.budget_w == 0.0
        assert sum(sh.budget_w for sh in split.shares.values()) == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_small_random_fleets_never_overrun_the_site_budget(seed: int) -> None:
    # Small fleets: a discrete step may be lost to a shard boundary, never added.
    rigs = mixed_fleet(10 + seed * 7, seed=seed)
    groups = by_shard(rigs)
    nominal_w = sum(r.model.nominal_power_w for r in rigs)
    for fraction in (0.05, 0.35, 0.8):
        budget_w = fraction * nominal_w
        curves = {s: build_curve(g, CONSTRAINTS) for s, g in groups.items()}
        split = split_budget(budget_w, curves, max_wakes=3)
        planned_w = 0.0
        wakes = 0
        for s, g in groups.items():
            share = split.shares[s]
            c = PlanConstraints(min_on_s=60.0, min_off_s=60.0, max_wakes_per_cycle=share.wakes)
            p = plan(share.budget_w, g, c)
            assert p.planned_power_w <= share.budget_w + 1e-6 or p.shortfall_w > 0
            planned_w += p.planned_power_w
            wakes += p.wakes
        single = plan(
            budget_w, rigs, PlanConstraints(min_on_s=60, min_off_s=60, max_wakes_per_cycle=3)
        )
        assert wakes <= 3
        if single.shortfall_w == 0.0:
            assert planned_w <= budget_w + 1e-6
