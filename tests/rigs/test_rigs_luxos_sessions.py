"""LuxOS sessions over real TCP against the simulator, which keeps them exactly as firmware:
one session, 60 s sliding expiry, 402 on a second logon, `session` naming the live id.

The simulator and the drivers share one ManualClock, so ten simulated minutes of commands
50-70 s apart (the spacing that broke minerd in issue 12: the rig still held the session that
minerd had already forgotten) cost no wall time.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sim_fleet import manual_clock, manual_fleet

from minerd.devices.rig_luxos import LuxosRig
from minerd.errors import DeviceError
from minerd.model import RigAction, RigCommand, RigProtocol
from minerd.profiles import load_rig_model
from minerd.runtime.sessions import StoredSessions, session_recoveries
from minerd.sim.fleet import RigFleet
from minerd.sim.rig import RigSim
from minerd.sim.spec import RigGroupSpec, SiteSpec
from minerd.sinks.prometheus import PrometheusSink
from minerd.storage import Database, StateStore

MODEL = "bitmain-s19jpro"
RIGS = 3
SOAK_S = 600.0


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(
        groups=(RigGroupSpec(MODEL, RIGS, RigProtocol.LUXOS),), rig_port=0, base_octet=97
    )
    async with manual_fleet(spec) as f:
        yield f


def _sim(fleet: RigFleet, index: int) -> RigSim:
    return list(fleet.rigs.values())[index]


def _driver(fleet: RigFleet, index: int, sessions: StoredSessions | None = None) -> LuxosRig:
    sim = _sim(fleet, index)
    return LuxosRig(
        sim.rig_id,
        sim.plan.host,
        load_rig_model(MODEL),
        fleet.port_of(sim),
        sessions=sessions,
        clock=fleet.clock,
    )


def _stored(path: Path) -> StoredSessions:
    return StoredSessions(StateStore(Database(path)))


async def _other_tool(fleet: RigFleet, index: int, command: str, parameter: str = "") -> Any:
    """Another client (luxos-tooling, pyasic...) on the same rig: a raw socket, no minerd code."""
    sim = _sim(fleet, index)
    request: dict[str, str] = {"command": command}
    if parameter:
        request["parameter"] = parameter
    async with asyncio.timeout(5.0):
        reader, writer = await asyncio.open_connection(sim.plan.host, fleet.port_of(sim))
        try:
            writer.write(json.dumps(request).encode())
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
    reply = json.loads(raw.rstrip(b"\x00"))
    assert isinstance(reply, dict)
    return reply


# ---------------------------------------------------------------- soak

STEPS = (
    (RigCommand("", RigAction.SLEEP), lambda s: not s.awake),
    (RigCommand("", RigAction.WAKE), lambda s: s.awake),
    (RigCommand("", RigAction.SET_PROFILE, profile="-2"), lambda s: s.profile == "-2"),
    (RigCommand("", RigAction.SET_POWER, power_w=2800.0), lambda s: s.profile == "-1"),
    (RigCommand("", RigAction.SET_PROFILE, profile="default"), lambda s: s.profile == "default"),
)


@pytest.mark.asyncio
async def test_soak_commands_50_to_70_s_apart_for_10_minutes(
    fleet: RigFleet, tmp_path: Path
) -> None:
    clock = manual_clock(fleet)
    stored = _stored(tmp_path / "state.sqlite")
    drivers = [_driver(fleet, i, stored) for i in range(RIGS)]
    rng = random.Random(12)
    failures: list[str] = []
    gaps: list[float] = []
    commands = elapsed_s = 0.0
    step = 0
    while elapsed_s < SOAK_S:
        gap = rng.uniform(50.0, 70.0)
        clock.advance(gap)
        elapsed_s += gap
        gaps.append(gap)
        template, reached = STEPS[step % len(STEPS)]
        step += 1
        for i, driver in enumerate(drivers):
            cmd = RigCommand(driver.rig_id, template.action, template.profile, template.power_w)
            try:
                await driver.apply(cmd)
                await driver.read(clock.now_s())  # the poller reads between commands too
            except DeviceError as exc:
                failures.append(f"t={elapsed_s:.0f}s {driver.rig_id} {cmd.action}: {exc}")
                continue
            commands += 1
            if not reached(_sim(fleet, i)):
                failures.append(f"t={elapsed_s:.0f}s {driver.rig_id}: {cmd.action} not applied")
    assert failures == []
    assert commands >= 9 * RIGS
    # Both sides of the firmware's 60 s: kept sessions and lapsed ones.
    assert any(g < 60.0 for g in gaps) and any(g > 60.0 for g in gaps)
    # Nobody else touches the rigs, so no recovery was needed: every session move was planned.
    assert session_recoveries(drivers) == {"another_session": 0, "expired": 0, "adopted": 0}
    kept = sum(1 for g in gaps[1:] if g < 60.0)
    for driver in drivers:
        assert driver.logons == len(gaps) - kept, "a session is reused while the rig keeps it"


# ---------------------------------------------------------------- another tool


@pytest.mark.asyncio
async def test_another_tool_holding_the_session_does_not_fail_our_command(
    fleet: RigFleet,
) -> None:
    clock = manual_clock(fleet)
    logon = await _other_tool(fleet, 0, "logon")
    assert logon["STATUS"][0]["Code"] == 316
    theirs = logon["SESSION"][0]["SessionID"]
    driver = _driver(fleet, 0)
    await driver.apply(RigCommand(driver.rig_id, RigAction.SLEEP))  # one call, no retry needed
    assert not _sim(fleet, 0).awake
    assert driver.logons == 0 and driver.session_recoveries["adopted"] == 1
    # The session is shared, not stolen: the other tool's id still works.
    clock.advance(30)
    reply = await _other_tool(fleet, 0, "curtail", f"{theirs},wakeup")
    assert reply["STATUS"][0]["STATUS"] == "S" and reply["CURTAIL"][0]["Action"] == "wake up"
    # It logs off (luxos-tooling does after every command); our next command still succeeds.
    assert (await _other_tool(fleet, 0, "logoff", theirs))["STATUS"][0]["STATUS"] == "S"
    clock.advance(5)
    await driver.apply(RigCommand(driver.rig_id, RigAction.SLEEP))
    assert not _sim(fleet, 0).awake
    assert driver.session_recoveries["expired"] == 1 and driver.logons == 1


@pytest.mark.asyncio
async def test_recoveries_are_exposed_in_metrics(fleet: RigFleet) -> None:
    await _other_tool(fleet, 1, "logon")
    drivers = [_driver(fleet, i) for i in range(RIGS)]
    await drivers[1].apply(RigCommand(drivers[1].rig_id, RigAction.SLEEP))
    prom = PrometheusSink("test-site")
    prom.set_session_source(lambda: session_recoveries(drivers))
    text = prom.render_metrics().decode()
    assert 'minerd_rig_session_recoveries_total{reason="adopted"} 1.0' in text
    assert 'minerd_rig_session_recoveries_total{reason="another_session"} 0.0' in text
    assert 'minerd_rig_session_recoveries_total{reason="expired"} 0.0' in text


# ---------------------------------------------------------------- restart and shutdown


@pytest.mark.asyncio
async def test_daemon_restart_takes_the_stored_session(fleet: RigFleet, tmp_path: Path) -> None:
    clock = manual_clock(fleet)
    db_path = tmp_path / "state.sqlite"
    before = _driver(fleet, 2, _stored(db_path))
    await before.apply(RigCommand(before.rig_id, RigAction.SLEEP))
    sid = _stored(db_path).get(before.rig_id)
    assert sid is not None
    clock.advance(20)  # crash and restart within the rig's minute: no aclose, no logoff
    after = _driver(fleet, 2, _stored(db_path))
    await after.apply(RigCommand(after.rig_id, RigAction.WAKE))
    assert _sim(fleet, 2).awake
    assert after.logons == 0 and after.session.sid == sid
    assert session_recoveries([after]) == {"another_session": 0, "expired": 0, "adopted": 0}
    # A restart after the session lapsed logs on again, as routine.
    clock.advance(120)
    later = _driver(fleet, 2, _stored(db_path))
    await later.apply(RigCommand(later.rig_id, RigAction.SLEEP))
    assert later.logons == 1 and later.session.sid != sid
    assert _stored(db_path).get(later.rig_id) == later.session.sid
    assert all(n == 0 for n in later.session_recoveries.values())


@pytest.mark.asyncio
async def test_aclose_logs_off_so_another_tool_can_log_on(fleet: RigFleet, tmp_path: Path) -> None:
    clock = manual_clock(fleet)
    stored = _stored(tmp_path / "state.sqlite")
    driver = _driver(fleet, 1, stored)
    await driver.apply(RigCommand(driver.rig_id, RigAction.SLEEP))
    assert _sim(fleet, 1).active_session(clock.now_s()) is not None
    await driver.aclose()
    assert _sim(fleet, 1).active_session(clock.now_s()) is None
    assert stored.get(driver.rig_id) is None
    logon = await _other_tool(fleet, 1, "logon")
    assert logon["STATUS"][0]["STATUS"] == "S" and logon["STATUS"][0]["Code"] == 316


@pytest.mark.asyncio
async def test_a_failing_session_store_never_fails_a_command(
    fleet: RigFleet, tmp_path: Path
) -> None:
    clock = manual_clock(fleet)
    db = Database(tmp_path / "state.sqlite")
    stored = StoredSessions(StateStore(db))
    driver = _driver(fleet, 0, stored)
    db.close()  # every write now raises StorageError
    await driver.apply(RigCommand(driver.rig_id, RigAction.SLEEP))
    clock.advance(90)
    await driver.apply(RigCommand(driver.rig_id, RigAction.WAKE))  # a new session, in memory
    assert _sim(fleet, 0).awake and driver.logons == 2
