"""A split site on a real nats-server: controller lease, takeover, fencing, shard fail-safe."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from cluster_fleet import SHARDS, by_shard, mixed_fleet
from nats.aio.client import Client
from nats.js.kv import KeyValue
from nats_server import start_nats_server
from servers import ServerProcess
from waiting import wait_until

from minerd.cancelling import raise_if_cancelled
from minerd.clock import system_clock
from minerd.cluster.lease import ControllerLease, lease_store
from minerd.cluster.messages import Budget, encode_budget
from minerd.cluster.nodes import ControllerNode, ShardNode, ShardSnapshot
from minerd.cluster.safety import BudgetGate, BudgetSource, GateDecision
from minerd.cluster.subjects import budget_subject
from minerd.control.counting import dispatched
from minerd.control.planner import Plan, PlanConstraints, PlanRig
from minerd.model import RigState

# A hang fails here, well before the suite's 300 s, naming the test.
pytestmark = pytest.mark.timeout(150)

SITE = "site1"
TTL_S = 2.0
CONSTRAINTS = PlanConstraints()
FAILSAFE_LIMIT_W = 400_000.0


class MemoryFleet:
    """A shard's rigs that obey at once: the plan becomes the next snapshot. Each apply is a
    cycle of cycle_s: a rig that wakes or sleeps restarts its since_switch_s, the others' age
    (so min-on and min-off windows open and expire, as the daemon's intent book times them)."""

    def __init__(self, rigs: Sequence[PlanRig], cycle_s: float = 1.0) -> None:
        self.rigs = list(rigs)
        self.cycle_s = cycle_s
        self.applied: list[Plan] = []

    async def snapshot(self) -> ShardSnapshot:
        return ShardSnapshot(tuple(self.rigs), 0.0, len(self.rigs))

    async def apply(self, plan: Plan, decision: GateDecision) -> None:
        self.applied.append(plan)
        out = []
        for r, sp in zip(self.rigs, plan.setpoints, strict=True):
            state = RigState.HASHING if sp.awake else RigState.SLEEPING
            since_s = 0.0 if sp.awake != r.awake else r.since_switch_s + self.cycle_s
            out.append(
                dataclasses.replace(
                    r,
                    awake=sp.awake,
                    power_w=sp.power_w,
                    state=state,
                    setpoint_power_w=sp.power_w if sp.awake else None,
                    since_switch_s=since_s,
                )
            )
        self.rigs = out

    @property
    def power_w(self) -> float:
        return sum(r.power_w for r in self.rigs)


@pytest_asyncio.fixture
async def connect(nats_server: ServerProcess) -> AsyncIterator[list[Client]]:
    clients: list[Client] = []
    yield clients
    for nc in clients:
        await close(nc)


async def close(nc: Client) -> None:
    """Close a client, bounded: a hung close must fail the test, not stall the run."""
    if not nc.is_closed:
        async with asyncio.timeout(10):
            await nc.close()


async def client(nats_server: ServerProcess, clients: list[Client]) -> Client:
    nc = await nats.connect(nats_server.url, connect_timeout=5, allow_reconnect=False)
    clients.append(nc)
    return nc


async def controller(
    srv: ServerProcess, clients: list[Client], name: str, site: str = SITE
) -> tuple[ControllerNode, ControllerLease]:
    nc = await client(srv, clients)
    kv = await lease_store(nc.jetstream(), site, TTL_S)
    lease = ControllerLease(kv, name, TTL_S, system_clock)
    node = ControllerNode(nc, site, name, lease, SHARDS, FAILSAFE_LIMIT_W, system_clock)
    await node.start()
    return node, lease


async def shards(
    srv: ServerProcess, clients: list[Client], n_rigs: int = 400, site: str = SITE
) -> dict[str, tuple[ShardNode, MemoryFleet]]:
    out = {}
    for s, rigs in by_shard(mixed_fleet(n_rigs, seed=3)).items():
        fleet = MemoryFleet(rigs)
        gate = BudgetGate(s, FAILSAFE_LIMIT_W / len(SHARDS))
        node = ShardNode(
            await client(srv, clients), site, s, fleet, gate, CONSTRAINTS, system_clock
        )
        await node.start()
        out[s] = (node, fleet)
    return out


async def flush(nodes: Sequence[ShardNode | ControllerNode]) -> None:
    for n in nodes:
        await n.nc.flush(timeout=5)


@pytest.mark.asyncio
async def test_one_leader_then_the_standby_takes_over_when_it_dies(
    nats_server: ServerProcess, connect: list[Client]
) -> None:
    a_node, a = await controller(nats_server, connect, "ctrl-a", site="lease1")
    _, b = await controller(nats_server, connect, "ctrl-b", site="lease1")
    both_seen = 0

    async def watch() -> None:
        nonlocal both_seen
        while True:
            both_seen += a.held() and b.held()
            await asyncio.sleep(0.01)

    async with asyncio.TaskGroup() as tg:
        watcher = tg.create_task(watch())
        keep_a = tg.create_task(a.keep(0.2))
        await wait_until(a.held, 20, "ctrl-a took the free lease")
        keep_b = tg.create_task(b.keep(0.2))
        # b stands by through many renewals of a's lease
        await wait_until(lambda: a.revision > 10, 30, "ctrl-a renewed its lease")
        assert not b.held() and b.terms == 0
        last_a = a.revision
        keep_a.cancel()  # ctrl-a dies: no release, the key must expire
        await close(a_node.nc)
        await wait_until(b.held, 30, "ctrl-b took the lease after ctrl-a's expired")
        assert b.revision > last_a
        assert not a.held()  # the dead one no longer counts itself leader either
        keep_b.cancel()
        watcher.cancel()
    assert both_seen == 0
    assert b.terms == 1


@pytest.mark.asyncio
async def test_shards_follow_the_new_leader_and_ignore_the_deposed_one(
    nats_server: ServerProcess, connect: list[Client]
) -> None:
    site = "fence1"
    a_node, a = await controller(nats_server, connect, "ctrl-a", site=site)
    b_node, b = await controller(nats_server, connect, "ctrl-b", site=site)
    nodes = await shards(nats_server, connect, site=site)
    shard_nodes = [n for n, _ in nodes.values()]
    assert await a.tick() and not await b.tick()
    nominal_w = sum(sum(r.model.nominal_power_w for r in f.rigs) for _, f in nodes.values())

    async def cycle(ctrl: ControllerNode, budget_w: float) -> None:
        # shards report, the controller splits, the shards hear their budgets
        for n in shard_nodes:
            await n.cycle()
        await flush(shard_nodes)
        await wait_until(lambda: all(ctrl.heard_seq(s) > 0 for s in SHARDS), 20, "aggregates heard")
        out = await ctrl.cycle(budget_w)
        if out.leader:
            await flush([ctrl])
            await wait_until(
                lambda: all(n.gate.has_pending for n in shard_nodes), 20, "budgets heard"
            )

    await cycle(a_node, 0.5 * nominal_w)
    assert not (await b_node.cycle(0.5 * nominal_w)).leader  # standby sends nothing
    for n, _ in nodes.values():
        d = (await n.cycle()).decision
        assert d.source is BudgetSource.BUDGET and d.lease_revision == a.revision
    assert sum(f.power_w for _, f in nodes.values()) <= 0.5 * nominal_w + 1e-6
    old_rev = a.revision

    # ctrl-a hangs (no renewals); its key expires; ctrl-b takes the lease.
    await wait_until(lambda: not a.held(), 30, "ctrl-a's own lease view expired")
    for _ in range(300):  # ctrl-b's standby loop, by hand
        if await b.tick():
            break
        await asyncio.sleep(0.1)
    assert b.held() and b.revision > old_rev
    await cycle(b_node, 0.3 * nominal_w)

    # The deposed ctrl-a, still believing in revision old_rev, sends a raise to every shard.
    for s in SHARDS:
        raise_ = Budget(site, s, "ctrl-a", old_rev, 10_000, 0.0, nominal_w, 1.0, None)
        await a_node.nc.publish(budget_subject(site, s), encode_budget(raise_))
    await flush([a_node])
    await wait_until(
        lambda: all(n.gate.ignored >= 1 for n in shard_nodes), 20, "stale raises reached shards"
    )
    for n, _ in nodes.values():
        d = (await n.cycle()).decision
        assert d.lease_revision == b.revision
    assert sum(f.power_w for _, f in nodes.values()) <= 0.3 * nominal_w + 1e-6


@pytest.mark.asyncio
async def test_a_shard_without_budgets_sheds_to_its_failsafe_share_on_the_third_cycle(
    nats_server: ServerProcess, connect: list[Client]
) -> None:
    site = "quiet1"
    ctrl, lease = await controller(nats_server, connect, "ctrl-a", site=site)
    nodes = await shards(nats_server, connect, site=site)
    assert await lease.tick()
    shard_nodes = [n for n, _ in nodes.values()]
    for n in shard_nodes:
        await n.cycle()
    await flush(shard_nodes)
    await wait_until(lambda: all(ctrl.heard_seq(s) > 0 for s in SHARDS), 20, "aggregates heard")
    nominal_w = sum(sum(r.model.nominal_power_w for r in f.rigs) for _, f in nodes.values())
    await ctrl.cycle(0.9 * nominal_w)  # a generous budget: above the fail-safe shares
    await flush([ctrl])
    await wait_until(lambda: all(n.gate.has_pending for n in shard_nodes), 20, "budgets heard")
    shares = ctrl.failsafe_shares_w()
    assert sum(shares.values()) == pytest.approx(FAILSAFE_LIMIT_W)

    sources = []
    for _ in range(4):  # the controller is silent from here on
        out = {s: await n.cycle() for s, (n, _) in nodes.items()}
        sources.append({c.decision.source for c in out.values()})
    assert sources == [
        {BudgetSource.BUDGET},
        {BudgetSource.HELD},
        {BudgetSource.HELD},
        {BudgetSource.FAILSAFE},
    ]
    for s, (n, fleet) in nodes.items():
        # Each plans within its share, by its nominal power (small shortfalls aside: fixed rigs)
        last = fleet.applied[-1]
        assert last.budget_w == pytest.approx(shares[s])
        assert fleet.power_w <= max(shares[s], last.planned_power_w) + 1e-6
        assert n.gate.failsafe_w == pytest.approx(shares[s])
    assert sum(f.power_w for _, f in nodes.values()) <= FAILSAFE_LIMIT_W + sum(
        f.applied[-1].shortfall_w for _, f in nodes.values()
    )


@pytest.mark.asyncio
async def test_a_silent_shard_is_counted_at_nominal_and_the_others_get_the_rest(
    nats_server: ServerProcess, connect: list[Client]
) -> None:
    site = "dead1"
    ctrl, lease = await controller(nats_server, connect, "ctrl-a", site=site)
    nodes = await shards(nats_server, connect, site=site)
    assert await lease.tick()
    nominal = {s: sum(r.model.nominal_power_w for r in f.rigs) for s, (_, f) in nodes.items()}
    budget_w = 0.6 * sum(nominal.values())
    live = [n for s, (n, _) in nodes.items() if s != "s4"]
    for n, _ in nodes.values():
        await n.cycle()
    await flush([n for n, _ in nodes.values()])
    await wait_until(lambda: all(ctrl.heard_seq(s) > 0 for s in SHARDS), 20, "aggregates heard")
    first = await ctrl.cycle(budget_w)
    assert first.silent_shards == () and first.reserved_w == 0.0
    outs = []
    for _ in range(4):  # s4 is killed: no more aggregates from it
        for n in live:
            await n.cycle()
        await flush(live)
        await wait_until(
            lambda: all(ctrl.heard_seq(n.shard_id) == n.seq for n in live), 20, "aggregates heard"
        )
        outs.append(await ctrl.cycle(budget_w))
    # Counted silent from the third controller cycle without its aggregate, as a shard
    # counts cycles without a budget.
    assert [o.silent_shards for o in outs] == [(), (), ("s4",), ("s4",)]
    last = outs[-1]
    assert last.reserved_w == pytest.approx(nominal["s4"])
    assert last.split is not None
    assert set(last.split.shares) == {"s1", "s2", "s3"}
    assert sum(sh.budget_w for sh in last.split.shares.values()) == pytest.approx(
        budget_w - nominal["s4"]
    )


@pytest.mark.asyncio
async def test_garbage_on_the_budget_subject_is_counted_and_ignored(
    nats_server: ServerProcess, connect: list[Client]
) -> None:
    site = "junk1"
    nodes = await shards(nats_server, connect, n_rigs=40, site=site)
    n, _ = nodes["s1"]
    nc = await client(nats_server, connect)
    await nc.publish(budget_subject(site, "s1"), b'{"v": 99}')
    await nc.publish(budget_subject(site, "s1"), b"not json")
    await nc.flush(timeout=5)
    await wait_until(lambda: n.bad_messages == 2, 20, "both bad budgets counted")
    assert (await n.cycle()).decision.source is BudgetSource.FAILSAFE


def spawn_controller(
    srv: ServerProcess, site: str, name: str, budget_w: float, log: Path
) -> subprocess.Popen[bytes]:
    child = Path(__file__).parent / "controller_child.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(child.parent), *sys.path])}
    argv = [sys.executable, str(child), srv.url, site, name, str(budget_w), str(TTL_S)]
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


@pytest.mark.asyncio
async def test_kill_9_of_the_leading_controller_process_the_standby_takes_over_safely(
    nats_server: ServerProcess, connect: list[Client], tmp_path: Path
) -> None:
    site = "kill1"
    nodes = await shards(nats_server, connect, site=site)
    shard_nodes = [n for n, _ in nodes.values()]
    nominal_w = sum(sum(r.model.nominal_power_w for r in f.rigs) for _, f in nodes.values())
    a_budget_w, b_budget_w = 0.5 * nominal_w, 0.4 * nominal_w
    log_path = tmp_path / "ctrl-a.log"
    proc = spawn_controller(nats_server, site, "ctrl-a", a_budget_w, log_path)
    try:
        await wait_until(lambda: b"leader" in log_path.read_bytes(), 60, "ctrl-a took the lease")
        b_node, b = await controller(nats_server, connect, "ctrl-b", site=site)
        decisions: list[GateDecision] = []

        # Each round ends with raise_if_cancelled(): nats-py can lose a cancel that lands
        # with a reply (minerd/cancelling.py), and a loop that ran on would hang the
        # TaskGroup below until the test's timeout (seen once in a fresh-clone run).
        async def shards_run() -> None:
            while True:
                for n in shard_nodes:
                    decisions.append((await n.cycle()).decision)
                raise_if_cancelled()
                await asyncio.sleep(0.2)

        async def standby_run() -> None:
            while True:
                await b.tick()
                await b_node.cycle(b_budget_w)
                raise_if_cancelled()
                await asyncio.sleep(0.2)

        def last_round_from(name: str) -> bool:
            return len(decisions) >= 4 and all(d.controller_id == name for d in decisions[-4:])

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(shards_run()), tg.create_task(standby_run())]
            await wait_until(lambda: last_round_from("ctrl-a"), 60, "shards plan to ctrl-a")
            assert not b.held()
            a_rev = max(d.lease_revision for d in decisions)
            killed_at = len(decisions)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            await wait_until(lambda: last_round_from("ctrl-b"), 60, "shards plan to ctrl-b")
            for t in tasks:
                t.cancel()
        assert b.revision > a_rev and b.terms == 1
        before, gap = decisions[:killed_at], decisions[killed_at:]
        takeover = next(i for i, d in enumerate(gap) if d.controller_id == "ctrl-b")
        # From the kill to the first budget of ctrl-b: no raise, no rig woken. Shards held
        # ctrl-a's budgets, then (if the gap was long) fell to their fail-safe shares.
        assert all(
            d.source is not BudgetSource.BUDGET or d.controller_id == "ctrl-a"
            for d in gap[:takeover]
        )
        assert all(d.max_wakes == 0 for d in gap[:takeover] if d.source is not BudgetSource.BUDGET)
        assert max(d.budget_w for d in gap[:takeover]) <= max(d.budget_w for d in before)
        # A round later (budgets in flight at the takeover), only ctrl-b is planned to.
        assert all(d.controller_id == "ctrl-b" for d in gap[takeover + 8 :])
        assert sum(f.power_w for _, f in nodes.values()) <= b_budget_w + 1e-6
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


async def shards_round_trip(
    ctrl: ControllerNode,
    shard_nodes: Sequence[ShardNode],
    rig_budget_w: float,
    max_j_per_th: float | None = None,
) -> None:
    """Shards plan and report; the controller splits; the budgets reach the shards."""
    for n in shard_nodes:
        await n.cycle()
    await flush(shard_nodes)
    await wait_until(
        lambda: all(ctrl.heard_seq(n.shard_id) == n.seq for n in shard_nodes), 20, "heard"
    )
    await ctrl.cycle(rig_budget_w, max_j_per_th=max_j_per_th)
    await flush([ctrl])
    await wait_until(lambda: all(n.gate.has_pending for n in shard_nodes), 20, "budgets")


@pytest.mark.asyncio
async def test_a_cut_to_30_percent_is_met_by_every_shard_within_two_cycles(
    nats_server: ServerProcess, connect: list[Client]
) -> None:
    site = "cut1"
    ctrl, lease = await controller(nats_server, connect, "ctrl-a", site=site)
    nodes = await shards(nats_server, connect, n_rigs=2000, site=site)
    shard_nodes = [n for n, _ in nodes.values()]
    assert await lease.tick()
    nominal_w = sum(sum(r.model.nominal_power_w for r in f.rigs) for _, f in nodes.values())

    async def round_trip(rig_budget_w: float) -> None:
        await shards_round_trip(ctrl, shard_nodes, rig_budget_w)

    for _ in range(2):
        await round_trip(0.9 * nominal_w)
    for n in shard_nodes:
        await n.cycle()
    site_w = sum(f.power_w for _, f in nodes.values())
    assert site_w > 0.6 * nominal_w  # running high before the cut
    await round_trip(0.3 * nominal_w)  # cycle 1: the cut is split and sent
    for n in shard_nodes:  # cycle 2: every shard plans to it (rigs here obey at once)
        await n.cycle()
    assert sum(f.power_w for _, f in nodes.values()) <= 0.3 * nominal_w + 1e-6
    assert all(f.applied[-1].shortfall_w == 0.0 for _, f in nodes.values())


@pytest.mark.asyncio
async def test_the_controllers_economics_filter_reaches_every_shards_plan_and_curve(
    nats_server: ServerProcess, connect: list[Client]
) -> None:
    """[economics] runs at the controller (the shards have no price): its J/TH filter goes
    in every budget, and each shard plans and reports its curve within it. The sleep-only
    rigs (3,250 W for 95 TH/s: 34.2 J/TH) run at a budget of 90 % of nominal without a
    filter and all sleep under 30 J/TH at the same budget."""
    site = "econ1"
    ctrl, lease = await controller(nats_server, connect, "ctrl-a", site=site)
    nodes = await shards(nats_server, connect, n_rigs=800, site=site)
    shard_nodes = [n for n, _ in nodes.values()]
    assert await lease.tick()
    nominal_w = sum(sum(r.model.nominal_power_w for r in f.rigs) for _, f in nodes.values())

    async def round_trip(max_j_per_th: float | None) -> None:
        await shards_round_trip(ctrl, shard_nodes, 0.9 * nominal_w, max_j_per_th)

    def sleep_only_awake() -> int:
        return sum(
            1
            for _, f in nodes.values()
            for r, sp in zip(f.rigs, f.applied[-1].setpoints, strict=True)
            if r.model.name == "test-sleep-only" and dispatched(r) and sp.awake
        )

    def curve_top_w() -> float:
        """The most the shards' curves say their rigs could be raised to."""
        return sum(
            k.count * (k.base_w + sum(u.dp_w for u in k.upgrades))
            for n in shard_nodes
            for k in n.last.aggregate.curve.classes
        )

    for _ in range(2):
        await round_trip(None)
    for n in shard_nodes:
        await n.cycle()
    free_awake, free_top_w = sleep_only_awake(), curve_top_w()
    assert free_awake > 20

    for _ in range(2):
        await round_trip(30.0)
    for n in shard_nodes:
        await n.cycle()
    assert all(n.last.decision.max_j_per_th == 30.0 for n in shard_nodes)
    assert sleep_only_awake() == 0
    # The curves the controller splits over leave the priced-out points out too.
    assert curve_top_w() < free_top_w - 20 * 3_000.0


class LossyKV:
    """The lease bucket, but the reply to the next write can be lost after the write."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self.lose_next_reply = False

    async def _write(self, op: Awaitable[int]) -> int:
        rev = await op
        if self.lose_next_reply:
            self.lose_next_reply = False
            raise TimeoutError("reply lost")
        return rev

    async def create(self, key: str, value: bytes) -> int:
        return await self._write(self.kv.create(key, value))

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        return await self._write(self.kv.update(key, value, last=last))

    async def get(self, key: str) -> KeyValue.Entry:
        return await self.kv.get(key)


@pytest.mark.asyncio
async def test_a_lost_reply_to_our_own_write_keeps_the_lease_a_namesake_does_not_get_it(
    nats_server: ServerProcess, connect: list[Client]
) -> None:
    nc = await client(nats_server, connect)
    kv = await lease_store(nc.jetstream(), "lossy1", 30.0)
    lossy = LossyKV(kv)
    a = ControllerLease(lossy, "ctrl-a", 30.0, system_clock)  # type: ignore[arg-type]
    lossy.lose_next_reply = True
    assert not await a.tick()  # created, but we never heard so
    assert await a.tick() is False and a.revision > 0  # adopted: ours; renewal unconfirmed
    assert await a.tick() and a.held()  # renewed on the adopted revision
    rev = a.revision
    lossy.lose_next_reply = True
    assert await a.tick()  # renewal written, reply lost: still leader by its last renewal
    assert a.revision == rev
    assert await a.tick() and a.revision == rev + 1  # the lost write was ours: adopted
    assert await a.tick() and a.revision == rev + 2  # and renewed on it
    assert a.terms == 1
    # A restarted process with the same name is not the holder: it waits for the key.
    namesake = ControllerLease(kv, "ctrl-a", 30.0, system_clock)
    assert not await namesake.tick()
    assert namesake.revision == 0 and namesake.terms == 0


@pytest.mark.asyncio
async def test_nats_down_shards_go_on_to_their_failsafe_shares_and_the_leader_steps_down(
    connect: list[Client], tmp_path: Path
) -> None:
    srv = start_nats_server(tmp_path / "nats")  # our own: this test stops it
    try:
        ctrl, lease = await controller(srv, connect, "ctrl-a", site="down1")
        nodes = await shards(srv, connect, site="down1")
        shard_nodes = [n for n, _ in nodes.values()]
        assert await lease.tick()
        for n in shard_nodes:
            await n.cycle()
        await flush(shard_nodes)
        await wait_until(lambda: all(ctrl.heard_seq(s) > 0 for s in SHARDS), 20, "heard")
        nominal_w = sum(sum(r.model.nominal_power_w for r in f.rigs) for _, f in nodes.values())
        await ctrl.cycle(0.9 * nominal_w)
        await flush([ctrl])
        await wait_until(lambda: all(n.gate.has_pending for n in shard_nodes), 20, "budgets")
        srv.stop()
        sources = []
        for _ in range(4):  # every publish fails now; the cycles go on
            out = [await n.cycle() for n in shard_nodes]
            sources.append({c.decision.source for c in out})
        assert sources[0] == {BudgetSource.BUDGET}
        assert sources[-1] == {BudgetSource.FAILSAFE}
        shares = ctrl.failsafe_shares_w()
        for n, fleet in nodes.values():
            assert fleet.applied[-1].budget_w == pytest.approx(shares[n.shard_id])
        # The controller cannot renew: it stops counting itself leader and sends nothing.
        await wait_until(lambda: not lease.held(), 30, "leader stepped down")
        assert not await lease.tick()
        assert not (await ctrl.cycle(0.9 * nominal_w)).leader
    finally:
        srv.stop()
