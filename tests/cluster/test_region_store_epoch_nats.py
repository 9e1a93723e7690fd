"""A site re-joins a coordinator whose JetStream store was wiped, by itself, on a real
nats-server (manual clock for leases; the server's own clocks only for the bucket's TTL).

Coordinator A leads long enough for its revision to pass what a fresh store starts at; the
site takes its allocation. Then the store goes: the server restarts on the same port with an
empty data directory (A dies with it), or only the lease bucket is deleted and made again
(A runs on). The coordinator leading in the new store sends that store's epoch with revisions
from 1: the site refuses it while its old lease runs, falls to fail-safe when it expires, and
then takes the new allocation (no `minerd region forget`), audited as a change of store.
Also: two coordinators creating the epoch at once agree on one, and it outlives the bucket's
max age; an epoch that cannot be read leaves allocations without one (revisions alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats_server import start_nats_server
from servers import ServerProcess
from waiting import wait_until

from minerd.clock import ManualClock
from minerd.cluster.coordinator import Coordinator
from minerd.cluster.curve import CurveClass, ShardCurve, Upgrade
from minerd.cluster.lease import ControllerLease, lease_store
from minerd.cluster.region import lease_token
from minerd.cluster.region_site import ACTION_STORE_CHANGED, RegionSiteNode, SiteState
from minerd.cluster.store_epoch import EPOCH_KEY, store_epoch
from minerd.cluster.subjects import lease_bucket
from minerd.control.region_lease import RegionalLease

pytestmark = pytest.mark.timeout(180)

LEASE_S = 20.0  # the site's allocation lease
LEADER_TTL_S = 60.0  # the coordinators' leadership lease (real seconds for the bucket)
SITE = "plant"


def site_state() -> SiteState:
    up = Upgrade(3_000.0, 120.0, False)
    curve = ShardCurve(0.0, 0.0, (CurveClass(10, 0.0, 0.0, True, (up,)),))
    return SiteState(20_000.0, 2_000.0, 30_000.0, 10_000.0, curve)


async def leading(nc: Client, region: str, name: str, clock: ManualClock) -> Coordinator:
    coord = Coordinator(nc, region, name, 40.0, clock, lease_s=LEASE_S, site_silent_s=6.0)
    kv = await lease_store(nc.jetstream(), lease_token(region), LEADER_TTL_S)
    coord.lease = ControllerLease(kv, name, LEADER_TTL_S, clock)
    assert await coord.lease.tick()
    await coord.start()
    await nc.flush()  # its subscriptions are in place before a site offers on another link
    return coord


async def allocate(coord: Coordinator, site: RegionSiteNode) -> None:
    """An offer heard and one round sent. The site offers again each second until heard,
    as a site does every cycle: a fresh-clone run once lost the one offer sent just after
    the site's link reconnected to a restarted server."""
    heard = coord.sites().get(SITE)
    for _ in range(20):
        await site.publish(site_state())
        with contextlib.suppress(AssertionError):
            await wait_until(lambda: coord.sites().get(SITE) not in (None, heard), 1.0, "heard")
            break
    else:
        raise AssertionError("no offer heard in 20 s of offers")
    assert await coord.round() is not None


class Site:
    def __init__(self, nc: Client, region: str, clock: ManualClock) -> None:
        self.audits: list[tuple[str, dict[str, object]]] = []
        self.node = RegionSiteNode(
            nc, region, SITE, RegionalLease(), clock, audit=lambda a, d: self.audits.append((a, d))
        )
        self.lease = self.node.lease


async def lead_and_grant(
    nc: Client, region: str, clock: ManualClock, site: Site
) -> tuple[Coordinator, int]:
    """Coordinator A leads for a while (its revision rises past 1) and the site takes its
    allocation: (A, its revision)."""
    a = await leading(nc, region, "coord-a", clock)
    assert a.lease is not None
    for _ in range(6):
        clock.advance(1.0)
        assert await a.lease.tick()
    await allocate(a, site.node)
    await wait_until(lambda: site.lease.last is not None, 20.0, "the site takes A's allocation")
    assert a.store_epoch and site.lease.newest_epoch == a.store_epoch
    assert site.lease.newest_revision == a.lease.revision > 5
    return a, a.lease.revision


async def rejoin(
    b: Coordinator, clock: ManualClock, site: Site, old_epoch: str, old_rev: int
) -> None:
    """B leads in the new store: refused while the site's lease runs, taken once over."""
    assert b.lease is not None and b.lease.revision < old_rev  # revisions restarted
    taken = site.lease.last
    assert taken is not None
    await allocate(b, site.node)
    assert b.store_epoch not in ("", old_epoch)
    await wait_until(lambda: site.lease.refused >= 1, 20.0, "the site refuses B for now")
    assert site.lease.last == taken  # A's allocation still holds
    assert site.lease.allocation_kw(clock.now_s()) == taken.allocation_kw

    clock.advance(LEASE_S)  # A's lease at the site expires: fail-safe
    site.node.watch()
    assert site.lease.allocation_kw(clock.now_s()) is None
    assert await b.lease.tick()
    await allocate(b, site.node)
    await wait_until(
        lambda: site.lease.newest_epoch == b.store_epoch, 20.0, "the site re-joins B by itself"
    )
    assert site.lease.newest_revision == b.lease.revision < old_rev
    assert site.lease.allocation_kw(clock.now_s()) is not None
    changed = [d for a, d in site.audits if a == ACTION_STORE_CHANGED]
    assert len(changed) == 1
    assert (changed[0]["from_epoch"], changed[0]["from_revision"]) == (old_epoch, old_rev)
    assert (changed[0]["to_epoch"], changed[0]["to_revision"]) == (
        b.store_epoch,
        b.lease.revision,
    )


@pytest.mark.asyncio
async def test_a_site_rejoins_a_new_coordinator_on_a_fresh_store(tmp_path: Path) -> None:
    srv = start_nats_server(tmp_path / "before")
    region = f"r{uuid.uuid4().hex[:8]}"
    clock = ManualClock()
    reconnects: list[int] = []

    async def reconnected() -> None:
        reconnects.append(1)

    site_nc = await nats.connect(
        srv.url, reconnect_time_wait=0.2, max_reconnect_attempts=-1, reconnected_cb=reconnected
    )
    b_nc: Client | None = None
    try:
        site = Site(site_nc, region, clock)
        await site.node.start()
        a_nc = await nats.connect(srv.url)
        a, old_rev = await lead_and_grant(a_nc, region, clock, site)
        old_epoch = a.store_epoch
        await a.stop()  # A dies with its store
        await a_nc.close()

        srv.stop()  # the same server, an empty data directory
        srv.argv[srv.argv.index("-sd") + 1] = str(tmp_path / "after" / "js")
        srv.start()
        await wait_until(lambda: bool(reconnects), 60.0, "the site reconnects")
        b_nc = await nats.connect(srv.url)
        b = await leading(b_nc, region, "coord-b", clock)
        try:
            await rejoin(b, clock, site, old_epoch, old_rev)
        finally:
            await b.stop()
    finally:
        if b_nc is not None:
            await b_nc.close()
        await site_nc.close()
        srv.stop()


@pytest.mark.asyncio
async def test_a_running_coordinator_leads_a_recreated_bucket_in_its_new_epoch(
    nats_server: ServerProcess,
) -> None:
    region = f"r{uuid.uuid4().hex[:8]}"
    clock = ManualClock()
    nc = await nats.connect(nats_server.url)
    try:
        site = Site(nc, region, clock)
        await site.node.start()
        a, old_rev = await lead_and_grant(nc, region, clock, site)
        old_epoch = a.store_epoch
        assert a.lease is not None
        js = nc.jetstream()
        assert await js.delete_key_value(lease_bucket(lease_token(region)))
        assert await lease_store(js, lease_token(region), LEADER_TTL_S)  # made again
        clock.advance(1.0)
        assert not await a.lease.tick()  # its revision is gone with the bucket
        assert await a.lease.tick()  # and it takes the lease in the new bucket
        try:
            await rejoin(a, clock, site, old_epoch, old_rev)
        finally:
            await a.stop()
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_two_coordinators_racing_agree_on_one_epoch_that_outlives_the_buckets_ttl(
    nats_server: ServerProcess,
) -> None:
    token = lease_token(f"r{uuid.uuid4().hex[:8]}")
    bucket = lease_bucket(token)
    one, two = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    try:
        kv = await lease_store(one.jetstream(), token, 1.0)  # keys dropped 1 s after a write
        await lease_store(two.jetstream(), token, 1.0)
        first = await asyncio.gather(
            store_epoch(one.jetstream(), bucket), store_epoch(two.jetstream(), bucket)
        )
        assert first[0] == first[1] != ""
        await kv.put("probe", b"x")  # an ordinary key, as the lease is

        async def probe_gone() -> bool:
            try:
                await kv.get("probe")
            except KeyNotFoundError:
                return True
            return False

        for _ in range(600):  # until the bucket's max age has dropped it (a bound, no timing)
            if await probe_gone():
                break
            await asyncio.sleep(0.1)
        assert await probe_gone()
        assert await store_epoch(two.jetstream(), bucket) == first[0]  # the epoch stayed
    finally:
        await one.close()
        await two.close()


@pytest.mark.asyncio
async def test_an_unreadable_epoch_leaves_allocations_without_one_fenced_as_before(
    nats_server: ServerProcess,
) -> None:
    region = f"r{uuid.uuid4().hex[:8]}"
    clock = ManualClock()
    nc = await nats.connect(nats_server.url)
    try:
        kv = await lease_store(nc.jetstream(), lease_token(region), LEADER_TTL_S)
        await kv.create(EPOCH_KEY, b"")  # neither an epoch nor free to make one
        site = Site(nc, region, clock)
        await site.node.start()
        coord = await leading(nc, region, "coord-a", clock)
        try:
            await allocate(coord, site.node)
            await wait_until(lambda: site.lease.last is not None, 20.0, "the site takes it")
            assert coord.store_epoch == "" and site.lease.newest_epoch == ""
            assert coord.lease is not None
            assert site.lease.newest_revision == coord.lease.revision
        finally:
            await coord.stop()
    finally:
        await nc.close()
