"""LuxOS and cgminer rig drivers reading and commanding simulated rigs over real TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sim_fleet import manual_clock, manual_fleet

from minerd.devices.rig import classify_failure
from minerd.devices.rig_luxos import CgminerRig, LuxosRig
from minerd.errors import CommandRejected, DeviceError, DeviceTimeout, DeviceUnreachable
from minerd.model import RigAction, RigCommand, RigProtocol, RigState
from minerd.profiles import load_rig_model
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec

MODEL = "bitmain-s19jpro"


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(
        groups=(
            RigGroupSpec(MODEL, 3, RigProtocol.LUXOS),
            RigGroupSpec(MODEL, 1, RigProtocol.CGMINER),
        ),
        rig_port=0,
        base_octet=41,
    )
    async with manual_fleet(spec) as f:
        yield f


def _rig(fleet: RigFleet, index: int, timeout_s: float = 3.0) -> LuxosRig:
    sim = list(fleet.rigs.values())[index]
    return LuxosRig(
        sim.rig_id,
        sim.plan.host,
        load_rig_model(MODEL),
        fleet.port_of(sim),
        timeout_s=timeout_s,
        clock=fleet.clock,  # the rig's session ages on the same clock as the simulator
    )


@pytest.mark.asyncio
async def test_read_hashing_rig(fleet: RigFleet) -> None:
    rig = _rig(fleet, 0)
    r = await rig.read(manual_clock(fleet).now_s())
    assert r.state is RigState.HASHING, r.reason
    assert r.hashrate_ths == pytest.approx(104.0, rel=0.02)
    assert r.power_w == pytest.approx(3068, rel=0.01)
    assert not r.power_estimated
    assert r.boards_ok == r.boards_total == 3
    assert r.profile == "default"
    assert r.chip_temp_max_c is not None and 40 < r.chip_temp_max_c < 95
    assert r.fan_rpm_min is not None and r.fan_rpm_min > 1000
    assert rig.client.batching  # LuxOS accepts the joined read


@pytest.mark.asyncio
async def test_sleep_then_wake_verified_by_reads(fleet: RigFleet) -> None:
    rig = _rig(fleet, 1)
    clock = manual_clock(fleet)
    await rig.apply(RigCommand(rig.rig_id, RigAction.SLEEP))
    clock.advance(30)
    r = await rig.read(clock.now_s())
    assert r.state is RigState.SLEEPING and r.reason == "asleep"
    assert r.power_w == pytest.approx(25, abs=5)
    assert r.hashrate_ths == 0
    await rig.apply(RigCommand(rig.rig_id, RigAction.WAKE))
    clock.advance(60)
    r = await rig.read(clock.now_s())
    assert r.state is RigState.HASHING
    assert r.power_w > 3000
    assert rig.logons == 1  # the session was reused


@pytest.mark.asyncio
async def test_profiles_and_power_target(fleet: RigFleet) -> None:
    rig = _rig(fleet, 2)
    clock = manual_clock(fleet)
    await rig.apply(RigCommand(rig.rig_id, RigAction.SET_PROFILE, profile="-2"))
    clock.advance(60)
    r = await rig.read(clock.now_s())
    assert r.profile == "-2" and r.power_w == pytest.approx(2300, rel=0.02)
    assert r.power_limit_w == 2300
    # 2800 W: the highest profile at or below is "-1" (2700 W)
    await rig.apply(RigCommand(rig.rig_id, RigAction.SET_POWER, power_w=2800))
    clock.advance(60)
    r = await rig.read(clock.now_s())
    assert r.profile == "-1" and r.power_w == pytest.approx(2700, rel=0.02)
    with pytest.raises(CommandRejected, match="unknown profile 'turbo'"):
        await rig.apply(RigCommand(rig.rig_id, RigAction.SET_PROFILE, profile="turbo"))


@pytest.mark.asyncio
async def test_expired_session_is_renewed(fleet: RigFleet) -> None:
    rig = _rig(fleet, 0)
    clock = manual_clock(fleet)
    await rig.apply(RigCommand(rig.rig_id, RigAction.SET_PROFILE, profile="+1"))
    clock.advance(120)  # the rig forgets the session after 60 s idle (sim time)
    await rig.apply(RigCommand(rig.rig_id, RigAction.SET_PROFILE, profile="default"))
    assert rig.logons == 2
    assert fleet.rig(rig.rig_id).profile == "default"
    await rig.aclose()
    # logoff freed the session: another client can log on at once
    other = _rig(fleet, 0)
    await other.apply(RigCommand(rig.rig_id, RigAction.WAKE))


@pytest.mark.asyncio
async def test_session_held_by_someone_else_is_shared_not_refused(fleet: RigFleet) -> None:
    # LuxOS allows one session; `session` names it, so the second client takes it.
    first, second = _rig(fleet, 1), _rig(fleet, 1)
    await first.apply(RigCommand(first.rig_id, RigAction.WAKE))
    await second.apply(RigCommand(second.rig_id, RigAction.SLEEP))
    assert second.logons == 0 and second.session_recoveries["adopted"] == 1
    assert not fleet.rig(second.rig_id).awake


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("overheat", "overheat"),
        ("dead_board", "dead board: 1 of 3"),
        ("fan_failure", "fan failure"),
    ],
)
async def test_faults_read_as_fault(fleet: RigFleet, fault: str, reason: str) -> None:
    rig = _rig(fleet, 0)
    clock = manual_clock(fleet)
    await fleet.inject(rig.rig_id, fault)
    clock.advance(30)
    r = await rig.read(clock.now_s())
    assert r.state is RigState.FAULT
    assert reason in r.reason


@pytest.mark.asyncio
async def test_offline_hung_and_broken_json(fleet: RigFleet) -> None:
    clock = manual_clock(fleet)
    rig0, rig1, rig2 = _rig(fleet, 0), _rig(fleet, 1, timeout_s=0.3), _rig(fleet, 2)
    await fleet.inject(rig0.rig_id, "offline")
    with pytest.raises(DeviceUnreachable) as info:
        await rig0.read(clock.now_s())
    assert info.value.endpoint == rig0.endpoint
    state, reason = classify_failure(info.value)
    assert state is RigState.OFFLINE and reason.startswith("offline:")

    await fleet.inject(rig1.rig_id, "hung")
    with pytest.raises(DeviceTimeout):
        await rig1.read(clock.now_s())

    # broken_json cycles through 4 breakages; 3 are repaired, truncation is an error
    await fleet.inject(rig2.rig_id, "broken_json")
    ok = failed = 0
    for _ in range(8):
        try:
            r = await rig2.read(clock.now_s())
        except DeviceError:
            failed += 1
        else:
            ok += 1
            assert r.state is RigState.HASHING
    assert ok >= 4 and failed >= 1


@pytest.mark.asyncio
async def test_plain_cgminer_rig_reads_estimated_power_and_refuses_commands(
    fleet: RigFleet,
) -> None:
    sim = list(fleet.rigs.values())[3]
    rig = CgminerRig(sim.rig_id, sim.plan.host, load_rig_model(MODEL), fleet.port_of(sim))
    r = await rig.read(manual_clock(fleet).now_s())
    assert r.state is RigState.HASHING
    assert r.power_estimated and r.power_w == pytest.approx(3068, rel=0.03)
    assert r.profile is None
    with pytest.raises(CommandRejected, match="read only"):
        await rig.apply(RigCommand(rig.rig_id, RigAction.SLEEP))
