"""A site controller whose lease bucket is deleted re-creates it and leads again in a new
store epoch, from revision 1; its shard refuses the new term's budgets while it still plans
to the old term's, falls to its fail-safe share, and then takes them (real nats-server).

Lease ticks and cycles are driven by hand; the lease's TTL is long enough that held() never
lapses between two ticks, however loaded the machine.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import nats
import pytest
from cluster_fleet import mixed_fleet
from nats.aio.client import Client
from servers import ServerProcess
from test_cluster_nats import CONSTRAINTS, MemoryFleet
from waiting import wait_until

from minerd.clock import SystemClock
from minerd.cluster.lease import ControllerLease, open_lease
from minerd.cluster.messages import Budget, encode_budget
from minerd.cluster.nodes import ControllerNode, ShardNode
from minerd.cluster.safety import BudgetGate, BudgetSource
from minerd.cluster.subjects import budget_subject, lease_bucket
from minerd.daemon.cluster_role import ClusterRole
from minerd.settings.cluster import ClusterSettings

pytestmark = pytest.mark.timeout(180)

TTL_S = 60.0
FAILSAFE_LIMIT_W = 20_000.0
FILLER = 100  # writes that lift the old store's revisions far past the new one's


async def send_round(ctrl: ControllerNode, shard: ShardNode, budget_w: float) -> BudgetSource:
    """The controller sends its budget, the shard hears (takes or refuses) it and plans its
    cycle, and the controller hears the shard's aggregate. The shard's budget source."""
    gate = shard.gate
    ignored = gate.ignored
    assert (await ctrl.cycle(budget_w)).leader
    await ctrl.nc.flush(timeout=5)
    await wait_until(
        lambda: gate.has_pending or gate.ignored > ignored, 20, "the budget reached the shard"
    )
    out = await shard.cycle()
    await shard.nc.flush(timeout=5)
    await wait_until(lambda: ctrl.heard_seq("s1") == shard.seq, 20, "the aggregate heard")
    return out.decision.source


@pytest.mark.asyncio
async def test_a_controller_recreates_its_deleted_lease_bucket_and_its_shard_follows_after_failsafe(
    nats_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    site = f"e{uuid.uuid4().hex[:8]}"
    clock = SystemClock()
    clients: list[Client] = []
    try:
        for _ in range(2):
            clients.append(await nats.connect(nats_server.url, connect_timeout=5))
        ctl_nc, shard_nc = clients
        js = ctl_nc.jetstream()
        lease: ControllerLease = await open_lease(js, site, "ctrl-a", TTL_S, clock)
        ctrl = ControllerNode(ctl_nc, site, "ctrl-a", lease, ("s1",), FAILSAFE_LIMIT_W, clock)
        fleet = MemoryFleet(mixed_fleet(40, seed=3))
        gate = BudgetGate("s1", FAILSAFE_LIMIT_W, hold_cycles=3)
        shard = ShardNode(shard_nc, site, "s1", fleet, gate, CONSTRAINTS, clock)
        await ctrl.start()
        await shard.start()
        await ctl_nc.flush(timeout=5)
        await shard_nc.flush(timeout=5)
        for _ in range(FILLER):  # revisions are the bucket's stream sequence, any key's
            await lease.kv.put("filler", b"x")
        assert await lease.tick() and lease.terms == 1

        await shard.cycle()  # its first aggregate (fail-safe: no budget yet)
        await shard_nc.flush(timeout=5)
        await wait_until(lambda: ctrl.heard_seq("s1") == shard.seq, 20, "the aggregate heard")
        nominal_w = sum(r.model.nominal_power_w for r in fleet.rigs)
        assert await send_round(ctrl, shard, 0.5 * nominal_w) is BudgetSource.BUDGET
        old_epoch, old_rev = ctrl.store_epoch, lease.revision
        assert old_epoch and old_rev > FILLER
        assert (gate.newest_epoch, gate.newest_revision) == (old_epoch, old_rev)

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="minerd.cluster"):
            assert await ctl_nc.jetstream().delete_key_value(lease_bucket(site))
            await lease.tick()  # the write finds no bucket (still leader by its last renewal)
            assert lease.terms == 1
            assert await lease.tick()  # re-created, and taken afresh in it
            assert lease.terms == 2 and 0 < lease.revision < old_rev
            assert await ctl_nc.jetstream().key_value(lease_bucket(site))

            sources = [await send_round(ctrl, shard, 0.4 * nominal_w) for _ in range(4)]
            new_epoch = ctrl.store_epoch
            assert new_epoch not in ("", old_epoch)
            # Refused while the old term's budget is held; taken from the fail-safe share.
            assert sources == [
                BudgetSource.HELD,
                BudgetSource.HELD,
                BudgetSource.FAILSAFE,
                BudgetSource.BUDGET,
            ]
            assert gate.other_epoch_refused == 3 and gate.epoch_switches == 1
            d = shard.last.decision if shard.last is not None else None
            assert d is not None and d.lease_revision == lease.revision < old_rev
            assert (gate.newest_epoch, gate.newest_revision) == (new_epoch, lease.revision)
            assert fleet.power_w <= 0.4 * nominal_w + 1e-6

            # A late budget of the old store, with its higher revision: refused.
            stale = Budget(
                site, "s1", "ctrl-a", old_rev, 10_000, 0.0, nominal_w, 1.0, None, 0.0, old_epoch
            )
            refused = gate.other_epoch_refused
            await ctl_nc.publish(budget_subject(site, "s1"), encode_budget(stale))
            await ctl_nc.flush(timeout=5)
            await wait_until(lambda: gate.other_epoch_refused > refused, 20, "the stale one heard")
            assert await send_round(ctrl, shard, 0.4 * nominal_w) is BudgetSource.BUDGET
            assert fleet.power_w <= 0.4 * nominal_w + 1e-6
        changed = [
            r.getMessage() for r in caplog.records if "lease store changed" in r.getMessage()
        ]
        assert len(changed) == 1, changed
        assert old_epoch in changed[0] and new_epoch in changed[0] and str(old_rev) in changed[0]
        await shard.stop()
        await ctrl.stop()
    finally:
        for nc in clients:
            await nc.close()


@pytest.mark.asyncio
async def test_the_daemons_controller_role_recreates_its_deleted_lease_bucket(
    nats_server: ServerProcess,
) -> None:
    """The wired controller (ClusterRole._serve, its lease's keep() loop on the system clock)
    opens its lease so that a deleted bucket is made again and the lease taken in it."""
    site = f"d{uuid.uuid4().hex[:8]}"
    settings = ClusterSettings(
        role="controller", nats_url=nats_server.url, site=site, shards=("s1",), lease_ttl_s=2.0
    )
    clock = SystemClock()
    node = ControllerNode(Client(), site, "ctl", None, ("s1",), FAILSAFE_LIMIT_W, clock)
    role = ClusterRole(settings, site, clock, controller=node)
    nc = await nats.connect(nats_server.url, connect_timeout=5)
    serve = asyncio.create_task(role._serve())
    try:
        await wait_until(lambda: node.lease is not None and node.lease.terms == 1, 30, "leading")
        assert await nc.jetstream().delete_key_value(lease_bucket(site))
        await wait_until(
            lambda: node.lease is not None and node.lease.terms == 2, 30, "the lease taken again"
        )
        assert await nc.jetstream().key_value(lease_bucket(site))
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)
        await nc.close()
