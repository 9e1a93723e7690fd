"""kill -9 of a real shard process on a real nats-server, and a cut right after: in the
cycles before the dead shard is declared silent (it is only late), it is held at what it
may still run to and the three live shards take the whole cut.

As test_cluster_shard_kill.py (whose helpers this reuses): the controller and three shards
in this process, cycled round by round, the fourth shard a child process killed with
SIGKILL. Which controller cycles the child is late in is read from the sequence numbers the
controller heard, never from the wall clock.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import nats
import pytest
from cluster_fleet import SHARDS, by_shard, mixed_fleet
from nats.aio.client import Client
from servers import ServerProcess
from test_cluster_nats import CONSTRAINTS, FAILSAFE_LIMIT_W, MemoryFleet, close, flush
from test_cluster_shard_kill import (
    DEAD,
    LEASE_TTL_S,
    N_RIGS,
    SEED,
    STALE_CYCLES,
    WAIT_S,
    BudgetTap,
    Round,
    spawn_shard,
)
from waiting import wait_until

from minerd.clock import system_clock
from minerd.cluster.curve import ShardCurve
from minerd.cluster.lease import ControllerLease, lease_store
from minerd.cluster.messages import ShardAggregate
from minerd.cluster.nodes import ControllerNode, ShardNode
from minerd.cluster.safety import BudgetGate
from minerd.cluster.split import split_budget

pytestmark = pytest.mark.timeout(150)

SITE = "shardkillcut1"


@pytest.mark.asyncio
async def test_a_cut_while_a_killed_shard_is_late_is_taken_by_the_live_shards(
    nats_server: ServerProcess, tmp_path: Path
) -> None:
    fleets = by_shard(mixed_fleet(N_RIGS, seed=SEED))
    nominal = {s: sum(r.model.nominal_power_w for r in rigs) for s, rigs in fleets.items()}
    high_w = 0.6 * sum(nominal.values())
    low_w = 0.45 * sum(nominal.values())
    clients: list[Client] = []

    async def connect() -> Client:
        nc = await nats.connect(nats_server.url, connect_timeout=5, allow_reconnect=False)
        clients.append(nc)
        return nc

    nc = await connect()
    lease = ControllerLease(
        await lease_store(nc.jetstream(), SITE, LEASE_TTL_S), "ctrl-a", LEASE_TTL_S, system_clock
    )
    ctrl = ControllerNode(
        nc, SITE, "ctrl-a", lease, SHARDS, FAILSAFE_LIMIT_W, system_clock, STALE_CYCLES
    )
    await ctrl.start()
    live: list[ShardNode] = []
    for s in SHARDS:
        if s != DEAD:
            gate = BudgetGate(s, FAILSAFE_LIMIT_W / len(SHARDS))
            node = ShardNode(
                await connect(), SITE, s, MemoryFleet(fleets[s]), gate, CONSTRAINTS, system_clock
            )
            await node.start()
            live.append(node)
    tap = BudgetTap()
    await tap.start(await connect(), SITE)
    rounds: list[Round] = []
    dead_aggs: list[ShardAggregate | None] = []  # the child's latest heard, before each cycle
    curves: list[dict[str, ShardCurve]] = []  # the live shards' curves, before each cycle

    async def round_(budget_w: float, wait_for_child: bool) -> Round:
        assert await lease.tick()
        for n in live:
            await n.cycle()
        await flush(live)
        await wait_until(
            lambda: all(ctrl.heard_seq(n.shard_id) == n.seq for n in live),
            WAIT_S,
            "the live shards' aggregates heard",
        )
        if wait_for_child:
            seen = rounds[-1].dead_seq_before if rounds else 0
            await wait_until(lambda: ctrl.heard_seq(DEAD) > seen, WAIT_S, "the child reports")
        planned_w = sum(n.last.plan.planned_power_w for n in live if n.last is not None)
        sent_before = ctrl.budgets_sent
        # No await between this sample and the cycle's start (see test_cluster_shard_kill).
        dead_seq = ctrl.heard_seq(DEAD)
        aggs = ctrl.live_aggregates()
        dead_aggs.append(next((a for a in aggs if a.shard_id == DEAD), None))
        curves.append({a.shard_id: a.curve for a in aggs})
        out = await ctrl.cycle(budget_w)
        assert out.leader
        await flush([ctrl])
        await wait_until(lambda: len(tap.budgets) == ctrl.budgets_sent, WAIT_S, "budgets tapped")
        await wait_until(lambda: all(n.gate.has_pending for n in live), WAIT_S, "budgets heard")
        r = Round(len(rounds) + 1, dead_seq, out, tuple(tap.budgets[sent_before:]), planned_w)
        rounds.append(r)
        return r

    proc = spawn_shard(nats_server, SITE, DEAD, tmp_path / "shard-s4.log")
    try:
        await wait_until(lambda: ctrl.heard_seq(DEAD) > 0, WAIT_S, "the child shard reports")
        for _ in range(40):  # until the child plans to this controller's budgets
            r = await round_(high_w, wait_for_child=True)
            a = next((a for a in ctrl.live_aggregates() if a.shard_id == DEAD), None)
            if len(rounds) >= 3 and a is not None and not a.failsafe and a.budget_revision > 0:
                break
        assert a is not None and not a.failsafe
        killed_after = len(rounds)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        while not rounds[-1].out.silent_shards and len(rounds) < killed_after + 10:
            await round_(low_w, wait_for_child=False)  # the cut, from the first cycle after
        await round_(low_w, wait_for_child=False)  # the live shards' plans to the last one
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for c in clients:
            await close(c)

    final_seq = ctrl.heard_seq(DEAD)
    last_heard = max(r.cycle for r in rounds if r.dead_seq_before < final_seq)
    declared = next(r.cycle for r in rounds if r.out.silent_shards)
    assert declared == last_heard + STALE_CYCLES + 1
    # Late (not heard this cycle, not yet silent): the cycles after the one that heard it last.
    late = [r for r in rounds if last_heard + 1 < r.cycle < declared]
    assert len(late) == STALE_CYCLES - 1 and late[0].cycle > killed_after  # all with the cut
    last = dead_aggs[late[0].cycle - 1]
    assert last is not None and last.seq == final_seq
    dead_w = last.planned_power_w  # its rigs stay at its last plan (they obey at once)
    for r in late:
        # What it may still run to: the last budget it was sent, or its last plan.
        given_w = [b.budget_w for q in rounds[: r.cycle - 1] for b in q.sent if b.shard_id == DEAD]
        runs_to_w = max(given_w[-1], dead_w)
        wire = {b.shard_id: b.budget_w for b in r.sent}
        assert set(wire) == set(SHARDS)  # still sent to: it may be alive
        assert wire[DEAD] >= given_w[-1] - 1e-6  # not cut
        live_w = sum(w for s, w in wire.items() if s != DEAD)
        assert live_w <= low_w - runs_to_w + 1e-6  # the live shards take the whole cut
        # The plain split would have cut the dead shard: the test is not vacuous.
        assert set(curves[r.cycle - 1]) == set(SHARDS)
        assert split_budget(low_w, curves[r.cycle - 1]).shares[DEAD].budget_w < runs_to_w
        # The live shards' plans to those budgets (made the round after) plus the dead
        # shard's rigs stay under the cut budget.
        assert rounds[r.cycle].live_planned_w + dead_w <= low_w + 1e-6
        out = r.out
        assert out.late_shards == (DEAD,) and out.held_shards == (DEAD,)
        assert out.held_w >= runs_to_w - 1e-6
        assert live_w <= low_w - out.held_w + 1e-6
    for r in rounds:
        assert (
            sum(b.budget_w for b in r.sent) <= (high_w if r.cycle <= killed_after else low_w) + 1e-6
        )
