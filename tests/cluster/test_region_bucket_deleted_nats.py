"""A running coordinator whose lease bucket is deleted, with nobody to make it again,
re-creates it and leads again in a new store epoch; a site takes it once its old
allocation has expired (real nats-server; manual clock for the site's allocation lease).

The lease runs its own keep() loop on the system clock (its renewals are JetStream writes);
the coordinator's rounds are driven by hand on the manual clock, as the site's lease is.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import nats
import pytest
from nats.js.errors import BucketNotFoundError
from servers import ServerProcess
from test_region_store_epoch_nats import LEASE_S, Site, allocate
from waiting import wait_until

from minerd.clock import ManualClock, SystemClock
from minerd.cluster.coordinator import Coordinator
from minerd.cluster.lease import ControllerLease, lease_store, open_lease
from minerd.cluster.region import lease_token
from minerd.cluster.region_site import ACTION_STORE_CHANGED
from minerd.cluster.subjects import lease_bucket

pytestmark = pytest.mark.timeout(180)

LEADER_TTL_S = 60.0
KEEP_EVERY_S = 0.2  # the lease loop's renewal interval (real seconds)
FILLER = 200  # writes that lift the old store's revisions far past what the new one reaches


@pytest.mark.asyncio
async def test_a_coordinator_recreates_its_deleted_lease_bucket_and_a_site_rejoins_it(
    nats_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    region = f"r{uuid.uuid4().hex[:8]}"
    bucket = lease_bucket(lease_token(region))
    clock = ManualClock()
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    keep: asyncio.Task[None] | None = None
    try:
        site = Site(nc, region, clock)
        await site.node.start()
        coord = Coordinator(nc, region, "coord-a", 40.0, clock, lease_s=LEASE_S, site_silent_s=6.0)
        lease = await open_lease(js, lease_token(region), "coord-a", LEADER_TTL_S, SystemClock())
        coord.lease = lease
        await coord.start()
        await nc.flush()
        keep = asyncio.create_task(lease.keep(interval_s=KEEP_EVERY_S))
        for _ in range(FILLER):  # revisions are the bucket's stream sequence, any key's
            await lease.kv.put("filler", b"x")
        await wait_until(lambda: lease.revision > FILLER, 30.0, "a renewal past the filler")
        await allocate(coord, site.node)
        await wait_until(lambda: site.lease.last is not None, 20.0, "the site takes it")
        old_epoch, old_rev = coord.store_epoch, site.lease.newest_revision
        assert old_epoch and old_rev > FILLER and lease.terms == 1

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="minerd.cluster.lease"):
            assert await js.delete_key_value(bucket)
            await wait_until(lambda: lease.terms == 2, 30.0, "the lease taken again")
            # renewals in the new bucket: nothing more to warn about
            await wait_until(lambda: lease.revision > 3, 30.0, "renewals in the new bucket")
        gone = [r for r in caplog.records if "lease bucket is gone" in r.getMessage()]
        assert len(gone) == 1, [r.getMessage() for r in caplog.records]
        assert await js.key_value(bucket)  # the coordinator made it again
        assert lease.held() and lease.revision < old_rev

        taken = site.lease.last
        await allocate(coord, site.node)  # its next round reads the new store's epoch
        new_epoch = coord.store_epoch
        assert new_epoch not in ("", old_epoch)
        await wait_until(lambda: site.lease.refused >= 1, 20.0, "refused while A's lease runs")
        assert site.lease.last == taken

        clock.advance(LEASE_S)  # the old allocation expires at the site: fail-safe
        site.node.watch()
        assert site.lease.allocation_kw(clock.now_s()) is None
        await allocate(coord, site.node)
        await wait_until(lambda: site.lease.newest_epoch == new_epoch, 20.0, "the site rejoins")
        assert site.lease.allocation_kw(clock.now_s()) is not None
        assert 0 < site.lease.newest_revision < old_rev  # counted from 1 in the new store
        changed = [d for a, d in site.audits if a == ACTION_STORE_CHANGED]
        assert len(changed) == 1
        assert (changed[0]["from_epoch"], changed[0]["to_epoch"]) == (old_epoch, new_epoch)
        await coord.stop()
    finally:
        if keep is not None:
            keep.cancel()
            await asyncio.gather(keep, return_exceptions=True)
        await nc.close()


@pytest.mark.asyncio
async def test_a_lease_without_a_way_to_reopen_does_not_recreate_the_bucket(
    nats_server: ServerProcess,
) -> None:
    """The plain lease (a site controller's) leaves a deleted bucket deleted."""
    token = f"c{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        lease = ControllerLease(
            await lease_store(js, token, LEADER_TTL_S), "ctl", 60.0, ManualClock()
        )
        assert await lease.tick()
        assert await js.delete_key_value(lease_bucket(token))
        for _ in range(3):
            await lease.tick()
        with pytest.raises(BucketNotFoundError):
            await js.key_value(lease_bucket(token))
    finally:
        await nc.close()
