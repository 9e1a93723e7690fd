"""kill -9 of a real shard process on a real nats-server: counted at nominal, the others shed.

The controller and three shards run in this process, cycled round by round; the fourth shard
is tests/cluster/shard_child.py in its own process, cycling on its own every 0.2 s. A tap on
every shard's budget subject records what the controller really sends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from cluster_fleet import SHARDS, by_shard, mixed_fleet
from nats.aio.client import Client
from nats.aio.msg import Msg
from servers import ServerProcess
from test_cluster_nats import CONSTRAINTS, FAILSAFE_LIMIT_W, MemoryFleet, close, flush
from waiting import wait_until

from minerd.clock import system_clock
from minerd.cluster.lease import ControllerLease, lease_store
from minerd.cluster.messages import Budget, decode_budget
from minerd.cluster.nodes import ControllerCycle, ControllerNode, ShardNode
from minerd.cluster.safety import BudgetGate, BudgetSource
from minerd.cluster.subjects import budget_subject

# A hang fails here, well before the suite's 300 s, naming the test.
pytestmark = pytest.mark.timeout(150)

SITE = "shardkill1"
DEAD = "s4"  # the shard run as a child process, and killed
N_RIGS = 400
SEED = 3
STALE_CYCLES = 3  # the controller's configured count of missed aggregates
LEASE_TTL_S = 60.0  # one controller, never deposed: renewed every round
WAIT_S = 60.0  # generous: a bound on a hang, never asserted


@pytest_asyncio.fixture
async def clients(nats_server: ServerProcess) -> AsyncIterator[list[Client]]:
    out: list[Client] = []
    yield out
    for nc in out:
        await close(nc)


async def connect(srv: ServerProcess, clients: list[Client]) -> Client:
    nc = await nats.connect(srv.url, connect_timeout=5, allow_reconnect=False)
    clients.append(nc)
    return nc


class BudgetTap:
    """Every budget the controller publishes to any shard of the site, in order."""

    def __init__(self) -> None:
        self.budgets: list[Budget] = []

    async def start(self, nc: Client, site: str) -> None:
        for s in SHARDS:
            await nc.subscribe(budget_subject(site, s), cb=self._on)
        await nc.flush(timeout=5)

    async def _on(self, msg: Msg) -> None:
        self.budgets.append(decode_budget(msg.data, msg.subject))


@dataclass(frozen=True)
class Round:
    cycle: int  # the controller's cycle number (1 = its first)
    dead_seq_before: int  # the child's last aggregate heard just before the cycle began
    out: ControllerCycle
    sent: tuple[Budget, ...]  # what reached the tap from this cycle
    live_planned_w: float  # the live shards' plans at the start of the round


def spawn_shard(srv: ServerProcess, site: str, shard_id: str, log: Path) -> subprocess.Popen[bytes]:
    child = Path(__file__).parent / "shard_child.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(child.parent), *sys.path])}
    argv = [sys.executable, str(child), srv.url, site, shard_id, str(N_RIGS), str(SEED)]
    argv.append(str(FAILSAFE_LIMIT_W))
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


@pytest.mark.asyncio
async def test_kill_9_of_a_shard_process_its_rigs_count_at_nominal_and_the_others_shed(
    nats_server: ServerProcess, clients: list[Client], tmp_path: Path
) -> None:
    fleets = by_shard(mixed_fleet(N_RIGS, seed=SEED))  # the child builds its part the same way
    nominal = {s: sum(r.model.nominal_power_w for r in rigs) for s, rigs in fleets.items()}
    budget_w = 0.6 * sum(nominal.values())
    nc = await connect(nats_server, clients)
    lease = ControllerLease(
        await lease_store(nc.jetstream(), SITE, LEASE_TTL_S), "ctrl-a", LEASE_TTL_S, system_clock
    )
    ctrl = ControllerNode(
        nc, SITE, "ctrl-a", lease, SHARDS, FAILSAFE_LIMIT_W, system_clock, STALE_CYCLES
    )
    await ctrl.start()
    live: dict[str, tuple[ShardNode, MemoryFleet]] = {}
    for s in SHARDS:
        if s == DEAD:
            continue
        fleet = MemoryFleet(fleets[s])
        gate = BudgetGate(s, FAILSAFE_LIMIT_W / len(SHARDS))
        node = ShardNode(
            await connect(nats_server, clients), SITE, s, fleet, gate, CONSTRAINTS, system_clock
        )
        await node.start()
        live[s] = (node, fleet)
    live_nodes = [n for n, _ in live.values()]
    tap = BudgetTap()
    await tap.start(await connect(nats_server, clients), SITE)
    rounds: list[Round] = []
    assert await lease.tick()
    first_revision = lease.revision

    async def round_(wait_for_child: bool) -> Round:
        """The live shards plan and report, the controller splits, the budgets arrive."""
        assert await lease.tick()
        for n in live_nodes:
            await n.cycle()
        await flush(live_nodes)
        await wait_until(
            lambda: all(ctrl.heard_seq(n.shard_id) == n.seq for n in live_nodes),
            WAIT_S,
            "the live shards' aggregates heard",
        )
        if wait_for_child:  # pace the controller by the child, so it is never stale alive
            seen = rounds[-1].dead_seq_before if rounds else 0
            await wait_until(
                lambda: ctrl.heard_seq(DEAD) > seen, WAIT_S, "a new aggregate of the child"
            )
        planned_w = sum(n.last.plan.planned_power_w for n in live_nodes if n.last is not None)
        sent_before = ctrl.budgets_sent
        # No await between the sample and the cycle's start: an aggregate the controller
        # hears after this sample is stamped with this cycle (or a later one).
        dead_seq = ctrl.heard_seq(DEAD)
        out = await ctrl.cycle(budget_w)
        assert out.leader
        await flush([ctrl])
        await wait_until(lambda: len(tap.budgets) == ctrl.budgets_sent, WAIT_S, "budgets tapped")
        await wait_until(
            lambda: all(n.gate.has_pending for n in live_nodes), WAIT_S, "budgets heard"
        )
        r = Round(
            len(rounds) + 1,
            dead_seq,
            out,
            tuple(tap.budgets[sent_before:]),
            planned_w,
        )
        rounds.append(r)
        return r

    def child_plans_to_ctrl() -> bool:
        """The controller's view: the child's latest aggregate says it planned to a budget of
        this lease (the revision rises with every renewal)."""
        a = next((a for a in ctrl.live_aggregates() if a.shard_id == DEAD), None)
        return a is not None and not a.failsafe and a.budget_revision >= first_revision

    log_path = tmp_path / "shard-s4.log"
    proc = spawn_shard(nats_server, SITE, DEAD, log_path)
    try:
        await wait_until(lambda: ctrl.heard_seq(DEAD) > 0, WAIT_S, "the child shard reports")
        for _ in range(40):
            r = await round_(wait_for_child=True)
            covered = r.out.split is not None and DEAD in r.out.split.shares
            if len(rounds) >= 3 and covered and child_plans_to_ctrl():
                break
        assert b"shard s4 planned" in log_path.read_bytes()
        assert covered and child_plans_to_ctrl()
        killed_after = len(rounds)  # cycles 1..killed_after ran with the child alive
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL

        declared: int | None = None
        for _ in range(40):  # the controller and the live shards go on
            r = await round_(wait_for_child=False)
            if declared is None and DEAD in r.out.silent_shards:
                declared = r.cycle
            if declared is not None and r.cycle >= declared + 3:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)

    before, after = rounds[:killed_after], rounds[killed_after:]
    assert declared is not None, "the dead shard was never counted silent"
    # The child was live and fully planned to while it ran.
    assert all(r.out.silent_shards == () and r.out.reserved_w == 0.0 for r in before)
    assert any(b.shard_id == DEAD for b in before[-1].sent)  # the tap sees its subject
    last_alive = before[-1]

    # (a) Counted silent exactly stale_cycles cycles after the cycle its last aggregate came
    # in (stamped: the last cycle whose pre-cycle sample had not seen it yet), and from then
    # on at its nominal power as its last aggregate gave it.
    final_seq = ctrl.heard_seq(DEAD)
    last_heard = max(r.cycle for r in rounds if r.dead_seq_before < final_seq)
    assert declared == last_heard + STALE_CYCLES + 1
    assert declared > killed_after  # never declared while it was alive
    for r in rounds:
        silent = r.cycle >= declared
        assert r.out.silent_shards == ((DEAD,) if silent else ())
        assert r.out.reserved_w == pytest.approx(nominal[DEAD] if silent else 0.0)
        assert (DEAD in r.out.live_shards) is not silent
    site = ctrl.site_rigs()
    assert site.live_shards == 3
    assert site.nominal_w == pytest.approx(sum(nominal.values()))
    live_aggs = ctrl.live_aggregates()
    assert {a.shard_id for a in live_aggs} == set(live)
    assert site.planned_w == pytest.approx(
        sum(a.planned_power_w for a in live_aggs) + nominal[DEAD]
    )
    assert site.counted_w == pytest.approx(
        sum(a.counted_power_w for a in live_aggs) + nominal[DEAD]
    )

    # (b) From the declaration, the live shards' budgets (split and wire) leave room for the
    # dead shard's nominal power, and they shed to them.
    silent_rounds = [r for r in after if r.cycle >= declared]
    for r in silent_rounds:
        assert r.out.split is not None
        assert set(r.out.split.shares) == set(live)
        split_w = sum(sh.budget_w for sh in r.out.split.shares.values())
        wire_w = sum(b.budget_w for b in r.sent)
        assert {b.shard_id for b in r.sent} == set(live) and len(r.sent) == len(live)
        assert split_w == pytest.approx(budget_w - nominal[DEAD])
        assert wire_w <= budget_w - nominal[DEAD] + 1e-6
    # The live shards' plans at the last round: made to the budgets of a silent-counted cycle.
    shed_w = rounds[-1].live_planned_w
    assert rounds[-1].cycle - 1 >= declared
    for s, (n, fleet) in live.items():
        assert n.last is not None and n.last.decision.source is BudgetSource.BUDGET
        wire = [b for b in rounds[-2].sent if b.shard_id == s]
        assert len(wire) == 1 and n.last.decision.budget_w == wire[0].budget_w
        assert fleet.applied[-1].shortfall_w == 0.0
    # Before: the live shards planned to a four-way split with the child at its share (the
    # budgets of the cycle before the last one with the child alive).
    alive_w = last_alive.live_planned_w
    split_before = before[-2].out.split
    assert split_before is not None and DEAD in split_before.shares
    dead_share_w = split_before.shares[DEAD].budget_w
    assert dead_share_w < nominal[DEAD]  # so the live shards must give up the difference
    assert shed_w < alive_w
    assert shed_w + nominal[DEAD] <= budget_w + 1e-6
    assert sum(f.power_w for _, f in live.values()) + nominal[DEAD] <= budget_w + 1e-6

    # (c) Nothing is sent to the dead shard once it is counted silent. Before that (the
    # cycles it was not yet known dead) its budgets still went out, unheard: the dead shard
    # was counted at its share of the split. No cycle's budgets ever exceed the site budget.
    assert not any(b.shard_id == DEAD for r in silent_rounds for b in r.sent)
    grace = [r for r in after if r.cycle < declared]
    assert all({b.shard_id for b in r.sent} == set(SHARDS) for r in grace)
    for r in rounds:
        assert sum(b.budget_w for b in r.sent) <= budget_w + 1e-6
