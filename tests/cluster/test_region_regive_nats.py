"""Re-giving a silent site's unusable award energy, on a real nats-server and the real site
wiring of test_region_award_nats (each site the real ControlCycle on its own SQLite file):
one site goes silent, nothing moves until its lease has expired (plus the clock slack), then
its part falls to what it can still use and the other site's stored award grows by the
difference; the coordinators' parts never sum past the regional award, a standby reads the
re-given split from the shared bucket, and a restarted coordinator restores it from its
audit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

import nats
import pytest
import region_rounds as rounds
from servers import ServerProcess
from test_region_award_nats import (
    HOUR_S,
    MINIMAL,
    T0,
    TOKEN,
    WAIT_S,
    PlantSite,
    SiteRun,
    send_awards,
    stop_sites,
)
from test_region_restart import FollowClock
from waiting import wait_until

from minerd.clock import ManualClock
from minerd.cluster.coordinator import ACTION_AWARD_REGIVE, Coordinator
from minerd.daemon.region_role import build_region_role
from minerd.settings import settings_from_dict

pytestmark = pytest.mark.timeout(180)

LEASE_S = 20.0
SLACK_S = 5.0
AWARD_KWH = 60.0
START_S = T0 + 40.0  # past the coordinator's term start (T0 + 8) + lease + slack


@pytest.mark.asyncio
async def test_a_silent_sites_unusable_energy_goes_to_the_other_site_after_its_lease(
    nats_server: ServerProcess, tmp_path: Path
) -> None:
    name = f"r{uuid.uuid4().hex[:8]}"
    clock = ManualClock(T0)
    nc = await nats.connect(nats_server.url)
    audited: list[tuple[str, str]] = []

    def coordinator(cid: str) -> Coordinator:
        return Coordinator(
            nc, name, cid, 100.0, clock, lease_s=LEASE_S, site_silent_s=10.0,
            control_token=TOKEN, regive_slack_s=SLACK_S,
            audit=(lambda a, _s, d: audited.append((a, json.dumps(d)))) if cid == "c1" else None,
        )  # fmt: skip

    coord, standby = await rounds.leased_pair(nc, name, clock, coordinator)
    runs = rounds.big_and_small(name, nats_server.url, tmp_path)
    live = list(runs)  # the sites whose region role runs (every site's cycle runs)

    def step(seconds: int) -> None:
        rounds.step(clock, runs, seconds)

    async def lead() -> None:
        await rounds.lead(clock, coord, standby, live)

    try:
        step(8)
        await wait_until(
            lambda: any(r.failed() for r in runs) or set(coord.sites()) == {"big", "small"},
            WAIT_S,
            "both sites' offers",
        )
        await lead()
        await wait_until(lambda: any(r.failed() for r in runs) or all(
            r.role.lease.last is not None for r in runs), WAIT_S, "allocations")  # fmt: skip
        answer = await send_awards(
            nc,
            name,
            [{"id": "r-1", "start_s": START_S, "end_s": START_S + HOUR_S,
              "energy_kwh": AWARD_KWH}],
        )  # fmt: skip
        assert answer["ok"] is True, answer
        while clock.now_s() < START_S:
            step(4)
            await lead()
        split = dict(coord.award_splits["r-1"])
        assert set(split) == {"big", "small"}
        assert sum(split.values()) == pytest.approx(AWARD_KWH)  # both fresh: all of it
        big, small = runs

        def part(run: SiteRun) -> float:
            (a,) = run.plant.stores.awards.in_range(START_S, START_S + HOUR_S)
            return a.energy_kwh

        def stored(run: SiteRun, kwh: float) -> bool:
            awards = run.plant.stores.awards.in_range(START_S, START_S + HOUR_S)
            return run.failed() or [a.energy_kwh for a in awards] == pytest.approx([kwh])

        for run in runs:
            await wait_until(lambda run=run: stored(run, split[run.name]), WAIT_S, "stored")

        # The small site goes silent: its role stops, no more offers, no more allocations.
        small.serve.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await small.serve
        live.remove(small)
        rounds_before_expiry = 0
        for _ in range(40):
            step(2)
            expiry_s = coord._history["small"][-1].ends_at_s + SLACK_S
            await lead()
            if coord.award_splits["r-1"] != split:
                break
            rounds_before_expiry += clock.now_s() < expiry_s
        assert coord.award_splits["r-1"] != split, "nothing re-given"
        assert clock.now_s() >= expiry_s  # never before its lease (and the slack) ran out
        assert rounds_before_expiry > 0  # it was silent a while with nothing re-given
        new = coord.award_splits["r-1"]
        gift_kwh = split["small"] - new["small"]
        assert gift_kwh > 0.0
        assert new["big"] == pytest.approx(split["big"] + gift_kwh)
        assert sum(new.values()) <= AWARD_KWH + 1e-9
        (entry,) = [json.loads(d) for a, d in audited if a == ACTION_AWARD_REGIVE]
        assert [(g["from"], g["to"]) for g in entry["gifts"]] == [("small", "big")]
        bound = entry["bounds"]["small"]
        assert bound["part_kwh"] == pytest.approx(split["small"])
        assert new["small"] >= bound["bound_kwh"] - 1e-9
        # What the silent site can still use plus the other's grown part: within the award.
        assert bound["bound_kwh"] + new["big"] <= AWARD_KWH + 1e-9

        # The big site's stored award is replaced by the larger part, and paced as such.
        await wait_until(lambda: stored(big, new["big"]), WAIT_S, "the grown part stored")
        assert part(big) > split["big"]
        tracker = big.plant.cycle.energy
        assert tracker is not None
        for _ in range(5):  # the tracker takes the store's change at a cycle
            step(1)
            await asyncio.sleep(0.05)
            if tracker.award is not None and tracker.award.energy_kwh == pytest.approx(new["big"]):
                break
        assert tracker.award is not None
        assert tracker.award.energy_kwh == pytest.approx(new["big"])
        assert part(small) == pytest.approx(split["small"])  # it heard nothing: silent

        # The standby took the re-given split from the shared bucket: a takeover sends it.
        assert standby.award_splits["r-1"] == new
        now_s = clock.now_s()
        assert standby.site_awards("big", now_s) == coord.site_awards("big", now_s)
        # A restarted coordinator takes it back from its audit.
        restarted = coordinator("c3")
        restarted.restore_awards(audited)
        assert restarted.award_splits["r-1"] == new
        gave = {"small": bound["failsafe_w"]}
        assert restarted.award_donors["r-1"] == standby.award_donors["r-1"] == gave

        # The small site comes back within the interval: it gets its lowered part (replacing
        # the whole one it stored), and at most its fail-safe limit while the interval runs.
        raw = {**MINIMAL, "region": {"name": name, "nats_url": nats_server.url, "site": "small"}}
        settings = settings_from_dict(raw, base_dir=tmp_path / "small")
        site = PlantSite(small.plant)
        role = build_region_role(settings, site, FollowClock(small.plant.clock), None)  # type: ignore[arg-type]
        back = SiteRun("small", small.plant, role, asyncio.create_task(role._serve()))
        runs[runs.index(small)] = back
        live.append(back)
        for _ in range(10):
            step(1)
            await lead()
            if stored(back, new["small"]):
                break
        await wait_until(lambda: stored(back, new["small"]), WAIT_S, "the lowered part stored")
        assert part(back) < split["small"]
        assert coord.award_splits["r-1"] == new
        last = coord.last
        assert last is not None and "small" in last.allocations
        assert last.allocations["small"] <= coord._heard["small"].offer.failsafe_w
        # A revision of the interval rescales the re-given split and keeps the site held.
        body = {"awards": [{"id": "r-2", "start_s": START_S, "end_s": START_S + HOUR_S,
                "energy_kwh": AWARD_KWH / 2}], "actor": "ops", "token": TOKEN}  # fmt: skip
        assert coord.set_awards_request(json.dumps(body).encode())["ok"] is True
        assert coord.award_splits["r-2"] == pytest.approx({s: k / 2 for s, k in new.items()})
        assert coord.award_donors["r-2"] == gave
    finally:
        await stop_sites(runs)
        await coord.stop()
        await standby.stop()
        await nc.close()
