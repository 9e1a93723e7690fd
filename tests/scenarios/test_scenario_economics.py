"""Acceptance (issue 15.4): price-aware dispatch on the simulated site with the real daemon.

4 S21 and 4 S19j Pro (LuxOS) under a contracted limit far above the fleet, [economics] on
with the hashprice from a Hashrate-Index-shaped feed on 127.0.0.1 (0.05 USD/TH/day, 2 %
pool fee) and an energy price of 100 USD/MWh: above the S19j Pro's breakeven (77), below
the S21's (125). The S19j Pros go to sleep, the S21s keep hashing (simulator truth).
Then the feed stops answering: once stale, a price at which everything would pay (10
USD/MWh) changes nothing, the last breakeven holds. The feed answers again: the S19j Pros
wake. Times are simulated seconds (speed 5)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from local_http import local_http
from scenario_kit import Running, Tuning, running_site

from minerd.control.economics import EconomicsState
from minerd.runtime.economics import Economics
from minerd.runtime.economics_status import PriceSlot
from minerd.sim import RigGroupSpec, SiteSpec

SPEED = 5.0
S21, S19 = "bitmain-s21", "bitmain-s19jpro"
STALE_AFTER_S = 15.0


@dataclass
class Feed:
    status: int = 200
    url: str = ""

    async def handle(self, _: web.Request) -> web.Response:
        body = {"data": [{"timestamp": "2026-11-29T12:00:00Z", "price": 0.05}]}
        return web.Response(status=self.status, text=json.dumps(body))


@pytest_asyncio.fixture
async def feed() -> AsyncIterator[Feed]:
    f = Feed()
    async with local_http([web.get("/hashprice", f.handle)]) as base_url:
        f.url = f"{base_url}/hashprice"
        yield f


def economics_toml(url: str) -> str:
    return f"""
[economics]
enabled = true
pool_fee_pct = 2.0
price_per_mwh = 100.0

[economics.hashprice]
url = "{url}"
poll_s = 2
timeout_s = 5
stale_after_min = {STALE_AFTER_S / 60.0}
"""


def awake_by_model(run: Running) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {S21: [], S19: []}
    for r in run.sim.fleet.truth():
        out[str(r["model"])].append(bool(r["awake"]))
    return out


def priced(run: Running) -> Economics:
    parts = run.daemon.economics
    assert parts is not None, "[economics] is on: the daemon must have built it"
    return parts.economics


@pytest.mark.asyncio
async def test_price_between_breakevens_sleeps_s19j_pros_and_stale_keeps_it(
    tmp_path: Path, feed: Feed
) -> None:
    spec = SiteSpec(
        groups=(RigGroupSpec(S21, 4), RigGroupSpec(S19, 4)),
        rigs_per_container=8,
        rig_port=0,
        base_octet=109,
        speed=SPEED,
        workers=1,
        feeder_meters=False,
    )
    tuning = Tuning(contracted_limit_kw=200.0, failsafe_limit_kw=100.0, ramp_up_kw_per_s=50.0)
    async with running_site(spec, tmp_path, tuning, economics_toml(feed.url)) as run:
        econ = priced(run)

        def s19_asleep_s21_awake() -> bool:
            a = awake_by_model(run)
            return not any(a[S19]) and all(a[S21])

        await run.wait_for("S19j Pros asleep for price, S21s hashing", s19_asleep_s21_awake, 90)
        assert econ.decision.state is EconomicsState.ACTIVE
        status = econ.status(0.0, 0.0)
        assert status.models_off == (S19,)
        kept = econ.decision.max_j_per_th
        assert kept == pytest.approx(0.05 * 0.98 / (100.0 * 24e-6))

        # The feed goes quiet; once stale, a price at which everything pays changes nothing.
        feed.status = 503
        await run.wait_for(
            "hashprice stale", lambda: econ.decision.state is EconomicsState.STALE, 60
        )
        now_s = run.now_s()
        econ.set_prices([PriceSlot(now_s, now_s + 3600.0, 10.0)], now_s)
        for _ in range(10):  # 20 sim s: longer than a wake (10 s) plus min-off (5 s)
            await run.sleep_sim(2.0)
            assert s19_asleep_s21_awake(), awake_by_model(run)
            assert econ.decision.state is EconomicsState.STALE
            assert econ.decision.max_j_per_th == kept
        assert "HTTP 503" in econ.status(0.0, 0.0).feed_error

        # The feed answers again: 10 USD/MWh now decides, and the S19j Pros wake.
        feed.status = 200
        await run.wait_for(
            "every rig awake at 10 USD/MWh",
            lambda: all(r["awake"] for r in run.sim.fleet.truth()),
            90,
        )
        assert econ.decision.state is EconomicsState.ACTIVE
        assert econ.status(0.0, 0.0).models_off == ()
        s19s = {str(t["id"]) for t in run.sim.fleet.truth() if t["model"] == S19}
        woken = [c for r in run.cycles for c in r.dispatch.raise_ if c.rig_id in s19s]
        assert woken, "the S19j Pros were woken by commands"
        slept = [c.reason for r in run.cycles for c in r.dispatch.shed if c.rig_id in s19s]
        assert slept and set(slept) == {"sleep: energy costs more than it earns"}
