"""The hashprice feed against a real HTTP server on 127.0.0.1, and the stale-feed rule through
runtime.economics: feed stops answering -> the last breakeven stays in force; back -> it moves.

Time is a ManualClock: staleness and timeouts move only when the test advances it."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from local_http import local_http

from minerd.clock import ManualClock
from minerd.control.economics import EconomicsState, Rates, Tariff, breakeven_j_per_th
from minerd.errors import FeedError
from minerd.profiles import load_rig_model
from minerd.runtime.economics import Economics, EconomicsConfig
from minerd.runtime.economics_status import PriceSlot
from minerd.runtime.hashprice_feed import HashpriceFeed, parse_hashprice
from minerd.storage.db import Database
from minerd.storage.state import StateStore

S21 = load_rig_model("bitmain-s21")
S19JPRO = load_rig_model("bitmain-s19jpro")


def reply(*points: tuple[str, float]) -> dict[str, object]:
    return {"data": [{"timestamp": t, "price": p} for t, p in points]}


@dataclass
class Feed:
    """A Hashrate-Index-shaped endpoint whose answer the test sets."""

    status: int = 200
    body: bytes = b""
    hang: bool = False
    requests: int = 0
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends a hung answer
    url: str = ""

    def serve(self, doc: object) -> None:
        self.status, self.body, self.hang = 200, json.dumps(doc).encode(), False

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        assert request.query.get("hashunit") in (None, "THS", "PHS")
        self.seen.set()
        if self.hang:
            await self.release.wait()  # no answer until teardown; the client times out
        return web.Response(status=self.status, body=self.body, content_type="application/json")


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Feed]:
    feed = Feed()
    path = "/hi-api/hashrateindex/hashprice"
    async with local_http([web.get(path, feed.handle)]) as base_url:
        feed.url = f"{base_url}{path}?currency=USD&hashunit=THS"
        yield feed
        feed.release.set()


def make_feed(url: str, clock: ManualClock, **kw: object) -> HashpriceFeed:
    args: dict[str, object] = {"poll_s": 300.0, "timeout_s": 30.0, "stale_after_s": 3600.0}
    args.update(kw)
    return HashpriceFeed(url, clock, **args)  # type: ignore[arg-type]


# ------------------------------------------------------------------ reading the feed


@pytest.mark.asyncio
async def test_reads_the_newest_point_of_a_hashrate_index_reply(server: Feed) -> None:
    clock = ManualClock()
    server.serve(
        reply(
            ("2026-11-29T10:00:00.000Z", 0.0512),
            ("2026-11-29T12:00:00.000Z", 0.0498),  # newest, not last in the list
            ("2026-11-29T11:00:00.000Z", 0.0505),
        )
    )
    feed = make_feed(server.url, clock)
    reading = await feed.poll_once()
    assert reading is not None
    assert reading.usd_per_th_day == pytest.approx(0.0498)
    assert reading.as_of_s == pytest.approx(1_795_953_600.0)  # 2026-11-29T12:00Z
    assert reading.received_s == clock.now_s()
    assert feed.error == "" and feed.fresh(clock.now_s())


@pytest.mark.asyncio
async def test_per_ph_feed_is_converted_to_per_th(server: Feed) -> None:
    server.serve(reply(("2026-11-29T12:00:00Z", 49.8)))
    feed = make_feed(server.url, ManualClock(), hashunit="PHS")
    reading = await feed.poll_once()
    assert reading is not None and reading.usd_per_th_day == pytest.approx(0.0498)


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        (b"<html>busy</html>", "not JSON"),
        (b'{"price": 0.05}', 'no "data" list'),
        (b'{"data": []}', "empty"),
        (b'{"data": [{"timestamp": "2026-11-29T12:00:00Z", "price": "0.05"}]}', "not a number"),
        (b'{"data": [{"timestamp": "2026-11-29T12:00:00Z", "price": -1}]}', "positive"),
        (b'{"data": [{"timestamp": "yesterday", "price": 0.05}]}', "ISO-8601"),
        (b'{"data": [{"timestamp": "2026-11-29T12:00:00", "price": 0.05}]}', "time zone"),
        (b'{"data": [{"timestamp": "2026-11-29T12:00:00Z", "price": 49.8}]}', "PHS"),
    ],
)
def test_bad_replies_say_what_is_wrong_and_name_the_url(body: bytes, wanted: str) -> None:
    url = "http://127.0.0.1:9/hashprice"
    with pytest.raises(FeedError) as err:
        parse_hashprice(body, url)
    assert wanted in str(err.value)
    assert url in str(err.value)


@pytest.mark.asyncio
async def test_http_error_keeps_the_last_good_value(server: Feed) -> None:
    clock = ManualClock()
    feed = make_feed(server.url, clock)
    server.serve(reply(("2026-11-29T12:00:00Z", 0.05)))
    assert await feed.poll_once() is not None
    server.status = 503
    assert await feed.poll_once() is None
    assert f"feed {server.url}: HTTP 503" in feed.error
    assert feed.last is not None and feed.last.usd_per_th_day == pytest.approx(0.05)
    server.serve(reply(("2026-11-29T13:00:00Z", 0.06)))
    assert await feed.poll_once() is not None
    assert feed.error == "" and feed.last.usd_per_th_day == pytest.approx(0.06)


@pytest.mark.asyncio
async def test_no_answer_is_a_timeout_on_the_injected_clock(server: Feed) -> None:
    clock = ManualClock()
    feed = make_feed(server.url, clock, timeout_s=10.0)
    server.hang = True
    task = asyncio.create_task(feed.poll_once())
    await asyncio.wait_for(server.seen.wait(), 30)
    clock.advance(11.0)  # past the feed's timeout on its own clock
    assert await asyncio.wait_for(task, 30) is None
    assert "no reply within 10 s" in feed.error and server.url in feed.error


@pytest.mark.asyncio
async def test_nothing_listening_is_a_request_error() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hashprice"
    feed = make_feed(url, ManualClock())
    assert await feed.poll_once() is None
    assert feed.error.startswith(f"feed {url}: request failed")
    assert feed.last is None


@pytest.mark.asyncio
async def test_a_persisting_error_warns_once(
    server: Feed, caplog: pytest.LogCaptureFixture
) -> None:
    feed = make_feed(server.url, ManualClock())
    server.status = 500
    with caplog.at_level(logging.DEBUG, logger="minerd.economics"):
        for _ in range(4):
            await feed.poll_once()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "HTTP 500" in warnings[0].getMessage()
    assert "economics stays off" in warnings[0].getMessage()
    assert feed.failures == 4


# ------------------------------------------------------------------ the stale rule, end to end


def economics(feed: HashpriceFeed, price_per_mwh: float, **kw: object) -> Economics:
    cfg = EconomicsConfig(
        tariff=Tariff(default_per_mwh=price_per_mwh),
        pool_fee_fraction=0.02,
        **kw,  # type: ignore[arg-type]
    )
    return Economics(cfg, [S21, S19JPRO], feed=feed)


@pytest.mark.asyncio
async def test_feed_never_seen_leaves_economics_off_and_says_why(server: Feed) -> None:
    clock = ManualClock()
    feed = make_feed(server.url, clock)
    server.status = 500
    await feed.poll_once()
    econ = economics(feed, 100.0)
    assert econ.max_j_per_th(clock.now_s()) is None
    st = econ.status(0.0, 0.0)
    assert st.state == "off"
    assert "no hashprice received yet" in st.reason and "HTTP 500" in st.reason
    assert st.models_off == ()


@pytest.mark.asyncio
async def test_stale_feed_keeps_the_last_decision_then_follows_it_again(server: Feed) -> None:
    clock = ManualClock()
    feed = make_feed(server.url, clock, stale_after_s=1800.0)
    econ = economics(feed, 100.0)
    server.serve(reply(("2026-11-29T12:00:00Z", 0.05)))
    await feed.poll_once()
    first = econ.max_j_per_th(clock.now_s())
    assert first == pytest.approx(breakeven_j_per_th(Rates(100.0, 0.05, 1.0, 0.02)))
    assert econ.status(0.0, 0.0).models_off == ("bitmain-s19jpro",)

    # The feed stops answering and the price moves (API slot): within stale_after the
    # last good hashprice still counts, at the new price.
    server.hang = False
    server.status = 503
    econ.set_prices([PriceSlot(clock.now_s(), clock.now_s() + 86_400, 300.0)], clock.now_s())
    clock.advance(600.0)
    await feed.poll_once()
    assert econ.max_j_per_th(clock.now_s()) == pytest.approx(
        breakeven_j_per_th(Rates(300.0, 0.05, 1.0, 0.02))
    )
    at_300 = econ.decision.max_j_per_th
    # Past stale_after: the last breakeven stays in force, whatever the price does now;
    # never 0 (stop everything) and never None (run everything).
    econ.set_prices([PriceSlot(clock.now_s(), clock.now_s() + 86_400, 20.0)], clock.now_s())
    clock.advance(1800.0)
    await feed.poll_once()
    for _ in range(3):
        assert econ.max_j_per_th(clock.now_s()) == at_300
        clock.advance(300.0)
    st = econ.status(3000.0, 100.0)
    assert st.state == "stale" and not st.hashprice_fresh
    assert "HTTP 503" in st.feed_error
    assert st.max_j_per_th == at_300
    assert st.models_off == ("bitmain-s19jpro", "bitmain-s21")

    # The feed answers again: the current rates decide at once.
    server.serve(reply(("2026-11-29T14:00:00Z", 0.05)))
    await feed.poll_once()
    assert econ.max_j_per_th(clock.now_s()) == pytest.approx(
        breakeven_j_per_th(Rates(20.0, 0.05, 1.0, 0.02))
    )
    st = econ.status(3000.0, 100.0)
    assert st.state == "active" and st.hashprice_fresh and st.feed_error == ""
    assert st.models_off == ()


@pytest.mark.asyncio
async def test_use_every_kw_shows_the_money_but_never_filters(server: Feed) -> None:
    clock = ManualClock()
    feed = make_feed(server.url, clock)
    server.serve(reply(("2026-11-29T12:00:00Z", 0.05)))
    await feed.poll_once()
    econ = economics(feed, 500.0, use_every_kw=True)  # everything loses money
    assert econ.max_j_per_th(clock.now_s()) is None
    st = econ.status(3500.0, 200.0)
    assert st.state == EconomicsState.USE_EVERY_KW.value and st.models_off == ()
    assert st.energy_cost_per_h == pytest.approx(500.0 * 3.5e-3)
    assert st.revenue_per_h == pytest.approx(0.05 * 0.98 * 200 / 24)
    assert st.margin_per_h is not None and st.margin_per_h < 0


def test_price_slots_survive_a_restart(tmp_path: Path) -> None:
    state = StateStore(Database(tmp_path / "s.sqlite"))
    cfg = EconomicsConfig(tariff=Tariff(default_per_mwh=50.0), fixed_hashprice_usd_per_th_day=0.05)
    econ = Economics(cfg, [S21], state=state)
    econ.set_prices([PriceSlot(1000.0, 4600.0, 90.0), PriceSlot(0.0, 500.0, 1.0)], now_s=600.0)
    assert econ.price_slots() == (PriceSlot(1000.0, 4600.0, 90.0),)  # the ended one dropped
    again = Economics(cfg, [S21], state=StateStore(Database(tmp_path / "s.sqlite")))
    again.restore()
    assert again.price_slots() == (PriceSlot(1000.0, 4600.0, 90.0),)
    again.max_j_per_th(2000.0)
    assert again.status(0.0, 0.0).energy_price_per_mwh == 90.0
    again.max_j_per_th(5000.0)
    assert again.status(0.0, 0.0).energy_price_per_mwh == 50.0


@pytest.mark.asyncio
async def test_award_hours_filter_nothing_and_stale_keeps_the_filter_from_before(
    server: Feed,
) -> None:
    clock = ManualClock()
    feed = make_feed(server.url, clock, stale_after_s=1800.0)
    econ = economics(feed, 100.0)
    server.serve(reply(("2026-11-29T12:00:00Z", 0.05)))
    await feed.poll_once()
    before = econ.max_j_per_th(clock.now_s())
    assert before is not None
    # An energy award covers the next hour: its energy is paid, nothing sleeps for price.
    assert econ.max_j_per_th(clock.now_s(), prepaid=True) is None
    assert econ.status(0.0, 0.0).state == "prepaid"
    assert econ.status(0.0, 0.0).models_off == ()
    # The feed dies during the award hour; after it, stale keeps the filter from before.
    server.status = 500
    clock.advance(3600.0)
    await feed.poll_once()
    assert econ.max_j_per_th(clock.now_s(), prepaid=True) is None
    assert econ.max_j_per_th(clock.now_s()) == before
    assert econ.status(0.0, 0.0).state == "stale"
