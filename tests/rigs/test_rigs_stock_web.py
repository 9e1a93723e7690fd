"""The stock Antminer driver: its parsers against the stock-cgi fixtures, and the driver
against the simulated rig (4028 + web CGI with Digest auth) over loopback sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from firmware_fixtures import FIRMWARE_DIR
from sim_fleet import manual_clock, manual_fleet, stock_pair

from minerd.clock import ManualClock
from minerd.devices.rig_stock import StockRig, rebuild_conf, work_mode_of
from minerd.devices.target import RigTarget
from minerd.errors import CommandRejected, DeviceTimeout
from minerd.model import ControlMode, RigAction, RigCommand, RigProtocol, RigState
from minerd.profiles import load_rig_model
from minerd.sim.family_base import FamilyListeners
from minerd.sim.fleet import RigFleet
from minerd.sim.stock_web import StockWebListeners, low_power_w
from minerd.transports.http_digest import (
    Challenge,
    DigestClient,
    digest_authorization,
    parse_challenge,
)

FIX = FIRMWARE_DIR / "stock-cgi"
S19 = "c001-r001"
S21 = "c001-r002"


def _fixture(name: str) -> Any:
    return json.loads((FIX / name).read_text())


# ---------------------------------------------------------------- parsers (fixtures)


def test_rebuilt_conf_is_the_documented_write_body() -> None:
    body = rebuild_conf(_fixture("get_miner_conf.json"), 1)
    assert body == _fixture("set_miner_conf.request.json")
    assert body["miner-mode"] == 1 and isinstance(body["miner-mode"], int)


def test_work_mode_is_read_as_the_string_the_firmware_shows() -> None:
    assert work_mode_of(_fixture("get_miner_conf.json")) == 0
    assert work_mode_of(_fixture("get_miner_conf_sleep.json")) == 1
    assert work_mode_of(_fixture("get_miner_conf_unset.json")) is None  # "" seen in the field


def test_digest_challenge_and_answer() -> None:
    text = (FIX / "unauthorized.http").read_text()
    header = next(
        line.split(":", 1)[1] for line in text.splitlines() if line.startswith("WWW-Authenticate")
    )
    ch = parse_challenge(header)
    assert ch is not None and ch.realm == "antMiner Configuration" and ch.qop == "auth"
    # RFC 2617 section 3.5 worked example
    rfc = Challenge(
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth",
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
    )
    value = digest_authorization(
        rfc, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", 1, "0a4f113b"
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in value and "nc=00000001" in value
    assert parse_challenge('Basic realm="x"') is None


# ---------------------------------------------------------------- against the simulator


class Site:
    def __init__(self, fleet: RigFleet, web: StockWebListeners, clock: ManualClock) -> None:
        self.fleet, self.web, self.clock = fleet, web, clock

    def rig(self, rig_id: str, password: str = "root", steps: tuple[float, ...] = ()) -> StockRig:
        sim = self.fleet.rig(rig_id)
        model = load_rig_model(sim.model.name)
        if steps:  # a [firmware.stock] table that lists low power as a step
            tables = tuple(
                replace(r, power_steps_w=steps, modes=r.modes | {ControlMode.PROFILES})
                if r.family is RigProtocol.STOCK
                else r
                for r in model.firmware
            )
            model = replace(model, firmware=tables)
        port = self.web.port_of(rig_id)
        assert port is not None
        target = RigTarget(
            rig_id=rig_id,
            host=sim.plan.host,
            port=self.fleet.port_of(sim),
            model=model.for_family(RigProtocol.STOCK),
            timeout_s=3.0,
            password=password,
            web_port=port,
            clock=self.clock,
        )
        return StockRig(target)


@pytest_asyncio.fixture
async def site() -> AsyncIterator[Site]:
    def servers(clock: ManualClock) -> dict[RigProtocol, FamilyListeners]:
        return {RigProtocol.STOCK: StockWebListeners(clock, reply_delay_s=0.05, restart_down_s=2.0)}

    async with manual_fleet(stock_pair(138), family=servers) as fleet:
        web = fleet.family_listeners[RigProtocol.STOCK]
        assert isinstance(web, StockWebListeners)
        yield Site(fleet, web, manual_clock(fleet))


async def _settle(site: Site, rig: StockRig, seconds: float) -> None:
    """Let the family's time pass on the shared clock (sim ramp and driver read-back)."""
    site.clock.advance(seconds)


@pytest.mark.asyncio
async def test_sleep_then_wake_verified_by_the_next_reads(site: Site) -> None:
    rig = site.rig(S19)
    try:
        before = await rig.read(site.clock.now_s())
        assert before.state is RigState.HASHING
        await rig.apply(RigCommand(S19, RigAction.SLEEP))
        assert site.web.writes == 1 and not site.fleet.rig(S19).awake
        await _settle(site, rig, rig.model.sleep_time_s + 1)
        asleep = await rig.read(site.clock.now_s())
        assert asleep.state is RigState.SLEEPING
        assert rig.conf_mode == 1  # read back from get_miner_conf once the sleep time passed

        await rig.apply(RigCommand(S19, RigAction.WAKE))
        await _settle(site, rig, rig.model.wake_time_s + 1)
        awake = await rig.read(site.clock.now_s())
        assert awake.state is RigState.HASHING and rig.conf_mode == 0
        assert awake.reason == ""
        # one challenge for two GET+POST pairs and two read-backs: the nonce is reused
        assert rig.web.challenges == 1
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_s21_reports_its_power(site: Site) -> None:
    rig = site.rig(S21)
    reading = await rig.read(site.clock.now_s())
    truth = site.fleet.rig(S21).truth(site.clock.now_s())
    assert not reading.power_estimated
    assert reading.power_w == pytest.approx(float(str(truth["power_w"])), abs=1.0)


@pytest.mark.asyncio
async def test_low_power_step_when_the_profile_lists_one(site: Site) -> None:
    rig = site.rig(S19, steps=(2300.0, 3068.0))
    try:
        await rig.apply(RigCommand(S19, RigAction.SET_POWER, power_w=2500.0))
        assert site.web.work_mode(S19) == "3"
        sim = site.fleet.rig(S19)
        assert sim.power_limit_w == low_power_w(sim) < sim.model.nominal_power_w
        await rig.apply(RigCommand(S19, RigAction.SET_POWER, power_w=3068.0))
        assert site.web.work_mode(S19) == "0" and site.fleet.rig(S19).power_limit_w is None
    finally:
        await rig.aclose()
    plain = site.rig(S19)  # the shipped table has no steps: a clear refusal, nothing sent
    with pytest.raises(CommandRejected, match="no power steps"):
        await plain.apply(RigCommand(S19, RigAction.SET_POWER, power_w=2500.0))
    assert site.web.writes == 2


@pytest.mark.asyncio
async def test_wrong_password_is_a_clear_error(site: Site) -> None:
    rig = site.rig(S19, password="not-the-password")
    with pytest.raises(CommandRejected) as err:
        await rig.apply(RigCommand(S19, RigAction.SLEEP))
    text = str(err.value)
    assert "login refused" in text and S19 in text and "get_miner_conf.cgi" in text
    assert "not-the-password" not in text and "not-the-password" not in repr(rig.web)
    assert site.web.writes == 0 and site.fleet.rig(S19).awake


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("ignores_sleep", "firmware ignores sleep"),
        ("ignores_commands", "not taken: config shows 0"),
    ],
)
async def test_rig_that_answers_ok_and_keeps_hashing_is_seen(
    site: Site, fault: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    await site.fleet.inject(S19, fault)
    rig = site.rig(S19)
    await rig.apply(RigCommand(S19, RigAction.SLEEP))  # M000 OK
    await _settle(site, rig, rig.model.sleep_time_s + 1)
    with caplog.at_level(logging.WARNING):
        reading = await rig.read(site.clock.now_s())
    assert reading.state is RigState.HASHING  # the intent book counts it disobeying
    assert problem in reading.reason
    assert any(problem in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_hung_rig_times_out(site: Site) -> None:
    await site.fleet.inject(S19, "hung")
    rig = site.rig(S19)
    rig.web.timeout_s = 0.5  # the profile's 40 s, shortened for the test
    with pytest.raises(DeviceTimeout) as err:
        await rig.apply(RigCommand(S19, RigAction.SLEEP))
    assert S19 in str(err.value) and "get_miner_conf.cgi" in str(err.value)


@pytest.mark.asyncio
async def test_slow_reply_is_left_to_a_watcher(site: Site) -> None:
    site.web.reply_delay_s = 30.0  # wall seconds here: longer than the test runs
    rig = site.rig(S19)
    rig.ack_window_s = 0.2
    try:
        await rig.apply(RigCommand(S19, RigAction.SLEEP))  # returns without the M000
        assert not site.fleet.rig(S19).awake
        assert rig._watch is not None and not rig._watch.done()
    finally:
        await rig.aclose()
    assert rig._watch is None


@pytest.mark.asyncio
async def test_digest_client_renews_an_expired_nonce(site: Site) -> None:
    sim = site.fleet.rig(S19)
    port = site.web.port_of(S19)
    assert port is not None
    client = DigestClient(sim.plan.host, port, device=S19, username="root", password="root")
    assert isinstance(await client.get_json("/cgi-bin/get_system_info.cgi"), dict)
    site.clock.advance(400.0)  # past the simulated nonce life
    assert isinstance(await client.get_json("/cgi-bin/get_system_info.cgi"), dict)
    assert client.challenges == 2


@pytest.mark.asyncio
async def test_late_reply_is_logged_when_refused(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    rig = site.rig(S19)
    rig._check_reply(_fixture("set_miner_conf.json"))  # M000: accepted, nothing raised
    refused = rig._check_reply
    with pytest.raises(CommandRejected, match="set_miner_conf refused") as err:
        refused({"stats": "error", "code": "M001", "msg": "Invalid JSON"})
    assert err.value.device == S19

    async def late_refusal() -> object:
        return {"stats": "error", "code": "M001", "msg": "Invalid JSON"}

    with caplog.at_level(logging.WARNING):
        await rig._watch_reply(asyncio.ensure_future(late_refusal()), 1)
    assert any("work mode 1 write" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_a_cancelled_close_stays_cancelled(site: Site) -> None:
    site.web.reply_delay_s = 30.0  # wall seconds here: the watcher is still waiting
    rig = site.rig(S19)
    rig.ack_window_s = 0.2
    await rig.apply(RigCommand(S19, RigAction.SLEEP))
    assert rig._watch is not None
    closing = asyncio.create_task(rig.aclose())
    await asyncio.sleep(0)  # aclose now waits for the cancelled watcher
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert closing.cancelled() and rig._watch is None


@pytest.mark.asyncio
async def test_a_hung_config_read_back_still_gives_the_reading_within_the_poll_limit(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = site.rig(S19)
    rig.target = replace(rig.target, timeout_s=5.0)  # the poller's limit below
    try:
        await rig.apply(RigCommand(S19, RigAction.SLEEP))
        await _settle(site, rig, rig.model.sleep_time_s + 1)

        async def hung(*_: object, **__: object) -> object:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        monkeypatch.setattr(rig.web, "_authenticated", hung)  # the CGI takes it, never answers
        async with asyncio.timeout(rig.target.timeout_s):  # the poller's limit on a read
            reading = await rig.read(site.clock.now_s())
        assert reading.state is RigState.SLEEPING
        assert rig.conf_mode is None  # not verified: the next read tries again
    finally:
        await rig.aclose()
