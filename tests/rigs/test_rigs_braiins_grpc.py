"""The Braiins OS+ driver against the simulated rig over real loopback sockets: 4028 for
hashrate, gRPC bos.v1 for power, login, pause/resume and the power target."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sim_fleet import manual_fleet

from minerd.clock import ManualClock
from minerd.devices.rig_braiins import SET_QUICK_RAMPING, BraiinsRig
from minerd.devices.target import RigTarget
from minerd.errors import CommandRejected, DeviceError, DeviceTimeout, DeviceUnreachable
from minerd.model import RigAction, RigCommand, RigModel, RigProtocol, RigState
from minerd.profiles import load_rig_model
from minerd.sim.braiins_grpc import TOKEN_TIMEOUT_S, BraiinsListeners
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec, plan_rigs

RIG = "c001-r001"
MODEL = "bitmain-s19jpro"
PASSWORD = "root"  # the simulator's Braiins login (family_base.SIM_LOGINS)


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(
        groups=(RigGroupSpec(MODEL, 1, RigProtocol.BRAIINS),),
        rig_port=0,
        grpc_port=0,
        base_octet=113,
    )
    async with manual_fleet(spec, start_s=1_764_400_000.0, warm_up_s=600) as f:  # past warm-up
        yield f


def _model(command_timeout_s: float | None = None) -> RigModel:
    model = load_rig_model(MODEL).for_family(RigProtocol.BRAIINS)
    if command_timeout_s is None:
        return model
    firmware = tuple(
        dataclasses.replace(r, command_timeout_s=command_timeout_s)
        if r.family is RigProtocol.BRAIINS
        else r
        for r in model.firmware
    )
    return dataclasses.replace(model, firmware=firmware)


def _rig(
    fleet: RigFleet,
    password: str = PASSWORD,
    *,
    timeout_s: float = 5.0,
    command_s: float | None = None,
) -> BraiinsRig:
    sim = fleet.rigs[RIG]
    grpc_port = fleet.family_port_of(RIG)
    assert grpc_port
    return BraiinsRig(
        RigTarget(
            rig_id=RIG,
            host=sim.plan.host,
            port=fleet.port_of(sim),
            model=_model(command_s),
            timeout_s=timeout_s,
            password=password,
            grpc_port=grpc_port,
            clock=fleet.clock,
        )
    )


def _server(fleet: RigFleet) -> BraiinsListeners:
    listeners = fleet.family_listeners[RigProtocol.BRAIINS]
    assert isinstance(listeners, BraiinsListeners)
    return listeners


def _advance(fleet: RigFleet, seconds: float) -> float:
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds)
    return clock.now_s()


@pytest.mark.asyncio
async def test_read_joins_4028_hashrate_with_grpc_power(fleet: RigFleet) -> None:
    rig = _rig(fleet)
    try:
        now_s = fleet.clock.now_s()
        reading = await rig.read(now_s)
        truth = fleet.rigs[RIG].view(now_s)
        assert reading.state is RigState.HASHING, reading.reason
        assert reading.hashrate_ths == pytest.approx(truth.hashrate_ths, rel=1e-3)
        assert reading.power_estimated is False
        assert reading.power_w == pytest.approx(truth.power_w, abs=1.0)  # uint64 watts
        assert reading.power_limit_w == rig.model.nominal_power_w
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_sleep_then_wake_with_one_login_and_quick_ramping_once(fleet: RigFleet) -> None:
    rig = _rig(fleet)
    sim = fleet.rigs[RIG]
    server = _server(fleet).servers[RIG]
    reaction = rig.model.reaction(RigProtocol.BRAIINS)
    try:
        await rig.apply(RigCommand(RIG, RigAction.SLEEP))
        assert sim.awake is False
        now_s = _advance(fleet, reaction.sleep_time_s + 1)
        reading = await rig.read(now_s)
        assert reading.state is RigState.SLEEPING
        assert reading.power_w == pytest.approx(sim.view(now_s).power_w, abs=1.0)
        assert reading.power_w < rig.model.min_power_w

        await rig.apply(RigCommand(RIG, RigAction.WAKE))
        assert sim.awake is True
        reading = await rig.read(_advance(fleet, reaction.wake_time_s + 1))
        assert reading.state is RigState.HASHING
        # one token for every call; quick ramping sent once, with the profile's times
        assert (server.logins, rig.grpc.logins) == (1, 1)
        assert (server.ramping.up_s, server.ramping.down_s) == (
            round(reaction.wake_time_s),
            round(reaction.sleep_time_s),
        )
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_power_target_is_sent_and_the_next_read_shows_it(fleet: RigFleet) -> None:
    rig = _rig(fleet)
    target_w = rig.model.min_power_w + 300
    try:
        await rig.apply(RigCommand(RIG, RigAction.SET_POWER, power_w=target_w))
        assert fleet.rigs[RIG].power_limit_w == target_w
        now_s = _advance(fleet, 120)
        reading = await rig.read(now_s)
        assert reading.power_limit_w == target_w
        assert reading.power_w == pytest.approx(fleet.rigs[RIG].view(now_s).power_w, abs=1.0)
        assert reading.power_w < rig.model.nominal_power_w
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_a_refused_login_is_a_clear_error_without_the_password(fleet: RigFleet) -> None:
    rig = _rig(fleet, password="wrong-secret")
    try:
        with pytest.raises(CommandRejected, match="login as 'root' refused") as info:
            await rig.apply(RigCommand(RIG, RigAction.SLEEP))
        assert info.value.device == RIG
        assert info.value.endpoint == rig.grpc_endpoint
        assert "wrong-secret" not in str(info.value)
        assert fleet.rigs[RIG].awake is True
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_an_expired_or_forgotten_token_is_renewed(fleet: RigFleet) -> None:
    rig = _rig(fleet)
    server = _server(fleet).servers[RIG]
    try:
        await rig.apply(RigCommand(RIG, RigAction.SLEEP))
        server.tokens.clear()  # the rig restarted: it knows no token
        await rig.apply(RigCommand(RIG, RigAction.WAKE))
        assert fleet.rigs[RIG].awake is True
        assert rig.grpc.logins == 2
        _advance(fleet, TOKEN_TIMEOUT_S + 10)  # idle past the token's life
        await rig.apply(RigCommand(RIG, RigAction.SLEEP))
        assert fleet.rigs[RIG].awake is False
        assert rig.grpc.logins == 3
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_a_rig_that_ignores_commands_is_seen_by_the_next_read(fleet: RigFleet) -> None:
    rig = _rig(fleet)
    try:
        await fleet.inject(RIG, "ignores_commands")
        await rig.apply(RigCommand(RIG, RigAction.SLEEP))  # the firmware says yes
        reading = await rig.read(_advance(fleet, 60))
        assert reading.state is RigState.HASHING  # ...and keeps hashing
        assert reading.power_w > rig.model.min_power_w
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_a_hung_rig_times_out_instead_of_hanging(fleet: RigFleet) -> None:
    rig = _rig(fleet, timeout_s=0.5, command_s=0.5)
    try:
        await fleet.inject(RIG, "hung")
        with pytest.raises(DeviceTimeout) as info:
            await rig.apply(RigCommand(RIG, RigAction.SLEEP))
        assert info.value.device == RIG
        with pytest.raises(DeviceError):
            await rig.read(fleet.clock.now_s())
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_grpc_down_keeps_the_4028_reading_with_estimated_power(
    fleet: RigFleet, caplog: pytest.LogCaptureFixture
) -> None:
    rig = _rig(fleet)
    try:
        _server(fleet).close(RIG)
        await _server(fleet).close_all()
        caplog.set_level(logging.DEBUG, logger="minerd.devices.rig_braiins")
        for _ in range(3):
            reading = await rig.read(fleet.clock.now_s())
            assert reading.state is RigState.HASHING
            assert reading.power_estimated is True
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once when it starts, not every poll
        assert "root" not in caplog.text  # no secret (the sim's password) in any line
        with pytest.raises(DeviceError) as info:
            await rig.apply(RigCommand(RIG, RigAction.SLEEP))
        assert info.value.endpoint == rig.grpc_endpoint
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_a_rig_back_from_offline_is_commanded_at_once() -> None:
    # A fixed gRPC port (on the rig's own loopback address), so the listener comes back
    # where the driver looks for it.
    spec = SiteSpec(
        groups=(RigGroupSpec(MODEL, 1, RigProtocol.BRAIINS),),
        rig_port=0,
        grpc_port=50051,
        base_octet=119,
    )
    f = RigFleet(plan_rigs(spec), ManualClock(1_764_400_000.0))
    await f.start()
    rig = _rig(f)
    try:
        await rig.apply(RigCommand(RIG, RigAction.SET_POWER, power_w=3000))
        await f.inject(RIG, "offline")
        with pytest.raises(DeviceUnreachable) as info:
            await rig.apply(RigCommand(RIG, RigAction.SLEEP))
        assert info.value.endpoint == rig.grpc_endpoint
        await f.clear(RIG)
        await rig.apply(RigCommand(RIG, RigAction.SLEEP))  # no reconnect backoff to wait out
        assert f.rigs[RIG].awake is False
    finally:
        await rig.aclose()
        await f.close()


@pytest.mark.asyncio
async def test_a_slow_rig_is_waited_for_within_the_command_timeout(fleet: RigFleet) -> None:
    await fleet.inject(RIG, "slow")  # every gRPC answer comes SLOW_REPLY_S (2 s) late
    patient = _rig(fleet, timeout_s=30.0, command_s=30.0)
    hasty = _rig(fleet, timeout_s=0.2, command_s=0.2)
    try:
        await patient.apply(RigCommand(RIG, RigAction.SLEEP))
        assert fleet.rigs[RIG].awake is False
        with pytest.raises(DeviceTimeout):
            await hasty.apply(RigCommand(RIG, RigAction.WAKE))
    finally:
        await patient.aclose()
        await hasty.aclose()


@pytest.mark.asyncio
async def test_quick_ramping_failing_never_stops_the_pause(
    fleet: RigFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = _rig(fleet)
    real_call = rig.grpc.call
    ramping_tries: list[float | None] = []

    async def call(path: str, request: bytes, **kw: Any) -> bytes:
        if path == SET_QUICK_RAMPING:
            ramping_tries.append(kw.get("timeout_s"))
            raise DeviceTimeout(RIG, rig.grpc_endpoint, "SetQuickRamping: no answer")
        return await real_call(path, request, **kw)

    monkeypatch.setattr(rig.grpc, "call", call)
    try:
        await rig.apply(RigCommand(RIG, RigAction.SLEEP))  # the shed goes out regardless
        assert fleet.rigs[RIG].awake is False
        await rig.apply(RigCommand(RIG, RigAction.WAKE))  # and ramping is tried again
        assert fleet.rigs[RIG].awake is True
        # each try under a read's time limit, not the command's
        assert ramping_tries == [rig.target.timeout_s, rig.target.timeout_s]
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_a_hung_grpc_api_still_gives_the_4028_reading_within_the_poll_limit(
    fleet: RigFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = _rig(fleet, timeout_s=5.0, command_s=60.0)

    async def hung(*_: object) -> bytes:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(rig.grpc, "_call", hung)  # connected, never answers
    try:
        async with asyncio.timeout(rig.target.timeout_s):  # the poller's limit on a read
            reading = await rig.read(fleet.clock.now_s())
        assert reading.state is RigState.HASHING
        assert reading.power_estimated is True
    finally:
        await rig.aclose()
