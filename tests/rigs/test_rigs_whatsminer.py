"""The Whatsminer driver: its parser against the fixtures, and its control over real loopback
sockets against the simulated rig (API v3 on the family port, API v2 privileged on 4028).
apply() only sends; each test reads the rig afterwards to see what it did."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from firmware_fixtures import load
from sim_fleet import manual_fleet

from minerd.clock import ManualClock
from minerd.devices.rig_whatsminer import (
    WhatsminerRig,
    parse_boards,
    power_percent,
    whatsminer_reading,
)
from minerd.devices.target import RigTarget
from minerd.errors import CommandRejected, DeviceTimeout, ProtocolError
from minerd.model import RigAction, RigCommand, RigModel, RigProtocol, RigState
from minerd.profiles import load_rig_model
from minerd.sim import whatsminer_api
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec
from minerd.transports.whatsminer import V2Client

RIG = "c001-r001"
MODEL = "microbt-m50s"
PASSWORD = "super"  # the simulator's login (firmware default)


def model() -> RigModel:
    return load_rig_model(MODEL).for_family(RigProtocol.WHATSMINER)


# ---------------------------------------------------------------- parser (fixtures)


def test_reading_from_fixture_summary_and_devs() -> None:
    m = model()
    summary = load("whatsminer-m50s-v2", "summary")
    devs = load("whatsminer-m50s-v2", "devs")
    r = whatsminer_reading(RIG, 0.0, m, summary, devs)
    s = summary["SUMMARY"][0]
    assert r.state is RigState.HASHING, r.reason
    assert r.hashrate_ths == pytest.approx(s["MHS 5s"] / 1e6, rel=0.01)  # MH/s -> TH/s
    assert r.power_w == s["Power"] and not r.power_estimated
    assert r.power_limit_w == s["Power Limit"]
    assert (r.boards_ok, r.boards_total) == (3, 3)


def test_a_dead_board_in_devs_is_a_fault() -> None:
    devs = copy.deepcopy(load("whatsminer-m50s-v2", "devs"))
    board = devs["DEVS"][2]
    board.update({"Status": "Dead", "MHS av": 0.0, "MHS 5s": 0.0, "MHS 1m": 0.0})
    assert parse_boards(devs) == (3, 2)
    r = whatsminer_reading(RIG, 0.0, model(), load("whatsminer-m50s-v2", "summary"), devs)
    assert r.state is RigState.FAULT and "dead board: 1 of 3" in r.reason
    assert (r.boards_ok, r.boards_total) == (2, 3)


def test_power_percent_is_of_nominal_and_never_under_the_floor() -> None:
    m = model()
    assert power_percent(m, m.nominal_power_w) == 100
    assert power_percent(m, m.nominal_power_w * 2) == 100
    assert power_percent(m, m.nominal_power_w * 0.8) == 80
    assert power_percent(m, 0.0) * m.nominal_power_w / 100 >= m.min_power_w


# ---------------------------------------------------------------- against the simulator


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(
        groups=(RigGroupSpec(MODEL, 1, RigProtocol.WHATSMINER),),
        rig_port=0,
        base_octet=179,
        whatsminer_api_port=0,
    )
    async with manual_fleet(spec, start_s=1_764_400_000.0, warm_up_s=600) as f:  # past warm-up
        yield f


def driver(
    fleet: RigFleet, *, api: str, password: str = PASSWORD, m: RigModel | None = None
) -> WhatsminerRig:
    rig = fleet.rigs[RIG]
    # v2: nothing answers API v3 on the port given, so the driver falls back to v2
    v3_port = fleet.family_port_of(RIG) if api == "v3" else _closed_port(rig.plan.host)
    assert v3_port
    target = RigTarget(
        rig_id=RIG,
        host=rig.plan.host,
        port=fleet.port_of(rig),
        model=m or model(),
        timeout_s=5.0,
        password=password,
        api_port=v3_port,
        clock=fleet.clock,
    )
    return WhatsminerRig(target)


def _closed_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def settle(fleet: RigFleet, seconds: float = 400.0) -> None:
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds)  # past the family's sleep/wake time


@pytest.mark.asyncio
@pytest.mark.parametrize("api", ["v3", "v2"])
async def test_sleep_wake_and_power_step(fleet: RigFleet, api: str) -> None:
    d = driver(fleet, api=api)
    m = d.model
    await d.apply(RigCommand(RIG, RigAction.SLEEP))
    assert d.api == api
    await settle(fleet)
    r = await d.read(fleet.clock.now_s())
    assert r.state is RigState.SLEEPING and r.power_w <= m.sleep_power_w * 1.5, r
    await d.apply(RigCommand(RIG, RigAction.WAKE))
    await settle(fleet)
    r = await d.read(fleet.clock.now_s())
    assert r.state is RigState.HASHING and r.power_w >= m.nominal_power_w * 0.97, r
    await d.apply(RigCommand(RIG, RigAction.SET_POWER, power_w=m.nominal_power_w * 0.75))
    await settle(fleet)
    r = await d.read(fleet.clock.now_s())
    assert r.state is RigState.HASHING
    assert r.power_w == pytest.approx(m.nominal_power_w * 0.75, rel=0.02)
    assert r.power_limit_w == pytest.approx(m.nominal_power_w * 0.75, rel=0.01)
    if api == "v2":
        assert d.v2.tokens_fetched == 1  # one token for all three commands


@pytest.mark.asyncio
@pytest.mark.parametrize("api", ["v3", "v2"])
async def test_wrong_password_is_a_clear_rejection(fleet: RigFleet, api: str) -> None:
    d = driver(fleet, api=api, password="hunter2-wrong")
    with pytest.raises(CommandRejected) as info:
        await d.apply(RigCommand(RIG, RigAction.SLEEP))
    err = info.value
    assert err.device == RIG and "hunter2" not in str(err)
    if api == "v2":
        assert err.code == 135 and "wrong admin password" in str(err)
    else:
        assert "set.miner.service" in str(err) and err.endpoint.endswith(str(d.v3.port))
    assert fleet.rigs[RIG].awake


@pytest.mark.asyncio
async def test_no_password_is_refused_locally(fleet: RigFleet) -> None:
    d = driver(fleet, api="v3", password="")
    with pytest.raises(CommandRejected, match="no admin password configured"):
        await d.apply(RigCommand(RIG, RigAction.SLEEP))


@pytest.mark.asyncio
@pytest.mark.parametrize("api", ["v3", "v2"])
async def test_ignores_commands_shows_in_the_next_read(fleet: RigFleet, api: str) -> None:
    await fleet.inject(RIG, "ignores_commands")
    d = driver(fleet, api=api)
    await d.apply(RigCommand(RIG, RigAction.SLEEP))  # the rig says OK...
    await settle(fleet)
    r = await d.read(fleet.clock.now_s())
    assert r.state is RigState.HASHING and r.power_w > d.model.nominal_power_w * 0.9


@pytest.mark.asyncio
async def test_dead_board_is_seen_through_devs(fleet: RigFleet) -> None:
    await fleet.inject(RIG, "dead_board")
    d = driver(fleet, api="v3")
    await settle(fleet)
    r = await d.read(fleet.clock.now_s())
    assert r.state is RigState.FAULT and "dead board: 1 of 3" in r.reason
    assert (r.boards_ok, r.boards_total) == (2, 3)


@pytest.mark.asyncio
@pytest.mark.parametrize("api", ["v3", "v2"])
async def test_hung_rig_times_out_with_an_error(fleet: RigFleet, api: str) -> None:
    m = model()
    quick = tuple(
        dataclasses.replace(r, command_timeout_s=1.0) if r.family is RigProtocol.WHATSMINER else r
        for r in m.firmware
    )
    d = driver(fleet, api=api, m=dataclasses.replace(m, firmware=quick))
    if api == "v3":
        await d.v3.salt()  # the rig hangs after minerd chose v3
        d.api = "v3"
    await fleet.inject(RIG, "hung")
    with pytest.raises(DeviceTimeout) as info:
        await d.apply(RigCommand(RIG, RigAction.SLEEP))
    assert info.value.device == RIG and "within 1s" in str(info.value)


@pytest.mark.asyncio
async def test_v2_token_is_reused_then_renewed_before_it_expires(fleet: RigFleet) -> None:
    d = driver(fleet, api="v2")
    await d.apply(RigCommand(RIG, RigAction.WAKE))
    await d.apply(RigCommand(RIG, RigAction.WAKE))
    assert d.v2.tokens_fetched == 1
    await settle(fleet, 26 * 60.0)  # past 25 of the token's 30 minutes
    await d.apply(RigCommand(RIG, RigAction.WAKE))
    assert d.v2.tokens_fetched == 2


@pytest.mark.asyncio
async def test_v2_token_the_rig_forgot_is_replaced_within_the_same_apply(fleet: RigFleet) -> None:
    d = driver(fleet, api="v2")
    await d.apply(RigCommand(RIG, RigAction.WAKE))
    whatsminer_api.state(fleet.rigs[RIG]).tokens.clear()  # the rig rebooted
    await d.apply(RigCommand(RIG, RigAction.SLEEP))  # 135, fresh token, sent again
    assert d.v2.tokens_fetched == 2 and not fleet.rigs[RIG].awake


@pytest.mark.asyncio
async def test_write_not_enabled_is_named_in_the_error() -> None:
    """A rig with write permission off answers every privileged frame with a plain code 45
    (fixture v2_privileged_write_denied); the error says what to enable on the rig."""
    token = json.dumps(load("whatsminer-api", "v2_get_token")).encode() + b"\x00"
    denied = json.dumps(load("whatsminer-api", "v2_privileged_write_denied")).encode() + b"\x00"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read(65536)
        writer.write(denied if b'"enc"' in request else token)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = V2Client(RIG, "127.0.0.1", port, PASSWORD, ManualClock(0.0).monotonic_s, 5.0)
        with pytest.raises(CommandRejected) as info:
            await client.command("power_off", respbefore="true")
    finally:
        server.close()
        await server.wait_closed()
    assert info.value.code == 45 and "write API not enabled" in str(info.value)


@pytest.mark.asyncio
async def test_a_v3_port_that_never_answers_falls_back_to_v2(fleet: RigFleet) -> None:
    """A port that takes the connection and says nothing (a firewall, another service) is
    not API v3: the sleep goes out over v2, after at most the read time limit."""
    rig = fleet.rigs[RIG]

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(silent, rig.plan.host, 0)
    try:
        target = RigTarget(
            rig_id=RIG,
            host=rig.plan.host,
            port=fleet.port_of(rig),
            model=model(),
            timeout_s=0.5,
            password=PASSWORD,
            api_port=int(server.sockets[0].getsockname()[1]),
            clock=fleet.clock,
        )
        d = WhatsminerRig(target)
        await d.apply(RigCommand(RIG, RigAction.SLEEP))
        assert d.api == "v2" and not rig.awake
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_a_v2_reply_that_never_ends_is_cut_at_its_bound() -> None:
    hold = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"x" * (2 * 1024 * 1024))  # no NUL, no close
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            await hold.wait()
        writer.close()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = V2Client(RIG, "127.0.0.1", port, PASSWORD, ManualClock(0.0).monotonic_s, 30.0)
        with pytest.raises(ProtocolError, match="over 1 MiB"):
            await client.token()
    finally:
        hold.set()
        server.close()
        await server.wait_closed()
