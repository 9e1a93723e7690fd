"""The regional coordinator and site nodes on a real nats-server, on a manual clock: offers
in, allocations out (fenced by the leadership revision), a limit change over NATS with its
token (audited; a bad token refused), garbage and forged allocations refused and counted,
a silent site reserved at what it may still draw."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from servers import ServerProcess
from waiting import wait_until

from minerd.clock import ManualClock
from minerd.cluster.coordinator import Coordinator
from minerd.cluster.curve import CurveClass, ShardCurve, Upgrade
from minerd.cluster.lease import ControllerLease, lease_store
from minerd.cluster.region import (
    Allocation,
    allocation_subject,
    encode_allocation,
    lease_token,
    limit_subject,
)
from minerd.cluster.region_site import RegionSiteNode, SiteState
from minerd.control.region_lease import RegionalLease

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cret-token"


def state(ths_per_kw: float, max_kw: float, failsafe_kw: float) -> SiteState:
    up = Upgrade(3_000.0, 3.0 * ths_per_kw, False)
    curve = ShardCurve(0.0, 0.0, (CurveClass(10, 0.0, 0.0, True, (up,)),))
    return SiteState(20_000.0, 2_000.0, max_kw * 1000.0, failsafe_kw * 1000.0, curve)


@dataclass
class Region:
    nc: Client
    clock: ManualClock
    coord: Coordinator
    sites: dict[str, RegionSiteNode]
    audit: list[tuple[str, str, dict[str, object]]]
    region: str


@pytest_asyncio.fixture
async def region(nats_server: ServerProcess) -> AsyncIterator[Region]:
    name = f"r{uuid.uuid4().hex[:8]}"
    clock = ManualClock()
    nc = await nats.connect(nats_server.url)
    audit: list[tuple[str, str, dict[str, object]]] = []
    coord = Coordinator(
        nc,
        name,
        "coord-1",
        40.0,
        clock,
        lease_s=20.0,
        site_silent_s=6.0,
        control_token=TOKEN,
        audit=lambda a, s, d: audit.append((a, s, d)),
    )
    kv = await lease_store(nc.jetstream(), lease_token(name), 5.0)
    coord.lease = ControllerLease(kv, "coord-1", 5.0, clock)
    assert await coord.lease.tick()
    await coord.start()
    sites: dict[str, RegionSiteNode] = {}
    for s in ("eff", "old"):
        sites[s] = RegionSiteNode(nc, name, s, RegionalLease(), clock)
        await sites[s].start()
    try:
        yield Region(nc, clock, coord, sites, audit, name)
    finally:
        await coord.stop()
        for node in sites.values():
            await node.stop()
        await nc.close()


async def advance(r: Region, seconds: float) -> None:
    """Time passes; the coordinator keeps its leadership (renewed as its task would)."""
    r.clock.advance(seconds)
    assert r.coord.lease is not None and await r.coord.lease.tick()


async def offer_all(r: Region) -> None:
    await r.sites["eff"].publish(state(40.0, 30.0, 10.0))
    await r.sites["old"].publish(state(25.0, 60.0, 10.0))
    await wait_until(lambda: len(r.coord.sites()) == 2, 10.0, "both offers heard")


@pytest.mark.asyncio
async def test_allocations_by_marginal_hashrate_within_contracts(region: Region) -> None:
    r = region
    await offer_all(r)
    # Round 1 raises only from what the sites hold (their fail-safe 10 kW each); they
    # confirm in their next offer, and the staged raises complete.
    for _ in range(4):
        assert await r.coord.round() is not None
        await wait_until(
            lambda: all(n.lease.last is not None for n in r.sites.values()), 10.0, "granted"
        )
        await r.sites["eff"].publish(state(40.0, 30.0, 10.0))
        await r.sites["old"].publish(state(25.0, 60.0, 10.0))
        await asyncio.sleep(0.2)
        await advance(r, 1.0)
    last = r.coord.last
    assert last is not None
    got = {s: n.lease.allocation_kw(r.clock.now_s()) for s, n in r.sites.items()}
    assert got["eff"] == pytest.approx(30.0)  # its whole contract: more efficient rigs
    assert got["old"] == pytest.approx(10.0)  # the rest
    assert sum(v or 0.0 for v in got.values()) <= 40.0 + 1e-6
    assert any(a == "region.allocation" and s == "eff" for a, s, _ in r.audit)


@pytest.mark.asyncio
async def test_limit_change_needs_the_token_and_is_audited(region: Region) -> None:
    r = region
    bad = await r.nc.request(
        limit_subject(r.region),
        json.dumps({"limit_kw": 99, "actor": "mallory", "token": "nope"}).encode(),
        timeout=5,
    )
    assert json.loads(bad.data)["ok"] is False
    assert r.coord.limit_kw == 40.0
    ok = await r.nc.request(
        limit_subject(r.region),
        json.dumps({"limit_kw": 25, "actor": "ops-alice", "token": TOKEN}).encode(),
        timeout=5,
    )
    assert json.loads(ok.data) == {"ok": True, "limit_kw": 25.0, "coordinator": "coord-1"}
    assert r.coord.limit_kw == 25.0
    actions = [(a, d.get("actor")) for a, _, d in r.audit]
    assert ("region.limit.refused", "mallory") in actions
    assert ("region.limit.set", "ops-alice") in actions
    await offer_all(r)
    rd = await r.coord.round()
    assert rd is not None and sum(rd.allocations.values()) <= 25_000.0 + 1e-6


@pytest.mark.asyncio
async def test_garbage_stale_and_fenced_allocations_are_refused_and_counted(
    region: Region,
) -> None:
    r = region
    await offer_all(r)
    await advance(r, 1.0)  # a renewal: the leadership revision is now 2
    await r.coord.round()
    eff = r.sites["eff"]
    await wait_until(lambda: eff.lease.last is not None, 10.0, "eff granted")
    good = eff.lease.last
    assert good is not None and good.lease_revision >= 2
    subject = allocation_subject(r.region, "eff")
    await r.nc.publish(subject, b"{not json")
    now = r.clock.now_s()

    def forged(**kw: object) -> bytes:
        fields: dict[str, object] = dict(
            region=r.region, site="eff", coordinator_id="rogue", lease_revision=good.lease_revision,
            seq=good.seq + 100, issued_at_s=now, lease_s=20.0, allocation_w=999_000.0,
            regional_limit_w=1e6,
        )  # fmt: skip
        fields.update(kw)
        return encode_allocation(Allocation(**fields))  # type: ignore[arg-type]

    await r.nc.publish(subject, forged(lease_revision=good.lease_revision - 1))  # fenced
    await r.nc.publish(subject, forged(issued_at_s=now - 100.0))  # stale
    await r.nc.publish(subject, forged(site="old"))  # for another site on this subject
    await r.nc.flush()
    await wait_until(
        lambda: eff.bad_messages == 2 and eff.lease.refused == 2, 10.0, "all four refused"
    )
    assert eff.lease.allocation_kw(r.clock.now_s()) == good.allocation_kw


@pytest.mark.asyncio
async def test_a_silent_site_is_reserved_then_its_failsafe_after_its_lease(
    region: Region,
) -> None:
    r = region
    await offer_all(r)
    first = await r.coord.round()
    assert first is not None
    held_old_w = first.allocations["old"]
    await advance(r, 7.0)  # "old" silent for longer than site_silent_s; its lease runs on
    await r.sites["eff"].publish(state(40.0, 30.0, 10.0))
    await asyncio.sleep(0.2)
    second = await r.coord.round()
    assert second is not None and "old" not in second.allocations
    assert second.reserved_w == pytest.approx(max(held_old_w, 10_000.0))
    await advance(r, 14.0)  # its lease (20 s) is over: it draws at most its fail-safe
    await r.sites["eff"].publish(state(40.0, 30.0, 10.0))
    await asyncio.sleep(0.2)
    third = await r.coord.round()
    assert third is not None and third.reserved_w == pytest.approx(10_000.0)
    assert sum(third.allocations.values()) + third.reserved_w <= 40_000.0 + 1e-6


def test_a_cut_wakes_the_cycle_at_once_and_a_raise_waits(region: Region) -> None:
    r = region
    woken: list[float] = []
    node = RegionSiteNode(
        r.nc, r.region, "eff", RegionalLease(), r.clock, on_allocation=lambda: woken.append(1.0)
    )
    subject = allocation_subject(r.region, "eff")
    now = r.clock.now_s()

    def alloc(seq: int, kw: float) -> bytes:
        return encode_allocation(
            Allocation(r.region, "eff", "coord-1", 3, seq, now, 20.0, kw * 1000.0, 1e6)
        )

    assert node.take(alloc(1, 30.0), subject) and len(woken) == 1  # the first: at once
    assert node.take(alloc(2, 35.0), subject) and len(woken) == 1  # a raise: next cycle
    assert node.take(alloc(3, 20.0), subject) and len(woken) == 2  # a cut: at once
    assert node.lease.allocation_kw(now) == 20.0


@pytest.mark.asyncio
async def test_a_standby_coordinator_sends_only_once_it_leads_and_fences_the_old(
    region: Region,
) -> None:
    r = region
    standby = Coordinator(r.nc, r.region, "coord-2", 40.0, r.clock, lease_s=20.0)
    kv = await lease_store(r.nc.jetstream(), lease_token(r.region), 5.0)
    standby.lease = ControllerLease(kv, "coord-2", 5.0, r.clock)
    await standby.start()
    try:
        assert not await standby.lease.tick()  # coord-1 holds it
        await offer_all(r)
        await wait_until(lambda: len(standby.sites()) == 2, 10.0, "the standby hears offers")
        assert await standby.round() is None  # a standby sends nothing
        assert await r.coord.round() is not None
        eff = r.sites["eff"]
        await wait_until(lambda: eff.lease.last is not None, 10.0, "granted by coord-1")
        old = eff.lease.last
        assert old is not None and old.coordinator_id == "coord-1"
        # coord-1 steps down (a clean stop releases the key): the standby takes over.
        assert r.coord.lease is not None
        await r.coord.lease.release()
        assert await standby.lease.tick()
        assert standby.lease.revision > old.lease_revision
        assert await standby.round() is not None
        await wait_until(
            lambda: eff.lease.last is not None and eff.lease.last.coordinator_id == "coord-2",
            10.0,
            "the site follows coord-2",
        )
        # The deposed coordinator's revision is fenced off at the site.
        refused_before = eff.lease.refused
        stale_rev = Allocation(
            r.region, "eff", "coord-1", old.lease_revision, old.seq + 50, r.clock.now_s(),
            20.0, 99_000.0, 1e6,
        )  # fmt: skip
        assert not eff.take(encode_allocation(stale_rev), allocation_subject(r.region, "eff"))
        assert eff.lease.refused == refused_before + 1
        assert eff.lease.last is not None and eff.lease.last.coordinator_id == "coord-2"
    finally:
        await standby.stop()
