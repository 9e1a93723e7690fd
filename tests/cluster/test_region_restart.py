"""A site's regional allocation across its own restart, through the real wiring: the real
ControlCycle (tests/cycle_plant.py) on an SQLite file, build_region_role over a real
nats-server, a real Coordinator. The site takes an allocation (saved in its state), its role
and cycle are stopped and built again over the same file; before the coordinator speaks
again, the restored allocation is the limit in force, or, when the lease ended while the
site was down, the site is on its fail-safe limit with the expiry reason. Then the
coordinator's next allocation replaces it. Time is ManualClocks the test moves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from cycle_plant import TEST_RIG, CyclePlant
from nats.aio.client import Client
from servers import ServerProcess
from waiting import wait_until

from minerd.clock import ManualClock, TimerHandle
from minerd.cluster.coordinator import Coordinator
from minerd.cluster.lease import ControllerLease, lease_store
from minerd.cluster.region import lease_token
from minerd.cluster.region_site import RegionSiteNode
from minerd.control.region_lease import (
    REASON_EXPIRED,
    REASON_NONE_YET,
    RegionalGrant,
    RegionalLease,
)
from minerd.daemon.region_role import STATE_LEASE, RegionRole, build_region_role, restore_lease
from minerd.runtime.cycle import ControlCycle, CycleResult
from minerd.settings import Settings, settings_from_dict
from minerd.storage import Database, Stores

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
MINIMAL = tomllib.loads((REPO / "tests/config/fixtures/minimal.toml").read_text())
T0 = 1_800_000_000.0
LEASE_S = 20.0
REGION_KW = 30.0  # the plant: 10 rigs, 36.5 kW flat out; contract 73 kW, fail-safe 18.25 kW
SITE = "plant"
WAIT_S = 30.0  # a bound that turns a hang into a failure, never a measured duration


class FollowClock:
    """The role's clock: the plant's ManualClock for time, but its waits are short real
    sleeps, so the role's offer loop never moves the time the test moves itself."""

    speed = 1.0

    def __init__(self, inner: ManualClock) -> None:
        self.inner = inner

    def now_s(self) -> float:
        return self.inner.now_s()

    def monotonic_s(self) -> float:
        return self.inner.monotonic_s()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0.05)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(seconds)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> TimerHandle:
        return self.inner.call_later(seconds, callback)


@dataclass
class PlantSite:
    """What the role reads of minerd.runtime.site.Site: its cycle and its stores."""

    cycle: ControlCycle
    stores: Stores


@dataclass
class Region:
    name: str
    nc: Client
    clock: ManualClock  # the coordinator's; moved with the site's
    coord: Coordinator
    settings: Settings


@pytest_asyncio.fixture
async def region(nats_server: ServerProcess, tmp_path: Path) -> AsyncIterator[Region]:
    name = f"r{uuid.uuid4().hex[:8]}"
    clock = ManualClock(T0)
    nc = await nats.connect(nats_server.url)
    coord = Coordinator(nc, name, "coord-1", REGION_KW, clock, lease_s=LEASE_S, site_silent_s=60.0)
    # Leadership long enough that the test's pauses never lose it (real seconds on the server).
    kv = await lease_store(nc.jetstream(), lease_token(name), 60.0)
    coord.lease = ControllerLease(kv, "coord-1", 60.0, clock)
    await coord.start()
    raw = {**MINIMAL, "region": {"name": name, "nats_url": nats_server.url, "site": SITE}}
    try:
        yield Region(name, nc, clock, coord, settings_from_dict(raw, base_dir=tmp_path))
    finally:
        await coord.stop()
        await nc.close()


@dataclass
class SiteRun:
    plant: CyclePlant
    role: RegionRole
    serve: asyncio.Task[None] | None = None

    @property
    def lease(self) -> RegionalLease:
        return self.role.lease

    def saved_seq(self) -> object:
        value = self.plant.stores.state.get(STATE_LEASE)
        return value.get("seq") if isinstance(value, dict) else None

    def failed(self) -> bool:
        """False while the role runs (or was never started); raises if it stopped."""
        if self.serve is not None and self.serve.done() and not self.serve.cancelled():
            raise AssertionError(f"the region role stopped: {self.serve.exception()!r}")
        return False

    async def speak(self) -> None:
        """Connect to the region: offers out, allocations in, audit and lease written."""
        self.serve = asyncio.create_task(self.role._serve(), name="region")

    async def stop(self) -> None:
        """The daemon stops: its region role, then its database."""
        if self.serve is not None:
            self.serve.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                async with asyncio.timeout(WAIT_S):
                    await self.serve
        self.plant.stores.db.close()


def start_site(r: Region, tmp_path: Path, start_s: float, *, restore: bool) -> SiteRun:
    """The site daemon's start: its cycle over site.sqlite, then its region role."""
    plant = CyclePlant(
        tmp_path, TEST_RIG, n=10, db_name="site.sqlite", start_s=start_s, restore=restore
    )
    site = PlantSite(plant.cycle, plant.stores)
    role = build_region_role(r.settings, site, FollowClock(plant.clock), None)  # type: ignore[arg-type]
    return SiteRun(plant, role)


def step(r: Region, run: SiteRun, seconds: int = 1) -> CycleResult:
    """Seconds pass on both sides; the site's cycle runs once a second."""
    result = None
    for _ in range(seconds):
        r.clock.advance(1.0)
        result = run.plant.step()
    assert result is not None
    return result


async def allocate(r: Region, run: SiteRun) -> None:
    """One coordinator round; the site takes its allocation and saves it."""
    before = run.lease.accepted
    assert await r.coord.lease.tick()  # type: ignore[union-attr]
    assert await r.coord.round() is not None
    await wait_until(lambda: run.failed() or run.lease.accepted > before, WAIT_S, "allocation")
    last = run.lease.last
    assert last is not None
    await wait_until(lambda: run.saved_seq() == last.seq, WAIT_S, "the allocation saved")


async def allocated_site(r: Region, tmp_path: Path) -> tuple[SiteRun, float]:
    """A site that obeys an allocation below its contract, saved; its allocation (kW)."""
    run = start_site(r, tmp_path, T0, restore=False)
    await run.speak()
    step(r, run, 8)  # past the cycle's warm-up: the site offers
    await wait_until(lambda: run.failed() or SITE in r.coord.sites(), WAIT_S, "the site's offer")
    for _ in range(3):  # staged raises complete once the site confirms them in an offer
        await allocate(r, run)
        seq = run.lease.last.seq  # type: ignore[union-attr]
        await wait_until(
            lambda seq=seq: r.coord.sites()[SITE].held_seq == seq, WAIT_S, "the offer confirms"
        )
        step(r, run)
    kw = run.lease.allocation_kw(run.plant.clock.now_s())
    assert kw is not None and kw < run.plant.cycle.config.contracted_limit_kw
    result = step(r, run)
    assert (result.decision.limit.origin, result.decision.limit.limit_kw) == ("region", kw)
    return run, kw


@pytest.mark.asyncio
async def test_a_restarted_site_obeys_its_saved_allocation_until_a_newer_one(
    region: Region, tmp_path: Path
) -> None:
    r = region
    first, kw = await allocated_site(r, tmp_path)
    grant = first.lease.last
    expires_at_s = first.lease.expires_at_s
    await first.stop()
    # Down 5 s of a 20 s lease; the coordinator says nothing meanwhile.
    down_s = 5.0
    r.clock.advance(down_s)
    second = start_site(r, tmp_path, first.plant.clock.now_s() + down_s, restore=True)
    assert second.lease.last == grant and second.lease.expires_at_s == expires_at_s
    assert second.lease.accepted == 0  # nothing came over the wire: the saved one
    results = [step(r, second) for _ in range(3)]
    for res in results:
        assert res.failsafe_reason == ""
        assert (res.decision.limit.origin, res.decision.limit.limit_kw) == ("region", kw)
    # The coordinator speaks again, with a lower regional limit: its allocation (a newer
    # revision or seq) replaces the restored one at once.
    r.coord.limit_kw = kw - 5.0
    await second.speak()
    await wait_until(lambda: second.failed() or second.role.node.offers_sent > 0, WAIT_S, "offer")
    await allocate(r, second)
    assert grant is not None and second.lease.last is not None
    newer = second.lease.last
    assert (newer.lease_revision, newer.seq) > (grant.lease_revision, grant.seq)
    assert newer.allocation_kw == pytest.approx(kw - 5.0)
    result = step(r, second)
    assert (result.decision.limit.origin, result.decision.limit.limit_kw) == (
        "region",
        newer.allocation_kw,
    )
    # The restore went to the audit log (written once the role runs).
    audit = second.plant.stores.audit
    await wait_until(
        lambda: second.failed() or bool(audit.query(action="region.restored")),
        WAIT_S,
        "the restore audited",
    )
    await second.stop()


@pytest.mark.asyncio
async def test_a_site_down_past_its_lease_starts_on_its_failsafe_limit(
    region: Region, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = region
    first, _ = await allocated_site(r, tmp_path)
    grant = first.lease.last
    assert grant is not None
    remaining_s = first.lease.expires_at_s - first.plant.clock.now_s()
    await first.stop()
    # Down past the lease's end (by the site's clock at restart).
    down_s = remaining_s + 10.0
    r.clock.advance(down_s)
    caplog.set_level(logging.WARNING, logger="minerd.daemon.region")
    second = start_site(r, tmp_path, first.plant.clock.now_s() + down_s, restore=True)
    assert "ended" in caplog.text and "fail-safe" in caplog.text
    failsafe_kw = second.plant.cycle.config.failsafe_limit_kw
    for _ in range(3):
        res = step(r, second)
        assert res.failsafe_reason.startswith(REASON_EXPIRED), res.failsafe_reason
        assert f"revision {grant.lease_revision}, seq {grant.seq}" in res.failsafe_reason
        assert (res.decision.limit.origin, res.decision.limit.limit_kw) == (
            "failsafe",
            failsafe_kw,
        )
    # Until the coordinator gives a new allocation.
    await second.speak()
    await wait_until(lambda: second.failed() or second.role.node.offers_sent > 0, WAIT_S, "offer")
    await allocate(r, second)
    result = step(r, second)
    assert result.failsafe_reason == ""
    kw = second.lease.allocation_kw(second.plant.clock.now_s())
    assert kw is not None
    assert (result.decision.limit.origin, result.decision.limit.limit_kw) == ("region", kw)
    await second.stop()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "unreadable"),
        ('"a lease"', "unreadable"),
        ('{"region": "REGION", "site": "plant", "seq": 3}', "unreadable"),
        ('{"region": "elsewhere", "site": "plant", "seq": 3}', "not region"),
    ],
)
def test_a_corrupt_saved_allocation_is_logged_and_the_site_starts_without_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, words: str
) -> None:
    db = Database(tmp_path / "site.sqlite")
    try:
        stores = Stores.open(db)
        with db.transaction("a corrupt value") as conn:
            conn.execute(
                "INSERT INTO kv(key, value) VALUES (?, ?)",
                (STATE_LEASE, text.replace("REGION", "alatau")),
            )
        caplog.set_level(logging.WARNING, logger="minerd.daemon.region")
        lease = RegionalLease()
        assert restore_lease(lease, stores.state, "alatau", SITE, T0) is None
        assert words in caplog.text
        # As before the first allocation: no lease, fail-safe until the coordinator speaks.
        assert lease.last is None and lease.newest_revision == 0
        assert lease.failsafe_reason(T0) == REASON_NONE_YET
    finally:
        db.close()


def test_the_end_of_a_restored_lease_is_noticed_audited_and_wakes_the_cycle() -> None:
    clock = ManualClock(T0)
    lease = RegionalLease()
    assert lease.accept(RegionalGrant("coord-1", 3, 7, T0, LEASE_S, 25.0), T0) == ""
    saved = lease.saved()
    assert saved is not None
    clock.advance(5.0)  # a restart, 5 s later
    restored = RegionalLease()
    restored.restore(saved, clock.now_s())
    audit: list[tuple[str, dict[str, object]]] = []
    woken: list[bool] = []
    node = RegionSiteNode(
        Client(),
        "alatau",
        SITE,
        restored,
        clock,
        on_allocation=lambda: woken.append(True),
        audit=lambda a, d: audit.append((a, d)),
    )
    node.watch()
    assert audit == [] and woken == []  # in force: nothing to tell
    clock.advance(LEASE_S)
    node.watch()
    assert [a for a, _ in audit] == ["region.lease_expired"]
    assert str(audit[0][1]["reason"]).startswith(REASON_EXPIRED)
    assert woken == [True]
