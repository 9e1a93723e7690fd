"""The shard's budget gate: fencing by lease revision, hold for a few cycles, fail-safe share."""

from __future__ import annotations

import dataclasses

from minerd.clock import ManualClock
from minerd.cluster.curve import ShardCurve
from minerd.cluster.messages import Budget, ShardAggregate
from minerd.cluster.nodes import ControllerNode
from minerd.cluster.overload_split import overload_shares_w
from minerd.cluster.safety import BudgetGate, BudgetSource


def budget(
    rev: int, seq: int, budget_w: float, ctrl: str = "c1", failsafe_w: float = 400.0
) -> Budget:
    return Budget("site1", "s1", ctrl, rev, seq, 0.0, budget_w, failsafe_w, 5)


def test_before_any_budget_the_shard_plans_its_failsafe_share() -> None:
    gate = BudgetGate("s1", failsafe_w=250.0)
    d = gate.next_cycle()
    assert (d.source, d.budget_w, d.max_wakes) == (BudgetSource.FAILSAFE, 250.0, 0)


def test_budget_held_two_cycles_then_failsafe_share_on_the_third() -> None:
    gate = BudgetGate("s1", failsafe_w=250.0)
    assert gate.offer(budget(5, 1, 1000.0, failsafe_w=400.0))
    d = gate.next_cycle()
    assert (d.source, d.budget_w, d.max_wakes) == (BudgetSource.BUDGET, 1000.0, 5)
    held = [gate.next_cycle() for _ in range(2)]
    assert [h.source for h in held] == [BudgetSource.HELD, BudgetSource.HELD]
    assert all(h.budget_w == 1000.0 and h.max_wakes == 0 for h in held)  # no wakes while held
    third = gate.next_cycle()
    # The share came with the last budget; it replaces the starting one.
    assert (third.source, third.budget_w) == (BudgetSource.FAILSAFE, 400.0)
    assert gate.next_cycle().source is BudgetSource.FAILSAFE  # and stays there


def test_the_economics_filter_is_kept_while_held_and_dropped_on_the_failsafe_share() -> None:
    gate = BudgetGate("s1", failsafe_w=250.0)
    gate.offer(dataclasses.replace(budget(5, 1, 1000.0), max_j_per_th=26.0))
    got = [gate.next_cycle() for _ in range(4)]
    held, failsafe = BudgetSource.HELD, BudgetSource.FAILSAFE
    assert [d.source for d in got] == [BudgetSource.BUDGET, held, held, failsafe]
    # No price heard on the fail-safe share: every point, as one process without a price.
    assert [d.max_j_per_th for d in got] == [26.0, 26.0, 26.0, None]


def test_losing_the_controller_never_raises_a_shard() -> None:
    gate = BudgetGate("s1", failsafe_w=250.0)
    gate.offer(budget(5, 1, 100.0, failsafe_w=400.0))  # a deep cut: 100 W, below the share
    gate.next_cycle()
    decisions = [gate.next_cycle() for _ in range(3)]
    assert decisions[-1].source is BudgetSource.FAILSAFE
    assert max(d.budget_w for d in decisions) == 100.0


def test_a_budget_from_an_older_lease_revision_is_ignored() -> None:
    gate = BudgetGate("s1", failsafe_w=250.0)
    assert gate.offer(budget(9, 1, 800.0, ctrl="new"))
    assert gate.next_cycle().budget_w == 800.0
    # The deposed controller (revision 7) wakes up and sends a raise: ignored.
    assert not gate.offer(budget(7, 50, 5000.0, ctrl="old"))
    assert gate.ignored == 1
    d = gate.next_cycle()
    assert (d.source, d.budget_w, d.lease_revision) == (BudgetSource.HELD, 800.0, 9)
    # The leader's renewals raise the revision; its budgets keep coming through.
    assert gate.offer(budget(11, 2, 700.0, ctrl="new"))
    assert gate.next_cycle().budget_w == 700.0
    assert gate.newest_revision == 11


def test_a_replayed_budget_is_ignored_and_the_newest_of_a_cycle_wins() -> None:
    gate = BudgetGate("s1", failsafe_w=250.0)
    assert gate.offer(budget(5, 2, 600.0))
    assert not gate.offer(budget(5, 2, 900.0))  # same revision, same seq: a replay
    assert not gate.offer(budget(5, 1, 900.0))  # older seq
    assert gate.offer(budget(5, 3, 650.0))
    assert gate.next_cycle().budget_w == 650.0
    assert gate.ignored == 2


def test_a_budget_for_another_shard_is_ignored() -> None:
    gate = BudgetGate("s2", failsafe_w=250.0)
    assert not gate.offer(budget(5, 1, 600.0))
    assert gate.next_cycle().source is BudgetSource.FAILSAFE


def aggregate(shard: str, nominal_w: float, site: str = "site1") -> ShardAggregate:
    curve = ShardCurve(0.0, 0.0, ())
    return ShardAggregate(site, shard, 1, 0.0, 0.0, 0.0, nominal_w, 1, 1, 1, 0, 0, False, curve)


def test_failsafe_shares_never_add_up_to_more_than_the_site_limit() -> None:
    shards = ("s1", "s2", "s3", "s4")
    # No NATS needed: the shares are the controller's arithmetic over what it heard.
    node = ControllerNode(None, "site1", "c1", None, shards, 400.0, ManualClock())  # type: ignore[arg-type]
    assert node.failsafe_shares_w() == dict.fromkeys(shards, 100.0)
    assert node.hear(aggregate("s1", 3000.0)) and node.hear(aggregate("s2", 1000.0))
    assert not node.hear(aggregate("s9", 1000.0))  # not a shard of this site
    assert not node.hear(aggregate("s3", 1000.0, site="other"))
    shares = node.failsafe_shares_w()
    # s3, s4 never heard: their starting 100 W each; s1 and s2 share 200 W by nominal, 3:1.
    assert shares == {"s1": 150.0, "s2": 50.0, "s3": 100.0, "s4": 100.0}
    assert sum(shares.values()) == 400.0


def test_a_silent_shard_is_reserved_at_nominal_in_the_failsafe_shares() -> None:
    """A dead shard's rigs hold their last plan (up to nominal). Should the controller be
    lost next, the live shards fall to their fail-safe shares: those must leave room for
    the dead shard at nominal, or the site ends over its fail-safe limit."""
    shards = ("s1", "s2", "s3", "s4")
    node = ControllerNode(None, "site1", "c1", None, shards, 400.0, ManualClock())  # type: ignore[arg-type]
    for s, nominal_w in (("s1", 300.0), ("s2", 100.0), ("s3", 100.0), ("s4", 100.0)):
        assert node.hear(aggregate(s, nominal_w))
    shares = node.failsafe_shares_w(silent=("s4",))
    # s4 reserved at its 100 W nominal; s1-s3 share the other 300 W by nominal, 3:1:1.
    assert shares == {"s1": 180.0, "s2": 60.0, "s3": 60.0, "s4": 0.0}
    assert sum(shares.values()) + 100.0 <= 400.0
    # A dead shard bigger than the limit leaves the live ones nothing.
    shares = node.failsafe_shares_w(silent=("s1", "s2", "s3"))
    assert shares == {"s1": 0.0, "s2": 0.0, "s3": 0.0, "s4": 0.0}


def test_the_sites_overload_reaches_the_shard_only_with_a_fresh_budget() -> None:
    gate = BudgetGate("s1", failsafe_w=250.0)
    b = dataclasses.replace(budget(5, 1, 600.0), overload_w=90.0)
    assert gate.offer(b)
    assert gate.next_cycle().overload_w == 90.0
    # Held (no budget this cycle): the excess was the meter's a cycle ago, not now.
    held = gate.next_cycle()
    assert held.source is BudgetSource.HELD and held.overload_w == 0.0


def test_the_excess_goes_to_the_shards_that_cannot_plan_down_to_their_budget() -> None:
    # min_w = fixed_w (no classes): s1 is 300 W above its budget, s2 100 W, s3 below it.
    curves = {s: ShardCurve(w, 0.0, ()) for s, w in (("s1", 900.0), ("s2", 500.0), ("s3", 50.0))}
    budgets = {"s1": 600.0, "s2": 400.0, "s3": 200.0}
    assert overload_shares_w(200.0, curves, budgets) == {"s1": 150.0, "s2": 50.0}
    assert overload_shares_w(0.0, curves, budgets) == {}  # not over
    able = {"s1": 1000.0, "s2": 600.0, "s3": 200.0}  # every shard can meet its budget
    assert overload_shares_w(200.0, curves, able) == {}
