"""A shard's budget gate across lease store epochs (a deleted or wiped lease bucket starts its
revisions at 1 again), and the budget's store_epoch on the wire. Pure: cycles by hand."""

from __future__ import annotations

import json

import pytest

from minerd.cluster.messages import Budget, decode_budget, encode_budget
from minerd.cluster.safety import BudgetGate, BudgetSource, EpochSwitch
from minerd.errors import ClusterError
from minerd.sinks.cluster_metrics import ClusterMetricsCollector, ClusterStatus

SUBJECT = "minerd.site1.shard.s1.budget"
OLD, NEW = "0ld0ld0ld0ld0ld0", "4e114e114e114e11"


def budget(rev: int, seq: int, budget_w: float, epoch: str, ctrl: str = "c1") -> Budget:
    return Budget("site1", "s1", ctrl, rev, seq, 0.0, budget_w, 400.0, 5, 0.0, epoch)


def leading(epoch: str = OLD, rev: int = 500) -> BudgetGate:
    """A gate that has planned to a budget of `epoch` at revision `rev` this cycle."""
    gate = BudgetGate("s1", failsafe_w=250.0, hold_cycles=3)
    assert gate.offer(budget(rev, 1, 900.0, epoch))
    assert gate.next_cycle().source is BudgetSource.BUDGET
    return gate


def to_failsafe(gate: BudgetGate) -> None:
    """Cycles without an accepted budget until the gate plans to its fail-safe share."""
    sources = [gate.next_cycle().source for _ in range(gate.hold_cycles)]
    assert sources == [BudgetSource.HELD, BudgetSource.HELD, BudgetSource.FAILSAFE]
    assert gate.in_failsafe


def test_same_epoch_lower_revision_is_fenced_even_on_the_failsafe_share() -> None:
    gate = leading()
    assert not gate.offer(budget(7, 2, 5000.0, OLD))
    to_failsafe(gate)
    assert not gate.offer(budget(7, 3, 5000.0, OLD))  # a deposed leader of the same store
    assert (gate.ignored, gate.other_epoch_refused, gate.epoch_switches) == (2, 0, 0)
    assert gate.next_cycle().source is BudgetSource.FAILSAFE
    assert gate.newest_revision == 500


@pytest.mark.parametrize("new_rev", [2, 500, 900])
def test_another_epoch_is_refused_while_a_budget_commands_and_taken_on_failsafe(
    new_rev: int,
) -> None:
    gate = leading()
    # Fresh this cycle, then held: the old term may still command. Refused whatever the
    # revision (another store's revisions have no order against this one's).
    assert not gate.offer(budget(new_rev, 1, 700.0, NEW, ctrl="c2"))
    d = gate.next_cycle()
    assert (d.source, d.budget_w, d.lease_revision) == (BudgetSource.HELD, 900.0, 500)
    assert not gate.offer(budget(new_rev, 2, 700.0, NEW, ctrl="c2"))
    assert gate.next_cycle().source is BudgetSource.HELD
    assert gate.next_cycle().source is BudgetSource.FAILSAFE
    assert (gate.ignored, gate.other_epoch_refused, gate.epoch_switches) == (2, 2, 0)
    # On its fail-safe share the old term is over: the new store's budget is taken.
    assert gate.offer(budget(new_rev, 3, 700.0, NEW, ctrl="c2"))
    assert gate.last_switch == EpochSwitch(OLD, 500, NEW, new_rev, "c2")
    assert (gate.newest_epoch, gate.newest_revision, gate.epoch_switches) == (NEW, new_rev, 1)
    d = gate.next_cycle()
    assert (d.source, d.budget_w, d.lease_revision, d.controller_id) == (
        BudgetSource.BUDGET,
        700.0,
        new_rev,
        "c2",
    )


def test_after_the_switch_the_old_epoch_is_refused_and_the_new_one_fenced_as_before() -> None:
    gate = leading()
    to_failsafe(gate)
    assert gate.offer(budget(2, 1, 700.0, NEW))
    gate.next_cycle()
    # A late or replayed budget of the old store, with its far higher revision: refused.
    assert not gate.offer(budget(501, 99, 5000.0, OLD))
    assert gate.other_epoch_refused == 1
    assert gate.next_cycle().budget_w == 700.0
    # Within the new epoch, revision fencing as always.
    assert gate.offer(budget(4, 2, 650.0, NEW))
    assert not gate.offer(budget(3, 3, 5000.0, NEW))
    assert gate.next_cycle().budget_w == 650.0
    assert (gate.newest_revision, gate.epoch_switches) == (4, 1)


def test_a_budget_arrived_on_failsafe_ends_failsafe_for_the_next_other_epoch_budget() -> None:
    """Of two stores' budgets in one fail-safe cycle, the first is taken; the other waits."""
    gate = leading()
    to_failsafe(gate)
    assert gate.offer(budget(2, 1, 700.0, NEW))
    assert not gate.in_failsafe
    assert not gate.offer(budget(600, 9, 5000.0, OLD))
    assert gate.next_cycle().budget_w == 700.0


def test_a_restarted_controller_in_a_new_store_is_not_taken_for_a_replay() -> None:
    """Same controller id, same revision number, a lower seq (a new process): not a replay
    once it comes from another store."""
    gate = leading(OLD, rev=3)
    to_failsafe(gate)
    assert gate.offer(budget(3, 1, 600.0, NEW))
    assert gate.next_cycle().source is BudgetSource.BUDGET


@pytest.mark.parametrize(("newest", "offered"), [("", NEW), (OLD, ""), ("", "")])
def test_an_unknown_epoch_on_either_side_leaves_revisions_alone_to_decide(
    newest: str, offered: str
) -> None:
    gate = leading(newest)
    to_failsafe(gate)
    assert not gate.offer(budget(2, 1, 700.0, offered))  # lower: fenced, on fail-safe too
    assert gate.epoch_switches == 0 and gate.other_epoch_refused == 0
    assert gate.offer(budget(501, 2, 700.0, offered))  # higher: taken, as before epochs
    assert (gate.newest_revision, gate.newest_epoch) == (501, offered)


def test_budget_round_trips_with_its_store_epoch() -> None:
    b = budget(7, 3, 1234.5, NEW)
    raw = encode_budget(b)
    assert json.loads(raw)["store_epoch"] == NEW
    assert decode_budget(raw, SUBJECT) == b


def test_a_budget_without_store_epoch_decodes_as_unknown() -> None:
    raw = encode_budget(budget(7, 3, 1234.5, ""))
    assert "store_epoch" not in json.loads(raw)  # an older shard reads it as before
    assert decode_budget(raw, SUBJECT).store_epoch == ""


@pytest.mark.parametrize("bad", [17, "", None, ["x"], True])
def test_a_bad_store_epoch_is_refused_naming_sender_and_subject(bad: object) -> None:
    body = json.loads(encode_budget(budget(7, 3, 1234.5, NEW)))
    body["store_epoch"] = bad
    with pytest.raises(ClusterError) as err:
        decode_budget(json.dumps(body).encode(), SUBJECT)
    message = str(err.value)
    assert "store_epoch" in message and SUBJECT in message and "controller c1" in message


def test_a_store_switch_reaches_the_shards_metrics() -> None:
    gate = leading(OLD)
    to_failsafe(gate)
    assert gate.offer(budget(1, 1, 700.0, NEW))
    status = ClusterStatus(
        role="shard",
        shard_id="s1",
        budgets_ignored=gate.ignored,
        store_switches=gate.epoch_switches,
    )
    families = {m.name: m for m in ClusterMetricsCollector(lambda: status).collect()}
    # prometheus_client drops a counter's _total suffix from the family name.
    assert families["minerd_cluster_store_switches"].samples[0].value == 1.0
    assert families["minerd_cluster_budgets_ignored"].samples[0].value == 0.0
