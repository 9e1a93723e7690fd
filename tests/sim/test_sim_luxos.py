"""The simulator's LuxOS commands against the reference (firmware-apis.md section 2), read
with a raw socket and a strict parser: codes, layouts and the firmware's session rules."""

from __future__ import annotations

import string
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sim_fleet import manual_fleet
from simtest_helpers import cgminer, cgminer_raw

from minerd.clock import ManualClock
from minerd.model import RigProtocol
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec

MODEL = "bitmain-s19jpro"


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(groups=(RigGroupSpec(MODEL, 1, RigProtocol.LUXOS),), rig_port=0, base_octet=98)
    async with manual_fleet(spec) as f:
        yield f


class Rig:
    def __init__(self, fleet: RigFleet) -> None:
        self.sim = next(iter(fleet.rigs.values()))
        self.host, self.port = self.sim.plan.host, fleet.port_of(self.sim)
        assert isinstance(fleet.clock, ManualClock)
        self.clock = fleet.clock

    async def __call__(self, command: str, parameter: str | None = None) -> Any:
        return await cgminer(self.host, self.port, command, parameter)


def st(reply: Any) -> tuple[str, int, str]:
    s = reply["STATUS"][0]
    assert s["Description"].startswith("LUXminer ")
    return s["STATUS"], s["Code"], s["Msg"]


@pytest_asyncio.fixture
async def rig(fleet: RigFleet) -> Rig:
    return Rig(fleet)


@pytest.mark.asyncio
async def test_logon_402_session_and_logoff_as_firmware(rig: Rig) -> None:
    assert (await rig("session"))["SESSION"][0]["SessionID"] == ""
    logon = await rig("logon")
    assert st(logon) == ("S", 316, "Session created")
    sid = logon["SESSION"][0]["SessionID"]
    assert len(sid) == 8 and set(sid) <= set(string.ascii_letters + string.digits)
    second = await rig("logon")
    assert st(second) == ("E", 402, "Another session is active")
    assert "SESSION" not in second
    info = await rig("session")
    assert st(info) == ("S", 319, "Session information")
    assert info["SESSION"][0]["SessionID"] == sid, "session discloses the active id"
    assert st(await rig("logoff", sid))[0] == "S"
    assert (await rig("session"))["SESSION"][0]["SessionID"] == ""
    assert st(await rig("logoff", sid))[0] == "E"


@pytest.mark.asyncio
async def test_session_expires_60_s_after_its_last_use(rig: Rig) -> None:
    sid = (await rig("logon"))["SESSION"][0]["SessionID"]
    rig.clock.advance(50)
    assert st(await rig("curtail", f"{sid},sleep"))[0] == "S"  # use: 60 s start again
    rig.clock.advance(50)
    assert (await rig("session"))["SESSION"][0]["SessionID"] == sid, "100 s after logon"
    rig.clock.advance(9)  # `session` itself does not refresh it: 59 s after the last use
    assert st(await rig("curtail", f"{sid},wakeup"))[0] == "S"
    rig.clock.advance(60)
    assert (await rig("session"))["SESSION"][0]["SessionID"] == ""
    assert st(await rig("curtail", f"{sid},sleep"))[0] == "E"
    assert st(await rig("logon"))[0] == "S"


@pytest.mark.parametrize(
    ("command", "argument"),
    [("curtail", "sleep"), ("profileset", "-1"), ("atmset", "enabled=false"), ("logoff", "")],
)
@pytest.mark.asyncio
async def test_every_privileged_command_needs_the_live_session(
    rig: Rig, command: str, argument: str
) -> None:
    assert st(await rig(command, argument))[0] == "E"
    sid = (await rig("logon"))["SESSION"][0]["SessionID"]
    assert st(await rig(command, f"nosuchid,{argument}".rstrip(",")))[0] == "E"
    assert st(await rig(command, f"{sid},{argument}".rstrip(",")))[0] == "S"


@pytest.mark.asyncio
async def test_curtail_config_and_power_follow_sleep_and_wake(rig: Rig) -> None:
    sid = (await rig("logon"))["SESSION"][0]["SessionID"]
    config = (await rig("config"))["CONFIG"][0]
    assert config["CurtailMode"] == "None" and config["IsPowerSupplyOn"] is True
    assert config["Model"] == "Antminer S19j Pro" and config["Profile"] == "default"
    assert st(await rig("config"))[1:] == (33, "LUXminer config")
    sleep = await rig("curtail", f"{sid},sleep")
    assert st(sleep) == ("S", 335, "Curtailment command sent")
    assert sleep["CURTAIL"][0]["Action"] == "sleep mode"
    rig.clock.advance(rig.sim.model.sleep_time_s + 1)
    config = (await rig("config"))["CONFIG"][0]
    assert config["CurtailMode"] != "None" and config["IsPowerSupplyOn"] is False
    power = await rig("power")
    assert st(power)[1:] == (311, "Power usage")
    assert isinstance(power["POWER"][0]["Watts"], int) and isinstance(
        power["POWER"][0]["PSU"], bool
    )
    assert power["POWER"][0]["Watts"] <= rig.sim.model.sleep_power_w * 1.5
    wake = await rig("curtail", f"{sid},wakeup")
    assert wake["CURTAIL"][0]["Action"] == "wake up"
    assert (await rig("config"))["CONFIG"][0]["CurtailMode"] == "None"


@pytest.mark.asyncio
async def test_profiles_and_profileset_layouts(rig: Rig) -> None:
    profiles = await rig("profiles")
    assert st(profiles)[1:] == (323, "List profiles")
    first = profiles["PROFILES"][0]
    assert {"Profile Name", "Frequency", "Voltage", "Hashrate", "Watts", "Step", "IsTuned"} <= set(
        first
    )
    assert isinstance(first["Watts"], int) and isinstance(first["Step"], str)
    sid = (await rig("logon"))["SESSION"][0]["SessionID"]
    reply = await rig("profileset", f"{sid},-2")
    assert st(reply) == ("S", 321, "Profile Set")
    assert set(reply["PROFILE"][0]) == {"Board", "FrequencyStep", "Profile", "VoltageStep"}
    assert reply["PROFILE"][0]["Profile"] == "-2"
    assert (await rig("config"))["CONFIG"][0]["Profile"] == "-2"
    assert st(await rig("profileset", f"{sid},turbo"))[0] == "E"


@pytest.mark.asyncio
async def test_telemetry_commands_real_tools_call(rig: Rig) -> None:
    fans = await rig("fans")
    assert st(fans)[1:] == (202, "4 Fan(s)")
    for i, fan in enumerate(fans["FANS"]):
        assert fan["FAN"] == f"FAN{i + 1}" and fan["ID"] == i
        assert isinstance(fan["RPM"], int) and 0 <= fan["Speed"] <= 100
    assert set(fans["FANCTRL"][0]) == {"MinFans", "PowerOffSpeed"}
    temps = await rig("temps")
    assert st(temps)[1:] == (201, "3 Temp(s)")
    corners = {"TopLeft", "TopRight", "BottomLeft", "BottomRight"}
    assert all(corners | {"ID", "TEMP"} == set(t) for t in temps["TEMPS"])
    assert set(temps["METADATA"][0]) == corners
    groups = await rig("groups")
    assert st(groups)[1] == 324 and isinstance(groups["GROUPS"][0]["Quota"], float)
    tempctrl = (await rig("tempctrl"))["TEMPCTRL"][0]
    assert {"Target", "Hot", "Dangerous", "ChipHot", "ChipDangerous"} <= set(tempctrl)
    atm = await rig("atm")
    assert st(atm)[1:] == (339, "ATM configuration values") and atm["ATM"][0]["Enabled"] is True
    details = await rig("devdetails")
    assert details["DEVDETAILS"][0]["Model"] == "Antminer S19j Pro"
    pools = await rig("pools")
    assert pools["POOLS"][0]["GROUP"] == groups["GROUPS"][0]["GROUP"]
    joined = await rig("power+fans+config")
    assert {"power", "fans", "config"} <= set(joined)


@pytest.mark.asyncio
async def test_atmset_changes_what_atm_reports(rig: Rig) -> None:
    sid = (await rig("logon"))["SESSION"][0]["SessionID"]
    reply = await rig("atmset", f"{sid},enabled=false")
    assert st(reply)[:2] == ("S", 340)
    assert (await rig("atm"))["ATM"][0]["Enabled"] is False
    assert (await rig("config"))["CONFIG"][0]["IsAtmEnabled"] is False
    await rig("atmset", f"{sid},enabled=true")
    assert (await rig("atm"))["ATM"][0]["Enabled"] is True


@pytest.mark.asyncio
async def test_fault_reads_hang_leaves_sessions_and_control_commands_working(rig: Rig) -> None:
    rig.sim.set_fault("reads_hang", True, rig.clock.now_s())
    for read in ("summary", "stats", "power", "config", "summary+stats+power+profileget"):
        with pytest.raises(TimeoutError):
            await cgminer_raw(rig.host, rig.port, read, timeout_s=0.5)
    sid = (await rig("logon"))["SESSION"][0]["SessionID"]
    assert (await rig("session"))["SESSION"][0]["SessionID"] == sid
    assert st(await rig("curtail", f"{sid},sleep")) == ("S", 335, "Curtailment command sent")
    rig.clock.advance(rig.sim.model.sleep_time_s + 1)
    assert rig.sim.view(rig.clock.now_s()).awake is False  # it obeyed, unread
    rig.sim.set_fault("reads_hang", False, rig.clock.now_s())
    assert (await rig("config"))["CONFIG"][0]["CurtailMode"] != "None"
