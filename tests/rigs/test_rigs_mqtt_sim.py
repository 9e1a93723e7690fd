"""MQTT rig driver against simulated MQTT rigs on a real Mosquitto."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from servers import ServerProcess

from minerd.clock import ManualClock
from minerd.devices.rig_mqtt import MqttRig, MqttRigHub
from minerd.errors import CommandRejected, DeviceTimeout
from minerd.model import RigAction, RigCommand, RigProtocol, RigState
from minerd.profiles import load_rig_model
from minerd.sim.fleet import RigFleet
from minerd.sim.mqtt import MqttRigs
from minerd.sim.spec import RigGroupSpec, SiteSpec, plan_rigs
from minerd.transports.mqtt import MqttSession

MODEL = "bitmain-s19jpro"


@pytest_asyncio.fixture
async def site(mosquitto: ServerProcess) -> AsyncIterator[tuple[RigFleet, MqttRigHub, str]]:
    prefix = f"simrigs{id(mosquitto) % 9973}"
    spec = SiteSpec(groups=(RigGroupSpec(MODEL, 3, RigProtocol.MQTT),), base_octet=61)
    fleet = RigFleet(plan_rigs(spec), ManualClock())
    sim = MqttRigs(
        f"mqtt://127.0.0.1:{mosquitto.port}", prefix, list(fleet.rigs.values()), fleet.clock
    )
    ready = asyncio.Event()
    sim_task = asyncio.create_task(sim.run(ready))
    await asyncio.wait_for(ready.wait(), 5)
    async with MqttSession("127.0.0.1", mosquitto.port, name="daemon") as session:
        hub = MqttRigHub(session, prefix, stale_after_s=5.0)
        await hub.start()
        await session.wait_connected(5)
        yield fleet, hub, prefix
    sim_task.cancel()
    await asyncio.gather(sim_task, return_exceptions=True)


async def _fresh_read(rig: MqttRig, clock: ManualClock, cond: object, timeout_s: float = 5.0):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                r = await rig.read(clock.now_s())
                if cond(r):  # type: ignore[operator]
                    return r
            except DeviceTimeout:
                pass
            await asyncio.sleep(0.1)


@pytest.mark.asyncio
async def test_mqtt_rig_reads_and_commands(site: tuple[RigFleet, MqttRigHub, str]) -> None:
    fleet, hub, _prefix = site
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    model = load_rig_model(MODEL)
    rigs = [MqttRig(rid, hub, model, timeout_s=3.0) for rid in fleet.rigs]
    r = await _fresh_read(rigs[0], clock, lambda r: True)
    assert r.state is RigState.HASHING
    assert r.power_w == pytest.approx(3068, rel=0.01) and not r.power_estimated
    assert r.profile == "default" and r.boards_ok == 3

    await rigs[1].apply(RigCommand(rigs[1].rig_id, RigAction.SLEEP))
    clock.advance(30)
    r = await _fresh_read(rigs[1], clock, lambda r: r.state is RigState.SLEEPING)
    assert r.reason == "asleep" and r.power_w < 50

    await rigs[2].apply(RigCommand(rigs[2].rig_id, RigAction.SET_POWER, power_w=2500))
    clock.advance(60)
    r = await _fresh_read(rigs[2], clock, lambda r: r.power_limit_w == 2500)
    assert r.power_w == pytest.approx(2500, rel=0.02)

    with pytest.raises(CommandRejected, match="outside"):
        await rigs[2].apply(RigCommand(rigs[2].rig_id, RigAction.SET_POWER, power_w=99_000))


@pytest.mark.asyncio
async def test_mqtt_rig_faults(site: tuple[RigFleet, MqttRigHub, str]) -> None:
    fleet, hub, _prefix = site
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    model = load_rig_model(MODEL)
    ids = list(fleet.rigs)
    await fleet.inject(ids[0], "dead_board")
    r = await _fresh_read(MqttRig(ids[0], hub, model), clock, lambda r: r.state is RigState.FAULT)
    assert "dead board: 1 of 3" in r.reason

    # a hung rig never replies: the command times out naming the rig
    await fleet.inject(ids[1], "hung")
    with pytest.raises(DeviceTimeout, match=f"{ids[1]} at 127.0.0.1"):
        await MqttRig(ids[1], hub, model, timeout_s=0.5).apply(RigCommand(ids[1], RigAction.WAKE))

    # an offline rig stops publishing: its telemetry goes stale
    hub.stale_after_s = 1.0
    await fleet.inject(ids[2], "offline")
    await asyncio.sleep(1.5)
    with pytest.raises(DeviceTimeout, match="old"):
        await MqttRig(ids[2], hub, model).read(clock.now_s())

    # broken JSON telemetry: the repaired messages still read
    await fleet.inject(ids[0], "broken_json")
    await asyncio.sleep(1.2)
    r = await MqttRig(ids[0], hub, model).read(clock.now_s())
    assert r.state is RigState.FAULT


@pytest.mark.asyncio
async def test_unknown_rig_has_no_telemetry(site: tuple[RigFleet, MqttRigHub, str]) -> None:
    _fleet, hub, prefix = site
    with pytest.raises(DeviceTimeout, match=f"no telemetry on {prefix}/nope/telemetry"):
        await MqttRig("nope", hub, load_rig_model(MODEL)).read(0.0)
