"""A cut while a shard is late (not heard this cycle, not yet silent): its share is held, the
shards heard this cycle take the whole cut, and the site's truth stays under the budget.

In process and deterministic: 4 real ShardNodes (rigs that obey at once) and a ControllerNode
on an in-memory bus, a ManualClock moved by hand, a lease on an in-memory key-value store.
A "dead" shard is simply never cycled again: its rigs keep their last plan.
"""

from __future__ import annotations

from typing import cast

import pytest
from cluster_fleet import SHARDS, by_shard, mixed_fleet
from nats.aio.client import Client
from nats.js.kv import KeyValue
from test_cluster_nats import MemoryFleet

from minerd.clock import ManualClock
from minerd.cluster.curve import ShardCurve
from minerd.cluster.lease import ControllerLease
from minerd.cluster.messages import Budget, decode_aggregate, decode_budget
from minerd.cluster.nodes import ControllerCycle, ControllerNode, ShardNode
from minerd.cluster.safety import BudgetGate
from minerd.cluster.split import split_budget, steady_split
from minerd.cluster.subjects import aggregate_subject, budget_subject
from minerd.control.planner import PlanConstraints

SITE = "latesite"
LATE = "s4"
N_RIGS = 400
STALE_CYCLES = 3
CYCLE_S = 1.0
CONSTRAINTS = PlanConstraints(min_on_s=10.0, min_off_s=10.0)
WARM_ROUNDS = 15  # past min-on and min-off


class Bus:
    """NATS in memory: aggregates to the controller, budgets to the shards' gates. An
    aggregate of a shard in `delay` is kept back until release()."""

    def __init__(self) -> None:
        self.ctrl: ControllerNode | None = None
        self.gates: dict[str, BudgetGate] = {}
        self.budgets: list[Budget] = []
        self.delay: set[str] = set()
        self._kept: list[tuple[str, bytes]] = []

    def deliver(self, subject: str, payload: bytes) -> None:
        for s, gate in self.gates.items():
            if subject == budget_subject(SITE, s):
                b = decode_budget(payload, subject)
                self.budgets.append(b)
                gate.offer(b)
                return
            if subject == aggregate_subject(SITE, s):
                if s in self.delay:
                    self._kept.append((subject, payload))
                    return
                assert self.ctrl is not None
                assert self.ctrl.hear(decode_aggregate(payload, subject))
                return
        raise AssertionError(f"unexpected subject {subject}")

    def release(self) -> None:
        kept, self._kept = self._kept, []
        self.delay.clear()
        for subject, payload in kept:
            self.deliver(subject, payload)


class MemoryNats:
    is_connected = True

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def publish(self, subject: str, payload: bytes) -> None:
        self.bus.deliver(subject, payload)


class MemoryKv:
    """The lease bucket: every write succeeds with the next revision."""

    def __init__(self) -> None:
        self.revision = 0

    async def create(self, key: str, value: bytes) -> int:
        self.revision += 1
        return self.revision

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        self.revision += 1
        return self.revision


class Site:
    def __init__(
        self,
        constraints: PlanConstraints = CONSTRAINTS,
        n_rigs: int = N_RIGS,
        cycle_s: float = CYCLE_S,
    ) -> None:
        self.clock = ManualClock()
        self.cycle_s = cycle_s
        self.bus = Bus()
        self.all_rigs = mixed_fleet(n_rigs, seed=3)
        fleets = by_shard(self.all_rigs)
        self.nominal_w = {
            s: sum(r.model.nominal_power_w for r in rigs) for s, rigs in fleets.items()
        }
        self.step_w = max(r.model.nominal_power_w for r in self.all_rigs)  # a rig's largest
        # Shards start at their share of nominal: no rig is slept before the first budget.
        self.failsafe_limit_w = sum(self.nominal_w.values())
        self.fleets = {s: MemoryFleet(rigs, cycle_s) for s, rigs in fleets.items()}
        self.shards: dict[str, ShardNode] = {}
        for s in SHARDS:
            gate = BudgetGate(s, self.failsafe_limit_w / len(SHARDS))
            self.bus.gates[s] = gate
            nc = cast(Client, MemoryNats(self.bus))
            self.shards[s] = ShardNode(nc, SITE, s, self.fleets[s], gate, constraints, self.clock)
        self.lease = ControllerLease(cast(KeyValue, MemoryKv()), "ctrl-a", 60.0, self.clock)
        self.ctrl = ControllerNode(
            cast(Client, MemoryNats(self.bus)),
            SITE,
            "ctrl-a",
            self.lease,
            SHARDS,
            self.failsafe_limit_w,
            self.clock,
            STALE_CYCLES,
        )
        self.bus.ctrl = self.ctrl
        self.dead: set[str] = set()

    @property
    def total_nominal_w(self) -> float:
        return sum(self.nominal_w.values())

    def truth_w(self) -> float:
        """What every rig of the site draws now, the dead shard's included."""
        return sum(f.power_w for f in self.fleets.values())

    def curves(self) -> dict[str, ShardCurve]:
        return {a.shard_id: a.curve for a in self.ctrl.live_aggregates()}

    async def shards_cycle(self) -> None:
        for s, node in self.shards.items():
            if s not in self.dead:
                await node.cycle()

    async def round_(self, budget_w: float) -> ControllerCycle:
        """The shards that run plan and report, then the controller splits."""
        self.clock.advance(self.cycle_s)
        assert await self.lease.tick()
        await self.shards_cycle()
        out = await self.ctrl.cycle(budget_w)
        assert out.leader and out.split is not None
        return out

    def sent(self, out: ControllerCycle) -> dict[str, Budget]:
        """The budgets of the controller's last cycle, by shard."""
        n = len(out.live_shards)
        got = {b.shard_id: b for b in self.bus.budgets[-n:]}
        assert set(got) == set(out.live_shards)
        return got


async def warm(site: Site, budget_w: float) -> ControllerCycle:
    """Rounds at budget_w until the rigs have followed their plans: the split repeats."""
    outs = [await site.round_(budget_w) for _ in range(WARM_ROUNDS)]
    assert outs[-1].split == outs[-2].split
    return outs[-1]


def late_aggregate_planned_w(site: Site) -> float:
    return next(a.planned_power_w for a in site.ctrl.live_aggregates() if a.shard_id == LATE)


@pytest.mark.asyncio
@pytest.mark.parametrize("cut_at", [0, 1, 2])
async def test_a_cut_while_a_shard_is_late_is_taken_by_the_heard_shards(cut_at: int) -> None:
    """Round 0: every shard reports, the last time for LATE (it dies after). Rounds 1 and 2:
    LATE is late; round 3: silent. The cut (70 % -> 50 % of nominal) arrives at round
    cut_at: 0 is the one cycle nobody can tell (LATE still looks heard)."""
    site = Site()
    high_w = 0.7 * site.total_nominal_w
    low_w = 0.5 * site.total_nominal_w
    prev_split = (await warm(site, high_w)).split
    heard = [s for s in SHARDS if s != LATE]
    outs: list[ControllerCycle] = []
    truths: list[float] = []  # after each round's shard cycles
    given: list[float] = []  # the budget last sent to LATE before each round's split
    plains: list[dict[str, float]] = []  # what the plain split would have given
    steadies: list[dict[str, float]] = []  # the same, or the last split kept at a steady budget
    wires: list[dict[str, Budget]] = []  # what each round's split sent
    for r in range(5):
        given.append(next(b.budget_w for b in reversed(site.bus.budgets) if b.shard_id == LATE))
        out = await site.round_(low_w if r >= cut_at else high_w)
        if r == 0:
            site.dead.add(LATE)  # it stops after its last report: its rigs keep their plan
            dead_w = site.fleets[LATE].power_w
            assert dead_w == pytest.approx(late_aggregate_planned_w(site))
        truths.append(site.truth_w())
        outs.append(out)
        wires.append(site.sent(out))
        assert out.split is not None
        plain = split_budget(out.split.budget_w, site.curves())
        plains.append({s: sh.budget_w for s, sh in plain.shares.items()})
        steady = steady_split(prev_split, plain, site.curves())
        steadies.append({s: sh.budget_w for s, sh in steady.shares.items()})
        prev_split = out.split

    # The site's truth (the dead shard's rigs at their last plan, the heard shards' plans to
    # the last round's budgets) is under the budget from the first round whose budgets came
    # from a cycle that knew LATE was late.
    for r in range(max(cut_at, 1) + 1, 5):
        assert truths[r] <= low_w + 1e-6, f"round {r}: over by {truths[r] - low_w:.0f} W"
    assert truths[4] < low_w  # the heard shards shed
    assert site.fleets[LATE].power_w == dead_w  # dead: nothing carried out
    if cut_at == 0:  # the cycle nobody can tell: over for one cycle, as before
        assert truths[1] > low_w

    for r in range(max(cut_at, 1), 3):  # late and cut: held
        out = outs[r]
        assert out.split is not None
        shares = {s: sh.budget_w for s, sh in out.split.shares.items()}
        # The cut is real: the plain split would lower the late shard below what it runs to.
        assert plains[r][LATE] < max(given[r], dead_w) - 1_000.0
        wire = wires[r]
        assert wire[LATE].budget_w == shares[LATE]
        assert given[r] - 1e-6 <= shares[LATE] <= max(given[r], dead_w) + 1e-6  # not reduced
        held_w = max(given[r], dead_w)  # its last budget or its rigs' draw, the higher
        # The heard shards get the rest, less at most a step the re-split may place
        # differently (a heard share is never above its plain share).
        heard_w = sum(shares[s] for s in heard)
        assert low_w - held_w - site.step_w <= heard_w <= low_w - held_w + 1e-6
        for s in heard:  # shedding stays first: no less of a cut than the plain split
            assert shares[s] <= plains[r][s] + 1e-6
        assert sum(b.budget_w for b in wire.values()) <= low_w + 1e-6
        assert out.late_shards == (LATE,) and out.held_shards == (LATE,)
        assert out.held_w == pytest.approx(held_w)
        assert out.silent_shards == () and out.reserved_w == 0.0
    if cut_at == 2:  # late at an unchanged budget: the steady split, nothing held
        assert outs[1].late_shards == (LATE,) and outs[1].held_shards == ()
        assert outs[1].split is not None
        assert {s: sh.budget_w for s, sh in outs[1].split.shares.items()} == steadies[1]
    for out, wire in zip(outs[3:], wires[3:], strict=True):  # silent: as before
        assert out.silent_shards == (LATE,) and out.late_shards == ()
        assert out.reserved_w == pytest.approx(site.nominal_w[LATE])
        assert LATE not in wire
        total_w = sum(b.budget_w for b in wire.values())
        assert total_w == pytest.approx(low_w - site.nominal_w[LATE])


@pytest.mark.asyncio
@pytest.mark.parametrize("rise", [1.0, 1.1])
async def test_a_late_message_without_a_cut_changes_nothing(rise: float) -> None:
    """Two identical sites; on one, LATE's aggregate comes after the controller's cycle once.
    Every cycle's split and budgets are the same on both."""
    sites = [Site(), Site()]
    budget_w = 0.6 * sites[0].total_nominal_w
    for site in sites:
        await warm(site, budget_w)
    sites[1].bus.delay.add(LATE)
    a, b = [await site.round_(rise * budget_w) for site in sites]
    assert a.late_shards == () and b.late_shards == (LATE,) and b.held_shards == ()
    assert b.split == a.split
    assert b.split == split_budget(rise * budget_w, sites[1].curves())  # the plain split
    assert site_budgets(sites[1], b) == site_budgets(sites[0], a)
    sites[1].bus.release()  # it comes in: the next cycle hears everyone again
    a, b = [await site.round_(rise * budget_w) for site in sites]
    assert b.late_shards == () and b.split == a.split
    assert site_budgets(sites[1], b) == site_budgets(sites[0], a)


def site_budgets(site: Site, out: ControllerCycle) -> dict[str, tuple[float, int | None, float]]:
    return {s: (b.budget_w, b.max_wakes, b.overload_w) for s, b in site.sent(out).items()}
