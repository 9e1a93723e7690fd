"""Two sites under one regional coordinator, on a real nats-server: two real `minerd run`
Daemons (each with a [region] table) on two simulated sites, and the coordinator service
(`minerd coordinator`'s body) in process. The regional limit is split by marginal
hashrate per kW (the site of S21s gets more than the site of S19j Pros), within each site's
contract, summing to no more than the limit; the simulator's truth meets each allocation.
With the coordinator cut, each site holds its allocation until its lease expires, then is
on its own fail-safe limit ("regional allocation lease expired"); with the coordinator
back, both re-join. Time is the simulators' clocks; cycles and leases, never wall time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tomllib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from servers import ServerProcess, free_port

from minerd.cluster.region import limit_subject
from minerd.control.region_lease import REASON_EXPIRED, RegionalLease
from minerd.daemon.app import Daemon
from minerd.daemon.coordinator import CoordinatorService
from minerd.model import Quota, QuotaSource
from minerd.runtime.cycle import CycleResult
from minerd.settings import settings_from_dict
from minerd.settings.region import load_region_config
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

pytestmark = pytest.mark.timeout(280)

OCTETS = {"site-a": 185, "site-b": 187}  # one container each: 127.185.x.y, 127.187.x.y
MODELS = {"site-a": "bitmain-s21", "site-b": "bitmain-s19jpro"}  # ~57 vs ~34 TH/s per kW
RIGS = 6
SPEED = 4.0
WAIT_S = 150.0  # a bound that turns a hang into a failure, never a measured duration
LEASE_S = 20.0
TOKEN_ENV = "MINERD_TEST_REGION_TOKEN"


@dataclass
class SiteRun:
    name: str
    sim: SimSite
    daemon: Daemon
    task: asyncio.Task[None]
    api: str
    viewer: str
    results: list[CycleResult] = field(default_factory=list)

    @property
    def lease(self) -> RegionalLease:
        lease = self.daemon.site.cycle.region  # type: ignore[union-attr]
        assert lease is not None
        return lease

    @property
    def contract_kw(self) -> float:
        return self.daemon.settings.grid.contracted_limit_kw

    @property
    def failsafe_kw(self) -> float:
        return self.daemon.settings.grid.failsafe_limit_kw

    def now_s(self) -> float:
        return self.sim.clock.now_s()

    async def truth_w(self) -> float:
        t = await self.sim.truth(include_rigs=False)
        return float(t["site"]["power_w"])  # type: ignore[index]

    async def site_api(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5.0) as http:
            r = await http.get(
                f"{self.api}/api/v1/site", headers={"Authorization": f"Bearer {self.viewer}"}
            )
            r.raise_for_status()
            body: dict[str, Any] = r.json()
            return body


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.timeout(30):
            await task


@dataclass
class Region:
    name: str
    sites: dict[str, SiteRun]
    config: Path
    tmp: Path
    coordinator: CoordinatorService | None = None
    task: asyncio.Task[None] | None = None

    def alive(self) -> None:
        tasks = [(s.name, s.task) for s in self.sites.values()]
        if self.task is not None:
            tasks.append(("coordinator", self.task))
        for name, task in tasks:
            if task.done() and not task.cancelled():
                raise AssertionError(f"{name} stopped: {task.exception()!r}")

    def start_coordinator(self) -> CoordinatorService:
        settings = load_region_config(self.config, environ={TOKEN_ENV: "t0k"})
        # The coordinator's clock: site A's simulator (both run at the same speed).
        service = CoordinatorService(settings, self.sites["site-a"].sim.clock)
        self.coordinator = service
        self.task = asyncio.create_task(service.run(), name="coordinator")
        return service

    async def stop_coordinator(self) -> None:
        assert self.task is not None and self.coordinator is not None
        await stop_task(self.task)
        self.coordinator.close()
        self.task = None


@contextlib.asynccontextmanager
async def region_of_two(nats_server: ServerProcess, tmp_path: Path) -> AsyncIterator[Region]:
    name = f"r{uuid.uuid4().hex[:8]}"
    async with contextlib.AsyncExitStack() as stack:
        sites: dict[str, SiteRun] = {}
        region_file = tmp_path / "region.toml"
        region = Region(name, sites, region_file, tmp_path)
        try:
            for site, octet in OCTETS.items():
                spec = SiteSpec(
                    groups=(RigGroupSpec(MODELS[site], RIGS),),
                    name=site,
                    rigs_per_container=RIGS,
                    rig_port=0,
                    base_octet=octet,
                    speed=SPEED,
                    workers=1,
                    feeder_meters=False,
                )
                sim = await stack.enter_async_context(SimSite(spec))
                d = tmp_path / site
                d.mkdir()
                tokens = sim.write_config(d / "site.toml", f"127.0.0.1:{free_port()}")
                raw = tomllib.loads((d / "site.toml").read_text())
                raw["rigs"] = [{**g, "interval_s": 2.0, "timeout_s": 1.0} for g in raw["rigs"]]
                raw["region"] = {
                    "name": name,
                    "nats_url": nats_server.url,
                    "offer_interval_s": 2.0,
                }
                settings = settings_from_dict(raw, base_dir=d)
                daemon = Daemon(settings, clock=sim.clock)
                daemon.build()
                run = SiteRun(
                    site,
                    sim,
                    daemon,
                    asyncio.create_task(daemon.run(), name=site),
                    f"http://{settings.api.listen}",
                    tokens.viewer,
                )
                daemon.site.cycle.listeners.append(run.results.append)  # type: ignore[union-attr]
                sites[site] = run
            # The regional limit: 70 % of both sites' contracts together.
            limit_kw = round(0.7 * sum(s.contract_kw for s in sites.values()), 1)
            region_file.write_text(
                f'[region]\nname = "{name}"\nnats_url = "{nats_server.url}"\n'
                f'limit_kw = {limit_kw}\n\n[coordinator]\nid = "coord-a"\n'
                f"lease_s = {LEASE_S}\ninterval_s = 2.0\nsite_silent_s = 6.0\n"
                f'leader_ttl_s = 3.0\naudit_db = "region-audit.sqlite"\n'
                f'control_token_env = "{TOKEN_ENV}"\n'
            )
            yield region
        finally:
            if region.task is not None:
                await region.stop_coordinator()
            for s in sites.values():
                if not s.task.done():
                    await stop_task(s.task)


def settled(region: Region) -> bool:
    """The coordinator's last round sent both sites their targets, and both obey them."""
    c = region.coordinator
    last = c.node.last if c is not None else None
    if last is None or set(last.allocations) != set(OCTETS):
        return False
    if any(abs(last.allocations[s] - last.targets[s]) > 1.0 for s in OCTETS):
        return False
    return all(
        (kw := s.lease.allocation_kw(s.now_s())) is not None
        and abs(kw * 1000.0 - last.allocations[n]) < 0.02 * last.allocations[n]
        for n, s in region.sites.items()
    )


async def until(region: Region, pred: Any, what: str) -> None:
    """Poll pred (sync or async) until true; a daemon that stopped fails with its error."""
    try:
        async with asyncio.timeout(WAIT_S):
            while not (await pred() if asyncio.iscoroutinefunction(pred) else pred()):
                region.alive()
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {WAIT_S:g} s: {what}") from None


@pytest.mark.asyncio
async def test_two_sites_split_hold_their_leases_fall_to_failsafe_and_rejoin(
    nats_server: ServerProcess, tmp_path: Path
) -> None:
    async with region_of_two(nats_server, tmp_path) as region:
        a, b = region.sites["site-a"], region.sites["site-b"]
        service = region.start_coordinator()
        limit_w = service.node.limit_kw * 1000.0
        await until(region, lambda: settled(region), "both sites obey their allocations")
        last = service.node.last
        assert last is not None
        alloc = dict(last.allocations)
        # The site of more efficient rigs gets more; the sum within the limit; each within
        # its own contract.
        offers = {
            n: (o.curve.floor_w, o.curve.max_w, o.overhead_w)
            for n, o in service.node.sites().items()
        }
        assert alloc["site-a"] > alloc["site-b"], (alloc, offers)
        assert sum(alloc.values()) <= limit_w + 1e-6
        for s in (a, b):
            assert alloc[s.name] <= s.contract_kw * 1000.0 + 1e-6
        # Each site holds itself to its allocation, origin "region" (unless its own contract
        # is as low: an allocation never raises a site).
        # (An allocation may move a little from round to round as the sites' offers move:
        # the API shows the one the site's last cycle obeyed.)
        for s in (a, b):

            async def api_obeys(s: SiteRun = s) -> bool:
                body = await s.site_api()
                kw = s.lease.allocation_kw(s.now_s())
                if kw is None:
                    return False
                if kw < s.contract_kw - 1e-6:
                    want = ("region", kw)
                else:
                    want = ("contracted", s.contract_kw)
                lim = body["limit"]
                return bool(lim["origin"] == want[0] and abs(lim["limit_kw"] - want[1]) < 0.01)

            await until(region, api_obeys, f"{s.name}'s /api/v1/site shows its allocation")
        assert min(alloc.values()) < min(s.contract_kw for s in (a, b)) * 1000.0
        async with httpx.AsyncClient(timeout=5.0) as http:
            text = (await http.get(f"{a.api}/metrics")).text
        assert "minerd_region_lease_valid 1.0" in text
        assert "minerd_region_allocation_kw " in text
        # ...and the simulator's truth meets it.
        for s in (a, b):
            cap_w = alloc[s.name]

            async def under(s: SiteRun = s, cap_w: float = cap_w) -> bool:
                return await s.truth_w() <= cap_w

            await until(region, under, f"{s.name} under its allocation")

        # Cut the coordinator: no allocation arrives any more.
        await region.stop_coordinator()
        await asyncio.sleep(0.5)  # one already on the wire lands now, or never
        held = {s.name: (s.lease.last, s.lease.expires_at_s) for s in (a, b)}
        marks = {s.name: len(s.results) for s in (a, b)}
        for s in (a, b):
            await until(
                region,
                lambda s=s: any(r.snapshot.taken_at_s >= held[s.name][1] + 3.0 for r in s.results),
                f"{s.name} cycles past its lease",
            )
        for s in (a, b):
            grant, expires_s = held[s.name]
            assert grant is not None
            assert s.lease.last == grant and s.lease.expires_at_s == expires_s  # nothing new
            after = s.results[marks[s.name] :]
            before_end = [r for r in after if r.snapshot.taken_at_s < expires_s]
            past_end = [r for r in after if r.snapshot.taken_at_s >= expires_s]
            assert before_end and past_end, s.name
            for r in before_end:  # the allocation holds until the lease ends
                lim = r.decision.limit
                assert lim.limit_kw == pytest.approx(min(grant.allocation_kw, s.contract_kw))
                if grant.allocation_kw < s.contract_kw:
                    assert lim.origin == "region", (s.name, lim)
                assert r.failsafe_reason == ""
            for r in past_end:  # then the site's own fail-safe limit
                assert r.failsafe_reason.startswith(REASON_EXPIRED), r.failsafe_reason
                assert r.decision.limit.origin == "failsafe"
                assert r.decision.limit.limit_kw == pytest.approx(s.failsafe_kw)
            body = await s.site_api()
            assert body["limit"]["origin"] == "failsafe"
            assert body["limit"]["limit_kw"] == pytest.approx(s.failsafe_kw)
            assert REASON_EXPIRED in body["failsafe"]["reason"], body["failsafe"]
            async with httpx.AsyncClient(timeout=5.0) as http:
                text = (await http.get(f"{s.api}/metrics")).text
            assert "minerd_region_lease_valid 0.0" in text
            assert "minerd_region_allocation_kw " not in text
        # The simulator's truth goes under each site's fail-safe limit.
        for s in (a, b):

            async def under_failsafe(s: SiteRun = s) -> bool:
                return await s.truth_w() <= s.failsafe_kw * 1000.0

            await until(region, under_failsafe, f"{s.name} under its fail-safe limit")

        # The coordinator back: both sites re-join (their offers again, fresh allocations
        # under a new leadership revision).
        old_revision = {s.name: s.lease.newest_revision for s in (a, b)}
        marks = {s.name: len(s.results) for s in (a, b)}
        service = region.start_coordinator()
        await until(region, lambda: settled(region), "both sites re-joined")
        for s in (a, b):
            assert s.lease.newest_revision > old_revision[s.name]
            await until(
                region,
                lambda s=s: any(
                    r.decision.limit.origin in ("region", "contracted")
                    for r in s.results[marks[s.name] :]
                ),
                f"{s.name} obeys its allocation again",
            )
            # Audited per site: the allocations and the lease's end.
            actions = {e.action for e in s.daemon.site.stores.audit.query(limit=500)}  # type: ignore[union-attr]
            assert {"region.allocation", "region.lease_expired"} <= actions, actions
        audited = {e.subject for e in service.audit_log.query(action="region.allocation")}
        assert audited == set(OCTETS)

        # A quota on site A below its allocation: A obeys the quota (an allocation never
        # raises a site), reports it as its own limit, and the coordinator gives B the rest.
        before = dict(service.node.last.allocations)  # type: ignore[union-attr]
        quota_kw = round(0.6 * before["site-a"] / 1000.0, 1)
        post_quota(a, quota_kw)

        def moved() -> bool:
            last = service.node.last
            return (
                last is not None
                and last.allocations.get("site-a", 1e12) <= quota_kw * 1000.0 + 1e-6
                and settled(region)
            )

        await until(region, moved, "the coordinator re-splits within A's quota")
        after = service.node.last.allocations  # type: ignore[union-attr]
        assert after["site-b"] > before["site-b"]
        assert sum(after.values()) <= limit_w + 1e-6
        assert (await a.site_api())["limit"]["origin"] == "quota"

        # The regional limit cut at runtime over NATS (token checked, audited): both sites
        # get allocations within it at once, and the simulators' truth meets them.
        new_kw = round(0.7 * limit_w / 1000.0, 1)
        nc = await nats.connect(nats_server.url)
        try:
            reply = await nc.request(
                limit_subject(region.name),
                json.dumps({"limit_kw": new_kw, "actor": "ops-test", "token": "t0k"}).encode(),
                timeout=10,
            )
        finally:
            await nc.close()
        assert json.loads(reply.data)["ok"] is True

        def cut() -> bool:
            last = service.node.last
            return (
                last is not None
                and last.limit_w == new_kw * 1000.0
                and sum(last.allocations.values()) <= new_kw * 1000.0 + 1e-6
                and settled(region)
            )

        await until(region, cut, "allocations within the new regional limit")
        for s in (a, b):
            cap_w = service.node.last.allocations[s.name]  # type: ignore[union-attr]

            async def meets(s: SiteRun = s, cap_w: float = cap_w) -> bool:
                return await s.truth_w() <= cap_w

            await until(region, meets, f"{s.name} under its cut allocation")
        assert service.audit_log.query(action="region.limit.set")[0].actor == "ops-test"


def post_quota(run: SiteRun, limit_kw: float) -> None:
    """What the quota API does: store the order, wake the cycle."""
    site = run.daemon.site
    assert site is not None
    now = run.daemon.clock.now_s()
    q = Quota(
        quota_id=str(uuid.uuid4()),
        limit_kw=limit_kw,
        start_s=now,
        end_s=None,
        source=QuotaSource.API,
        issued_at_s=now,
        issued_by="region-test",
        reference=None,
    )
    site.stores.quotas.add(q, idempotency_key=q.quota_id)
    site.quotas_changed()
