"""The split with late shards (late_split) and the overload split with late shards: pure.

Each shard here is one continuous upgrade of 1,000 W, s1 the best TH/s per W and s4 the
worst, so the plain split is easy to read: 3,500 W gives s1-s3 1,000 W each and s4 500 W.
"""

from __future__ import annotations

import pytest

from minerd.cluster.curve import CurveClass, ShardCurve, Upgrade
from minerd.cluster.late_split import LateShard, split_with_late
from minerd.cluster.overload_split import overload_shares_w
from minerd.cluster.split import split_budget

SLOPES = {"s1": 0.04, "s2": 0.03, "s3": 0.02, "s4": 0.01}
CURVES = {
    s: ShardCurve(0.0, 0.0, (CurveClass(1, 0.0, 0.0, False, (Upgrade(1000.0, k * 1000, True),)),))
    for s, k in SLOPES.items()
}


def late(
    given_w: float, planned_w: float | None = None, drawing_w: float | None = None
) -> LateShard:
    planned = given_w if planned_w is None else planned_w
    return LateShard(given_w, planned, planned if drawing_w is None else drawing_w, 1.0)


def budgets(shares: dict[str, float]) -> dict[str, float]:
    return {s: round(w, 6) for s, w in shares.items()}


def test_a_late_shard_cut_is_held_and_the_heard_shards_take_the_cut() -> None:
    out = split_with_late(3500.0, CURVES, {"s4": late(1000.0)})
    shares = budgets({s: sh.budget_w for s, sh in out.split.shares.items()})
    assert shares == {"s1": 1000.0, "s2": 1000.0, "s3": 500.0, "s4": 1000.0}
    assert out.held == ("s4",) and out.held_w == 1000.0
    assert out.split.budget_w == 3500.0


@pytest.mark.parametrize("budget_w", [4000.0, 4500.0])
def test_a_late_shard_whose_share_does_not_fall_gets_the_plain_split(budget_w: float) -> None:
    # Its rigs draw more than its budget (a model error the loop corrects): not a cut.
    out = split_with_late(budget_w, CURVES, {"s4": late(1000.0, 980.0, 1100.0)})
    assert out.held == () and out.held_w == 0.0
    assert out.split == split_budget(budget_w, CURVES)


def test_holding_one_late_shard_may_hold_another() -> None:
    # Plain: s3 keeps its 1,000 W, s4 falls to 500. Once s4 is held, s3 would fall: held too.
    out = split_with_late(3500.0, CURVES, {"s3": late(1000.0), "s4": late(1000.0)})
    shares = budgets({s: sh.budget_w for s, sh in out.split.shares.items()})
    assert shares == {"s1": 1000.0, "s2": 500.0, "s3": 1000.0, "s4": 1000.0}
    assert out.held == ("s3", "s4") and out.held_w == 2000.0


def test_a_cut_sent_as_it_died_is_counted_at_its_last_plan_and_its_draw() -> None:
    # Sent 500 W last cycle, but its last plan (and draw) is from before: 1,000 / 1,200 W.
    out = split_with_late(3500.0, CURVES, {"s4": late(500.0, 1000.0, 1200.0)})
    shares = budgets({s: sh.budget_w for s, sh in out.split.shares.items()})
    assert out.held == ("s4",) and out.held_w == 1200.0
    # s4 is sent its split share (never less than its last budget); the rest is slack.
    assert shares == {"s1": 1000.0, "s2": 1000.0, "s3": 300.0, "s4": 500.0}


def test_held_counts_beyond_the_budget_are_cut_pro_rata_and_the_others_get_nothing() -> None:
    out = split_with_late(1500.0, CURVES, {"s3": late(1000.0), "s4": late(1000.0)}, max_wakes=5)
    shares = budgets({s: sh.budget_w for s, sh in out.split.shares.items()})
    assert shares == {"s1": 0.0, "s2": 0.0, "s3": 750.0, "s4": 750.0}
    assert out.held_w == pytest.approx(1500.0)
    assert out.split.shares["s3"].wakes == 0 and out.split.shares["s4"].wakes == 0


def test_a_heard_share_is_never_above_its_plain_share() -> None:
    for budget_w in (500.0, 1500.0, 2500.0, 3500.0):
        for lt in ({"s4": late(1000.0)}, {"s1": late(1000.0)}, {"s2": late(900.0, 0.0, 2000.0)}):
            plain = split_budget(budget_w, CURVES)
            out = split_with_late(budget_w, CURVES, lt)
            for s, sh in out.split.shares.items():
                if s not in out.held:
                    assert sh.budget_w <= plain.shares[s].budget_w + 1e-9
            total_w = sum(sh.budget_w for s, sh in out.split.shares.items() if s not in out.held)
            assert total_w + out.held_w <= budget_w + 1e-6


def test_nan_budget_plans_the_minimum() -> None:
    out = split_with_late(float("nan"), CURVES, {"s4": late(1000.0)})
    assert out.split.budget_w == 0.0
    assert sum(sh.budget_w for sh in out.split.shares.values()) == 0.0


OVER_CURVES = {s: ShardCurve(w, 0.0, ()) for s, w in (("s1", 900.0), ("s2", 500.0), ("s3", 50.0))}
OVER_BUDGETS = {"s1": 600.0, "s2": 400.0, "s3": 200.0}  # s1 300 W above, s2 100 W, s3 below


def test_the_heard_shards_above_their_budget_take_the_whole_excess_a_late_one_is_still_asked() -> (
    None
):
    assert overload_shares_w(200.0, OVER_CURVES, OVER_BUDGETS) == {"s1": 150.0, "s2": 50.0}
    got = overload_shares_w(200.0, OVER_CURVES, OVER_BUDGETS, late=("s1",))
    assert got == {"s1": 150.0, "s2": 200.0}
    got = overload_shares_w(200.0, OVER_CURVES, OVER_BUDGETS, late=("s2",))
    assert got == {"s1": 200.0, "s2": 50.0}
    # No heard shard can shed past its plan: the late ones keep their parts.
    got = overload_shares_w(200.0, OVER_CURVES, OVER_BUDGETS, late=("s1", "s2"))
    assert got == {"s1": 150.0, "s2": 50.0}
    assert overload_shares_w(0.0, OVER_CURVES, OVER_BUDGETS, late=("s1",)) == {}
