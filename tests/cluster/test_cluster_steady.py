"""A steady site budget gives a steady split and no commands once settled (issue 16).

In process and deterministic: 4 real ShardNodes (rigs that obey at once and age their
min-on/min-off windows) and a ControllerNode on the in-memory bus of test_cluster_late_shard,
a ManualClock moved by hand. The old split broke ties between shards by which rigs were
awake in curves a cycle or two old, and swung a rig between two shards every cycle at a
constant budget (2 commands a cycle for ever at 400 rigs, 10 at 2,000 rigs). Budgets may
also land one shard cycle late, as they can between two processes.
"""

from __future__ import annotations

import pytest
from cluster_fleet import SHARDS, mixed_fleet
from test_cluster_late_shard import Site

from minerd.cluster.curve import build_curve
from minerd.cluster.nodes import projected_rigs
from minerd.cluster.split import ShardShare, Split, split_budget, steady_split
from minerd.control.planner import PlanConstraints, PlanRig, plan
from minerd.model import RigState

CYCLE_S = 15.0
SETTLE_CYCLES = 40  # past the 10 s windows and every rig's move
STEADY_CYCLES = 20
N_RIGS = 400


def commands(before: list[PlanRig], after: list[PlanRig]) -> int:
    """What a shard sent: a rig woken, put to sleep, or moved to another power."""
    return sum(
        1
        for a, b in zip(before, after, strict=True)
        if a.awake != b.awake or (b.awake and abs(a.power_w - b.power_w) > 1e-6)
    )


class LateBudgets:
    """The bus with budgets held back until the shards have planned once more."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.pending: list[tuple[str, bytes]] = []
        self._deliver = site.bus.deliver
        site.bus.deliver = self.deliver  # type: ignore[method-assign]

    def deliver(self, subject: str, payload: bytes) -> None:
        if subject.endswith(".budget"):
            self.pending.append((subject, payload))
            return
        self._deliver(subject, payload)

    def land(self) -> None:
        pending, self.pending = self.pending, []
        for subject, payload in pending:
            self._deliver(subject, payload)


async def cycle(site: Site, budget_w: float, late: LateBudgets | None) -> tuple[int, Split]:
    """One cycle: shards plan and report, (late budgets land), the controller splits."""
    before = {s: list(f.rigs) for s, f in site.fleets.items()}
    site.clock.advance(site.cycle_s)
    assert await site.lease.tick()
    await site.shards_cycle()
    if late is not None:
        late.land()
    out = await site.ctrl.cycle(budget_w)
    assert out.leader and out.split is not None
    sent = sum(commands(before[s], site.fleets[s].rigs) for s in SHARDS)
    return sent, out.split


@pytest.mark.asyncio
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("window_s", [0.0, 10.0])
@pytest.mark.parametrize("late_budgets", [False, True])
async def test_a_steady_budget_settles_to_no_commands_and_one_split(
    fraction: float, window_s: float, late_budgets: bool
) -> None:
    constraints = PlanConstraints(min_on_s=window_s, min_off_s=window_s)
    site = Site(constraints, N_RIGS, CYCLE_S)
    late = LateBudgets(site) if late_budgets else None
    budget_w = fraction * site.total_nominal_w
    for _ in range(SETTLE_CYCLES):
        await cycle(site, budget_w, late)
    sent: list[int] = []
    splits: list[dict[str, float]] = []
    for _ in range(STEADY_CYCLES):
        n, split = await cycle(site, budget_w, late)
        sent.append(n)
        splits.append({s: sh.budget_w for s, sh in split.shares.items()})
    assert sent == [0] * STEADY_CYCLES
    assert all(sp == splits[0] for sp in splits)
    assert sum(splits[0].values()) == pytest.approx(budget_w)
    # Every shard plans within its budget, and the site's rigs within the site's.
    for s, node in site.shards.items():
        assert node.last is not None
        assert node.last.plan.planned_power_w <= splits[0][s] + 1e-6
    assert site.truth_w() <= budget_w + 1e-6


@pytest.mark.asyncio
async def test_the_single_planner_on_the_same_fleet_sends_nothing_once_settled() -> None:
    """The reference the shards are held to: one plan() over the same rigs, same budget."""
    rigs = mixed_fleet(N_RIGS, seed=3)
    budget_w = 0.5 * sum(r.model.nominal_power_w for r in rigs)
    sent = []
    for _ in range(SETTLE_CYCLES + STEADY_CYCLES):
        p = plan(budget_w, rigs, PlanConstraints())
        new = [
            PlanRig(
                r.rig_id,
                r.model,
                sp.awake,
                sp.power_w,
                RigState.HASHING if sp.awake else RigState.SLEEPING,
                r.chip_temp_c,
                r.since_switch_s,
                r.maintenance,
                r.unresponsive,
            )
            for r, sp in zip(rigs, p.setpoints, strict=True)
        ]
        sent.append(commands(rigs, new))
        rigs = new
    assert sent[SETTLE_CYCLES:] == [0] * STEADY_CYCLES


@pytest.mark.asyncio
@pytest.mark.parametrize("late_budgets", [False, True])
async def test_a_cut_after_settling_is_split_and_carried_out_at_once(late_budgets: bool) -> None:
    """The steady split is kept only at the same budget: a cut is split anew in the cycle it
    comes and every shard plans to its cut share on its next cycle."""
    site = Site(PlanConstraints(min_on_s=10.0, min_off_s=10.0), N_RIGS, CYCLE_S)
    late = LateBudgets(site) if late_budgets else None
    high_w = 0.7 * site.total_nominal_w
    low_w = 0.5 * site.total_nominal_w
    for _ in range(SETTLE_CYCLES):
        await cycle(site, high_w, late)
    _, split = await cycle(site, low_w, late)
    assert split == split_budget(low_w, site.curves())  # not the held one
    assert sum(sh.budget_w for sh in split.shares.values()) == pytest.approx(low_w)
    # The shards' next cycle after the budgets land plans to the cut shares.
    for _ in range(2 if late_budgets else 1):
        await cycle(site, low_w, late)
    for s, node in site.shards.items():
        assert node.last is not None
        assert node.last.decision.budget_w == pytest.approx(split.shares[s].budget_w)
        assert node.last.plan.planned_power_w <= split.shares[s].budget_w + 1e-6
    assert site.truth_w() <= low_w + 1e-6


def test_steady_split_keeps_the_last_split_only_at_the_same_budget() -> None:
    """The pure rule: the last split is kept when the budget is the same and it buys as much;
    a budget that moved, a split that buys less, or a share now below its shard's floor is
    split anew."""
    site = Site(PlanConstraints(), N_RIGS, CYCLE_S)
    curves = {s: build_curve(site.fleets[s].rigs, PlanConstraints()) for s in SHARDS}
    budget_w = 0.5 * site.total_nominal_w
    new = split_budget(budget_w, curves)
    budgets = {s: sh.budget_w for s, sh in new.shares.items()}
    # The same split again: kept, with the same budgets.
    again = steady_split(new, split_budget(budget_w, curves), curves)
    assert {s: sh.budget_w for s, sh in again.shares.items()} == budgets
    assert again.hashrate_ths == pytest.approx(new.hashrate_ths)
    # A cut: never the old split.
    cut = split_budget(0.4 * site.total_nominal_w, curves)
    assert steady_split(new, cut, curves) == cut
    # A last split that buys less (a quarter of s1's budget moved to s4): split anew.
    worse = _split_of(
        new, {**budgets, "s1": 0.75 * budgets["s1"], "s4": budgets["s4"] + 0.25 * budgets["s1"]}
    )
    assert steady_split(worse, new, curves) == new
    # A share below its shard's floor now: split anew.
    below = _split_of(new, {**budgets, "s1": curves["s1"].floor_w - 1.0})
    assert steady_split(below, new, curves) == new
    # Another wake limit: split anew.
    woken = split_budget(budget_w, curves, max_wakes=5)
    assert steady_split(new, woken, curves) == woken


def _split_of(like: Split, budgets: dict[str, float]) -> Split:
    shares = {s: ShardShare(budgets[s], sh.hashrate_ths, sh.wakes) for s, sh in like.shares.items()}
    return Split(like.budget_w, shares, like.hashrate_ths, like.shortfall_w)


def test_the_curve_is_of_the_rigs_as_the_plan_leaves_them() -> None:
    """A rig the plan wakes is sent as awake and in its min-on window (no sleep point: its
    lowest awake point is floor); one it puts to sleep as in min-off (fixed at sleep); a rig
    not dispatched stays as read."""
    constraints = PlanConstraints(min_on_s=300.0, min_off_s=120.0)
    rigs = tuple(
        r
        for r in mixed_fleet(200, seed=3)
        if r.since_switch_s > 300.0 and (r.chip_temp_c is None or r.chip_temp_c < 60.5)
    )
    asleep = [i for i, r in enumerate(rigs) if not r.awake and not r.unresponsive]
    nominal_w = sum(r.model.nominal_power_w for r in rigs)
    p = plan(nominal_w, rigs, constraints)  # room for all: the sleepers wake
    after = projected_rigs(rigs, p)
    woken = [i for i in asleep if p.setpoints[i].awake]
    assert woken
    for i in woken:
        assert after[i].awake and after[i].since_switch_s == 0.0
        assert after[i].setpoint_power_w == p.setpoints[i].power_w
    for i, r in enumerate(rigs):
        if r.unresponsive or r.maintenance:
            assert after[i] is r
    before_curve = build_curve(rigs, constraints)
    after_curve = build_curve(after, constraints)
    # Woken rigs in min-on raise the floor by their lowest awake point over sleep.
    assert after_curve.floor_w > before_curve.floor_w
    assert after_curve.release_w > before_curve.release_w
    p_low = plan(0.0, after, PlanConstraints())  # everything to sleep
    slept = projected_rigs(after, p_low)
    moved = [i for i, r in enumerate(after) if r.awake and not p_low.setpoints[i].awake]
    assert moved
    assert all(not slept[i].awake and slept[i].since_switch_s == 0.0 for i in moved)
    # Asleep in their min-off window: fixed at sleep power, not in any class.
    assert build_curve(slept, constraints).fixed_w > build_curve(after, constraints).fixed_w
