"""Regional energy awards on a real nats-server, on manual clocks.

1. Coordinator and two site nodes: an award sent over NATS (token checked) is split at the
   first round in its interval, in the proportion of the power split, each site within its
   contract, and rides in each site's allocation; an award for a later interval is not sent
   ahead of it; a revision rescales the same shares.
2. Through the real wiring: two sites, each the real ControlCycle (tests/cycle_plant.py) on
   its own SQLite file with build_region_role: a regional award sent to the coordinator ends
   up in each site's own award store (source "region") with its share of the energy, and
   the site's EnergyTracker paces it; a site whose lease then expires keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tomllib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from cycle_plant import TEST_RIG, CyclePlant
from nats.aio.client import Client
from servers import ServerProcess
from test_region_restart import FollowClock
from waiting import wait_until

from minerd.clock import ManualClock
from minerd.cluster.coordinator import Coordinator
from minerd.cluster.curve import CurveClass, ShardCurve, Upgrade
from minerd.cluster.lease import ControllerLease, lease_store
from minerd.cluster.region import Allocation, award_subject, lease_token
from minerd.cluster.region_site import RegionSiteNode, SiteState
from minerd.control.energy_pace import PaceConfig
from minerd.control.region_lease import REASON_EXPIRED, RegionalLease
from minerd.daemon.region_role import RegionRole, build_region_role
from minerd.model import QuotaSource
from minerd.runtime.cycle import ControlCycle
from minerd.runtime.energy_tracker import EnergyTracker
from minerd.settings import settings_from_dict
from minerd.storage import Stores

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
MINIMAL = tomllib.loads((REPO / "tests/config/fixtures/minimal.toml").read_text())
T0 = 1_800_000_000.0
HOUR_S = 3600.0
TOKEN = "award-token"
WAIT_S = 30.0  # a bound that turns a hang into a failure, never a measured duration


def state(ths_per_kw: float, max_kw: float, failsafe_kw: float) -> SiteState:
    up = Upgrade(3_000.0, 3.0 * ths_per_kw, False)
    curve = ShardCurve(0.0, 0.0, (CurveClass(10, 0.0, 0.0, True, (up,)),))
    return SiteState(20_000.0, 2_000.0, max_kw * 1000.0, failsafe_kw * 1000.0, curve)


OFFERS = {"eff": state(40.0, 30.0, 10.0), "old": state(25.0, 60.0, 10.0)}


async def send_awards(nc: Client, region: str, items: list[dict[str, object]]) -> dict[str, object]:
    body = {"awards": items, "actor": "korem-desk", "token": TOKEN}
    reply = await nc.request(award_subject(region), json.dumps(body).encode(), timeout=5)
    answer = json.loads(reply.data)
    assert isinstance(answer, dict)
    return answer


# ---------------------------------------------------------------- coordinator and nodes


@dataclass
class Region:
    nc: Client
    clock: ManualClock
    coord: Coordinator
    sites: dict[str, RegionSiteNode]
    heard: dict[str, list[Allocation]]  # allocations that carried awards, per site
    name: str


@pytest_asyncio.fixture
async def region(nats_server: ServerProcess) -> AsyncIterator[Region]:
    name = f"r{uuid.uuid4().hex[:8]}"
    clock = ManualClock(T0)
    nc = await nats.connect(nats_server.url)
    coord = Coordinator(
        nc, name, "coord-1", 40.0, clock, lease_s=20.0, site_silent_s=6.0, control_token=TOKEN
    )
    kv = await lease_store(nc.jetstream(), lease_token(name), 60.0)
    coord.lease = ControllerLease(kv, "coord-1", 60.0, clock)
    assert await coord.lease.tick()
    await coord.start()
    heard: dict[str, list[Allocation]] = {s: [] for s in OFFERS}
    sites: dict[str, RegionSiteNode] = {}
    for s in OFFERS:
        sites[s] = RegionSiteNode(
            nc, name, s, RegionalLease(), clock, on_awards=lambda a, s=s: heard[s].append(a)
        )
        await sites[s].start()
    try:
        yield Region(nc, clock, coord, sites, heard, name)
    finally:
        await coord.stop()
        for node in sites.values():
            await node.stop()
        await nc.close()


async def offer_all(r: Region) -> None:
    before = {s: h.offer.seq for s, h in r.coord._heard.items()}
    for s, st in OFFERS.items():
        await r.sites[s].publish(st)
    await wait_until(
        lambda: all(
            s in r.coord._heard and r.coord._heard[s].offer.seq > before.get(s, 0) for s in OFFERS
        ),
        WAIT_S,
        "both offers heard",
    )


async def settle(r: Region) -> None:
    """Rounds until the staged raises are done (each site confirms in its next offer)."""
    for _ in range(4):
        await offer_all(r)
        assert await r.coord.round() is not None
        await wait_until(
            lambda: all(n.lease.last is not None for n in r.sites.values()), WAIT_S, "granted"
        )
        await asyncio.sleep(0.1)
        r.clock.advance(2.0)  # 8 s in all: past site_silent_s, so awards may be split


async def awards_round(r: Region) -> dict[str, float]:
    """One round; each site's awards as the allocation it accepted carries them."""
    counts = {s: len(h) for s, h in r.heard.items()}
    await offer_all(r)
    assert await r.coord.round() is not None
    await wait_until(
        lambda: all(len(r.heard[s]) > counts[s] for s in OFFERS), WAIT_S, "awards carried"
    )
    return {s: sum(w.energy_kwh for w in r.heard[s][-1].awards) for s in OFFERS}


@pytest.mark.asyncio
async def test_a_regional_award_is_split_like_the_power_and_sent_with_allocations(
    region: Region,
) -> None:
    r = region
    await settle(r)
    denied = await send_awards(r.nc, r.name, [])
    assert denied["ok"] is False and "awards" in str(denied["error"])
    now = r.clock.now_s()
    ok = await send_awards(
        r.nc,
        r.name,
        [
            {"id": "k-1", "start_s": T0, "end_s": T0 + HOUR_S, "energy_kwh": 30.0},
            {"id": "k-2", "start_s": T0 + HOUR_S, "end_s": T0 + 2 * HOUR_S, "energy_kwh": 8.0},
        ],
    )
    assert ok["ok"] is True, ok
    got = await awards_round(r)
    last = r.coord.last
    assert last is not None and now < T0 + HOUR_S
    # The power split: eff is pinned at its 30 kW contract, old has the other 10 kW.
    total_w = sum(last.targets.values())
    assert total_w == pytest.approx(40_000.0)
    assert sum(got.values()) == pytest.approx(30.0)
    for s, kwh in got.items():
        assert kwh == pytest.approx(30.0 * last.targets[s] / total_w)
        assert kwh <= OFFERS[s].max_import_w / 1000.0  # an hour at its contract
    # Only the interval running now: k-2 is split and sent at its own start.
    for s in OFFERS:
        assert [w.regional_award_id for w in r.heard[s][-1].awards] == ["k-1"]
        assert r.heard[s][-1].awards[0].issued_by == "korem-desk"
    assert set(r.coord.award_splits) == {"k-1"}
    # The next round re-sends the same parts (same ids: a replay at the site).
    ids = {s: r.heard[s][-1].awards[0].award_id for s in OFFERS}
    await awards_round(r)
    assert {s: r.heard[s][-1].awards[0].award_id for s in OFFERS} == ids
    # A revision of k-1 rescales the same shares.
    rev = await send_awards(
        r.nc, r.name, [{"id": "k-1b", "start_s": T0, "end_s": T0 + HOUR_S, "energy_kwh": 15.0}]
    )
    assert rev["ok"] is True
    revised = await awards_round(r)
    assert revised == pytest.approx({s: kwh / 2.0 for s, kwh in got.items()})
    # The next interval: k-2 split at its first round, k-1b no longer sent.
    r.clock.advance(T0 + HOUR_S + 1.0 - r.clock.now_s())
    assert await r.coord.lease.tick()  # type: ignore[union-attr]
    nxt = await awards_round(r)
    assert sum(nxt.values()) == pytest.approx(8.0)
    for s in OFFERS:
        assert [w.regional_award_id for w in r.heard[s][-1].awards] == ["k-2"]


# ---------------------------------------------------------------- through the real wiring


@dataclass
class PlantSite:
    """What the role and the command layer use of minerd.runtime.site.Site."""

    plant: CyclePlant

    @property
    def cycle(self) -> ControlCycle:
        return self.plant.cycle

    @property
    def stores(self) -> Stores:
        return self.plant.stores

    @property
    def clock(self) -> ManualClock:
        return self.plant.clock

    def quotas_changed(self) -> None:
        self.plant.cycle.quotas_changed()

    def awards_changed(self) -> None:
        if self.plant.cycle.energy is not None:
            self.plant.cycle.energy.awards_changed()


@dataclass
class SiteRun:
    name: str
    plant: CyclePlant
    role: RegionRole
    serve: asyncio.Task[None]

    def failed(self) -> bool:
        if self.serve.done() and not self.serve.cancelled():
            raise AssertionError(f"the region role of {self.name} stopped: {self.serve!r}")
        return False


async def stop_sites(runs: list[SiteRun]) -> None:
    """Stop each site's region role and close its database."""
    for run in runs:
        run.serve.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run.serve
        run.plant.stores.db.close()


def start_site(name: str, n: int, region: str, url: str, tmp: Path) -> SiteRun:
    tmp.mkdir()
    raw = {**MINIMAL, "region": {"name": region, "nats_url": url, "site": name}}
    settings = settings_from_dict(raw, base_dir=tmp)
    plant = CyclePlant(tmp, TEST_RIG, n=n, db_name="site.sqlite", start_s=T0)
    config = plant.cycle.config
    pace = PaceConfig(max_kw=config.contracted_limit_kw, margin_kw=config.loop.margin_kw)
    plant.cycle.energy = EnergyTracker(plant.stores.awards, pace, plant.stores.state)
    site = PlantSite(plant)
    role = build_region_role(settings, site, FollowClock(plant.clock), None)  # type: ignore[arg-type]
    return SiteRun(name, plant, role, asyncio.create_task(role._serve(), name=f"region-{name}"))


@pytest.mark.asyncio
async def test_a_regional_award_ends_in_each_sites_award_store_and_is_paced(
    nats_server: ServerProcess, tmp_path: Path
) -> None:
    name = f"r{uuid.uuid4().hex[:8]}"
    clock = ManualClock(T0)
    nc = await nats.connect(nats_server.url)
    coord = Coordinator(
        nc, name, "coord-1", 30.0, clock, lease_s=20.0, site_silent_s=10.0, control_token=TOKEN
    )
    kv = await lease_store(nc.jetstream(), lease_token(name), 60.0)
    coord.lease = ControllerLease(kv, "coord-1", 60.0, clock)
    await coord.start()
    runs = [
        start_site("big", 10, name, nats_server.url, tmp_path / "big"),
        start_site("small", 5, name, nats_server.url, tmp_path / "small"),
    ]

    def step(seconds: int = 1) -> None:
        for _ in range(seconds):
            clock.advance(1.0)
            for run in runs:
                run.plant.step()

    try:
        step(8)  # past the cycles' warm-up: the sites offer
        await wait_until(
            lambda: any(r.failed() for r in runs) or set(coord.sites()) == {"big", "small"},
            WAIT_S,
            "both sites' offers",
        )
        # A coordinator younger than site_silent_s (8 s of 10) splits no award: a site
        # may be unheard yet.
        await send_awards(
            nc, name, [{"id": "early", "start_s": T0, "end_s": T0 + 60, "energy_kwh": 1.0}]
        )
        assert await coord.lease.tick()
        assert await coord.round() is not None
        assert coord.award_splits == {}
        await wait_until(lambda: any(r.failed() for r in runs) or all(
            r.role.lease.last is not None for r in runs), WAIT_S, "allocations")  # fmt: skip
        step(3)
        answer = await send_awards(
            nc,
            name,
            [{"id": "k-7", "start_s": T0, "end_s": T0 + HOUR_S, "energy_kwh": 6.0,
              "issued_by": "korem"}],
        )  # fmt: skip
        assert answer["ok"] is True, answer
        assert await coord.lease.tick()
        rd = await coord.round()
        assert rd is not None
        split = coord.award_splits["k-7"]
        assert set(split) == {"big", "small"}
        assert sum(split.values()) == pytest.approx(6.0)
        total_w = sum(rd.targets.values())
        for s, kwh in split.items():
            assert kwh == pytest.approx(6.0 * rd.targets[s] / total_w)
        assert split["big"] > split["small"]  # twice the rigs, more of the power split

        def stored(run: SiteRun) -> list[object]:
            return [
                a for a in run.plant.stores.awards.in_range(T0, T0 + HOUR_S)
                if a.withdrawn_at_s is None
            ]  # fmt: skip

        await wait_until(
            lambda: any(r.failed() for r in runs) or all(stored(r) for r in runs),
            WAIT_S,
            "each site's award stored",
        )
        for run in runs:
            (a,) = run.plant.stores.awards.in_range(T0, T0 + HOUR_S)
            assert a.energy_kwh == pytest.approx(split[run.name])
            assert (a.start_s, a.end_s) == (T0, T0 + HOUR_S)
            assert a.source is QuotaSource.REGION
            assert a.issued_by == f"region {name} coordinator coord-1"
            assert a.reference is not None and "k-7" in a.reference and "korem" in a.reference
            assert run.plant.stores.audit.query(action="award.put")
        # A second round re-sends the same parts: nothing new stored.
        assert await coord.round() is not None
        await asyncio.sleep(0.3)
        for run in runs:
            assert len(run.plant.stores.awards.in_range(T0, T0 + HOUR_S)) == 1
        # Each site's EnergyTracker paces its own part, like an award from the quota API.
        step(2)
        for run in runs:
            tracker = run.plant.cycle.energy
            assert tracker is not None and tracker.award is not None
            assert tracker.award.energy_kwh == pytest.approx(split[run.name])
            result = run.plant.results[-1]
            assert result.decision.limit.origin == "award"  # the pace is below the allocation
        # The coordinator goes quiet: each lease expires, each site keeps its award.
        step(25)
        for run in runs:
            result = run.plant.results[-1]
            assert result.failsafe_reason.startswith(REASON_EXPIRED), result.failsafe_reason
            tracker = run.plant.cycle.energy
            assert tracker is not None and tracker.award is not None
            assert tracker.award.energy_kwh == pytest.approx(split[run.name])
    finally:
        await stop_sites(runs)
        await coord.stop()
        await nc.close()


@pytest.mark.asyncio
async def test_a_standby_splits_the_same_so_a_takeover_keeps_the_sites_parts(
    region: Region,
) -> None:
    r = region
    standby = Coordinator(
        r.nc, r.name, "coord-2", 40.0, r.clock, lease_s=20.0, site_silent_s=6.0,
        control_token=TOKEN,
    )  # fmt: skip
    kv = await lease_store(r.nc.jetstream(), lease_token(r.name), 60.0)
    standby.lease = ControllerLease(kv, "coord-2", 60.0, r.clock)
    assert not await standby.lease.tick()  # coord-1 leads
    await standby.start()
    try:
        await settle(r)  # 8 s: both past site_silent_s, both hearing every offer
        ok = await send_awards(
            r.nc, r.name, [{"id": "k-9", "start_s": T0, "end_s": T0 + HOUR_S, "energy_kwh": 20.0}]
        )
        assert ok["ok"] is True
        await wait_until(lambda: "k-9" in standby.awards, WAIT_S, "the standby took it too")
        got = await awards_round(r)
        assert await standby.round() is None  # it sends nothing...
        assert standby.award_splits["k-9"] == pytest.approx(r.coord.award_splits["k-9"])
        now = r.clock.now_s()
        for s in OFFERS:  # ...but would send the very same parts (same ids) on taking over
            assert standby.site_awards(s, now) == r.coord.site_awards(s, now)
        assert sum(got.values()) == pytest.approx(20.0)
    finally:
        await standby.stop()
