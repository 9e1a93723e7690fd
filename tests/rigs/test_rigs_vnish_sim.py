"""The Vnish driver against the simulated rig over real loopback sockets (4028 + REST):
reads power and preset from REST, sleeps, wakes, moves between presets; a wrong password is a
clear error, a rig that ignores commands is seen not to obey by the next read, and a hung
rig gives a timeout error, not a hang. Sim time is a ManualClock moved by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio
from sim_fleet import manual_clock, manual_fleet

from minerd.devices.registry import build_rig
from minerd.devices.rig_vnish import VnishRig
from minerd.devices.target import RigTarget
from minerd.errors import CommandRejected, DeviceTimeout
from minerd.model import RigAction, RigCommand, RigProtocol, RigState
from minerd.profiles import load_rig_model
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec
from minerd.sim.vnish_web import VnishWebListeners

MODEL = "bitmain-s19jpro"
PLAIN, WRAPPED = "c001-r001", "c001-r002"  # presets as a plain array / wrapped
SETTLE_S = 120.0  # sim seconds: past the family's sleep (15 s) and wake (30 s) ramps


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(
        groups=(RigGroupSpec(MODEL, 2, RigProtocol.VNISH),),
        rig_port=0,
        web_port=0,
        base_octet=172,
    )
    async with manual_fleet(spec, start_s=1_764_400_000.0) as f:
        yield f


def _target(
    fleet: RigFleet, rig_id: str, password: str = "admin", command_timeout_s: float = 10.0
) -> RigTarget:
    rig = fleet.rigs[rig_id]
    model = load_rig_model(MODEL)
    reactions = tuple(
        replace(r, command_timeout_s=command_timeout_s) if r.family is RigProtocol.VNISH else r
        for r in model.firmware
    )
    model = replace(model, firmware=reactions).for_family(RigProtocol.VNISH)
    return RigTarget(
        rig_id=rig_id,
        host=rig.plan.host,
        port=fleet.port_of(rig),
        model=model,
        timeout_s=2.0,
        password=password,
        web_port=fleet.family_port_of(rig_id) or 0,
        clock=fleet.clock,
    )


@pytest_asyncio.fixture
async def driver(fleet: RigFleet) -> AsyncIterator[VnishRig]:
    rig = build_rig(RigProtocol.VNISH, _target(fleet, PLAIN))
    assert isinstance(rig, VnishRig)
    yield rig
    await rig.aclose()


async def _settled_read(fleet: RigFleet, rig: VnishRig) -> tuple[float, float]:
    """(reading power, true power) after the ramps settle."""
    clock = manual_clock(fleet)
    clock.advance(SETTLE_S)
    reading = await rig.read(clock.now_s())
    return reading.power_w, fleet.rigs[rig.rig_id].view(clock.now_s()).power_w


@pytest.mark.asyncio
async def test_read_takes_power_and_preset_from_rest(fleet: RigFleet, driver: VnishRig) -> None:
    clock = manual_clock(fleet)
    clock.advance(SETTLE_S)
    now_s = clock.now_s()
    reading = await driver.read(now_s)
    view = fleet.rigs[PLAIN].view(now_s)
    assert reading.state is RigState.HASHING, reading.reason
    assert not reading.power_estimated
    assert reading.power_w == pytest.approx(view.power_w, abs=1.0)  # power_consumption, W
    assert reading.hashrate_ths == pytest.approx(view.hashrate_ths, rel=1e-3)
    # preset "3068" is the model's "default" profile (same watts)
    assert (reading.profile, reading.power_limit_w) == ("default", 3068)


@pytest.mark.asyncio
async def test_sleep_and_wake(fleet: RigFleet, driver: VnishRig) -> None:
    clock = manual_clock(fleet)
    await driver.apply(RigCommand(PLAIN, RigAction.SLEEP))
    clock.advance(SETTLE_S)
    asleep = await driver.read(clock.now_s())
    assert asleep.state is RigState.SLEEPING, asleep.reason
    assert asleep.power_w == pytest.approx(driver.model.sleep_power_w, abs=5.0)
    assert not fleet.rigs[PLAIN].awake
    await driver.apply(RigCommand(PLAIN, RigAction.WAKE))
    clock.advance(SETTLE_S)
    awake = await driver.read(clock.now_s())
    assert awake.state is RigState.HASHING and awake.hashrate_ths > 90
    assert driver.web.unlocks == 1  # one token for both commands


@pytest.mark.asyncio
@pytest.mark.parametrize("rig_id", [PLAIN, WRAPPED])
async def test_power_moves_between_presets(fleet: RigFleet, rig_id: str) -> None:
    rig = build_rig(RigProtocol.VNISH, _target(fleet, rig_id))
    assert isinstance(rig, VnishRig)
    try:
        # 2900 W: the highest tuned preset at or below is 2700 (profile "-1")
        await rig.apply(RigCommand(rig_id, RigAction.SET_POWER, power_w=2900))
        power_w, true_w = await _settled_read(fleet, rig)
        reading = await rig.read(manual_clock(fleet).now_s())
        assert (reading.profile, reading.power_limit_w) == ("-1", 2700)
        assert power_w == pytest.approx(2700, abs=2.0) and true_w == pytest.approx(2700, abs=1)
        # the planner names model profiles: "-2" is 2300 W, preset "2300"
        await rig.apply(RigCommand(rig_id, RigAction.SET_PROFILE, profile="-2"))
        power_w, _ = await _settled_read(fleet, rig)
        assert power_w == pytest.approx(2300, abs=2.0)
        assert fleet.rigs[rig_id].power_limit_w == 2300
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_wrong_password_is_a_clear_error_and_reads_go_on(fleet: RigFleet) -> None:
    rig = build_rig(RigProtocol.VNISH, _target(fleet, PLAIN, password="s3cret-wrong"))
    try:
        with pytest.raises(CommandRejected, match="wrong password") as info:
            await rig.apply(RigCommand(PLAIN, RigAction.SLEEP))
        err = info.value
        assert err.device == PLAIN and err.endpoint.endswith("/api/v1/unlock")
        assert "s3cret-wrong" not in str(err)
        # backed off: no second unlock that could lock the rig (429) is tried at once
        with pytest.raises(CommandRejected, match="wrong password"):
            await rig.apply(RigCommand(PLAIN, RigAction.SLEEP))
        listeners = fleet.family_listeners[RigProtocol.VNISH]
        assert isinstance(listeners, VnishWebListeners)
        assert fleet.rigs[PLAIN].awake
        reading = await rig.read(manual_clock(fleet).now_s())  # reads need no token
        assert reading.state is RigState.HASHING and not reading.power_estimated
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_an_expired_token_is_renewed_once(fleet: RigFleet, driver: VnishRig) -> None:
    await driver.apply(RigCommand(PLAIN, RigAction.SLEEP))
    listeners = fleet.family_listeners[RigProtocol.VNISH]
    assert isinstance(listeners, VnishWebListeners)
    listeners.revoke_tokens(PLAIN)  # the rig rebooted
    await driver.apply(RigCommand(PLAIN, RigAction.WAKE))
    assert driver.web.unlocks == 2
    assert fleet.rigs[PLAIN].awake


@pytest.mark.asyncio
async def test_ignored_commands_show_in_the_next_read(fleet: RigFleet, driver: VnishRig) -> None:
    await fleet.inject(PLAIN, "ignores_commands")
    await driver.apply(RigCommand(PLAIN, RigAction.SLEEP))  # answered 200, as the rig does
    await driver.apply(RigCommand(PLAIN, RigAction.SET_POWER, power_w=2300))  # {false,false}
    manual_clock(fleet).advance(SETTLE_S)
    reading = await driver.read(manual_clock(fleet).now_s())
    assert reading.state is RigState.HASHING  # it did not sleep
    assert (reading.profile, reading.power_limit_w) == ("default", 3068)  # nor change preset
    assert reading.power_w == pytest.approx(3068, abs=2.0)


@pytest.mark.asyncio
async def test_a_hung_rig_times_out(fleet: RigFleet) -> None:
    rig = build_rig(RigProtocol.VNISH, _target(fleet, PLAIN, command_timeout_s=0.5))
    try:
        await fleet.inject(PLAIN, "hung")
        with pytest.raises(DeviceTimeout) as read_err:
            await rig.read(manual_clock(fleet).now_s())
        assert read_err.value.device == PLAIN
        with pytest.raises(DeviceTimeout) as cmd_err:
            await rig.apply(RigCommand(PLAIN, RigAction.SLEEP))
        assert cmd_err.value.device == PLAIN
        assert "/api/v1/" in cmd_err.value.endpoint
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_the_preset_is_reread_after_a_command_or_a_minute(
    fleet: RigFleet, driver: VnishRig
) -> None:
    listeners = fleet.family_listeners[RigProtocol.VNISH]
    assert isinstance(listeners, VnishWebListeners)
    clock = manual_clock(fleet)
    await driver.read(clock.now_s())
    before = listeners.replies(PLAIN)
    await driver.read(clock.now_s())
    assert listeners.replies(PLAIN) == before + 1  # summary only: the preset is known
    clock.advance(61.0)
    await driver.read(clock.now_s())
    assert listeners.replies(PLAIN) == before + 3  # summary and perf-summary
    # someone else (an operator, pyasic) changed the preset: seen within the minute
    fleet.rigs[PLAIN].command_power_limit(2300, clock.now_s())
    clock.advance(61.0)
    reading = await driver.read(clock.now_s())
    assert (reading.profile, reading.power_limit_w) == ("-2", 2300)


@pytest.mark.asyncio
async def test_a_read_the_build_protects_is_retried_with_a_token(
    fleet: RigFleet, driver: VnishRig
) -> None:
    # GET /settings needs a token on the simulated build; asked as an open read it is
    # answered after one unlock, and later asks send the token at once.
    settings = await driver.web.get("settings")
    assert isinstance(settings, dict) and "miner" in settings
    assert driver.web.unlocks == 1
    listeners = fleet.family_listeners[RigProtocol.VNISH]
    assert isinstance(listeners, VnishWebListeners)
    before = listeners.replies(PLAIN)
    await driver.web.get("settings")
    assert listeners.replies(PLAIN) == before + 1 and driver.web.unlocks == 1


@pytest.mark.asyncio
async def test_a_protected_read_without_a_password_says_what_is_missing(fleet: RigFleet) -> None:
    rig = build_rig(RigProtocol.VNISH, _target(fleet, PLAIN, password=""))
    assert isinstance(rig, VnishRig)
    try:
        with pytest.raises(CommandRejected, match="no password configured") as info:
            await rig.web.get("settings")
        assert info.value.code == 401 and rig.web.unlocks == 0
    finally:
        await rig.aclose()


@pytest.mark.asyncio
async def test_a_hung_rest_api_still_gives_the_4028_reading_within_the_poll_limit(
    fleet: RigFleet,
) -> None:
    rig = build_rig(RigProtocol.VNISH, replace(_target(fleet, PLAIN), timeout_s=5.0))
    assert isinstance(rig, VnishRig)

    async def hung(*_: object) -> object:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    rig.web._call = hung  # type: ignore[method-assign,assignment]  # connected, silent
    try:
        clock = manual_clock(fleet)
        clock.advance(SETTLE_S)
        async with asyncio.timeout(rig.target.timeout_s):  # the poller's limit on a read
            reading = await rig.read(clock.now_s())
        assert reading.state is RigState.HASHING
        assert reading.power_estimated is True
    finally:
        await rig.aclose()
