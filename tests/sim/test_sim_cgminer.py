"""The cgminer / LuxOS API of simulated rigs, read with a raw socket and a strict parser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from simtest_helpers import cgminer, cgminer_raw

from minerd.model import RigProtocol
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

SPEED = 10.0
LUX = "c001-r001"  # bitmain-s19jpro, LuxOS
CGM = "c001-r004"  # bitmain-s21, plain cgminer


@pytest_asyncio.fixture
async def site() -> AsyncIterator[SimSite]:
    spec = SiteSpec(
        groups=(
            RigGroupSpec("bitmain-s19jpro", 3, RigProtocol.LUXOS),
            RigGroupSpec("bitmain-s21", 2, RigProtocol.CGMINER),
        ),
        rig_port=0,
        base_octet=61,
        speed=SPEED,
        workers=1,
    )
    async with SimSite(spec) as s:
        yield s


async def power_of(site: SimSite, rig_id: str) -> float:
    truth = await site.truth()
    rigs = {r["id"]: r for r in truth["rigs"]}  # type: ignore[union-attr]
    return float(rigs[rig_id]["power_w"])


@pytest.mark.asyncio
async def test_report_commands_parse_strictly_with_status(site: SimSite) -> None:
    host, port = site.rig_endpoint(LUX)
    assert host == "127.61.0.1"
    for command, section in [
        ("version", "VERSION"),
        ("summary", "SUMMARY"),
        ("stats", "STATS"),
        ("devs", "DEVS"),
        ("pools", "POOLS"),
        ("config", "CONFIG"),
    ]:
        reply = await cgminer(host, port, command)
        st = reply["STATUS"][0]
        assert st["STATUS"] == "S", (command, st)
        assert {"When", "Code", "Msg", "Description"} <= set(st)
        assert reply[section], command
    summary = (await cgminer(host, port, "summary"))["SUMMARY"][0]
    # LuxOS: GHS windows in GH/s (firmware-apis.md 2.7); layouts in test_sim_firmware_layouts
    assert summary["GHS 5s"] == pytest.approx(104e3, rel=0.01)
    for key in (
        "Elapsed",
        "GHS av",
        "GHS 1m",
        "GHS 5m",
        "GHS 15m",
        "Accepted",
        "Rejected",
        "Hardware Errors",
        "Difficulty Accepted",
        "Difficulty Rejected",
        "Difficulty Stale",
    ):
        assert key in summary
    s1 = (await cgminer(host, port, "stats"))["STATS"][1]
    for key in (
        "chain_rate1",
        "chain_rate2",
        "chain_rate3",
        "chain_acn1",
        "temp2_1",
        "temp2_3",
        "temp1",
        "temp3",
        "fan1",
        "fan4",
        "total_rateideal",
        "rate_unit",
    ):
        assert key in s1, key
    assert s1["rate_unit"] == "GH"
    assert s1["total_rateideal"] == pytest.approx(104_000.0)


@pytest.mark.asyncio
async def test_joined_commands_each_get_their_own_key(site: SimSite) -> None:
    host, port = site.rig_endpoint(LUX)
    reply = await cgminer(host, port, "summary+stats+pools")
    assert set(reply) >= {"summary", "stats", "pools"}
    assert reply["summary"][0]["STATUS"][0]["Msg"] == "Summary"
    assert "SUMMARY" in reply["summary"][0]
    assert "STATS" in reply["stats"][0]
    bad = await cgminer(host, port, "summary+curtail")
    assert bad["STATUS"][0]["STATUS"] == "E"


@pytest.mark.asyncio
async def test_unknown_command_and_plain_cgminer_has_no_curtail(site: SimSite) -> None:
    host, port = site.rig_endpoint(LUX)
    reply = await cgminer(host, port, "frobnicate")
    assert reply["STATUS"][0]["STATUS"] == "E"
    assert reply["STATUS"][0]["Code"] == 14
    h2, p2 = site.rig_endpoint(CGM)
    assert (await cgminer(h2, p2, "logon"))["STATUS"][0]["STATUS"] == "E"
    assert "CGMiner" in (await cgminer(h2, p2, "version"))["VERSION"][0]  # stock S21


@pytest.mark.asyncio
async def test_luxos_session_rules(site: SimSite) -> None:
    host, port = site.rig_endpoint(LUX)
    logon = await cgminer(host, port, "logon")
    assert logon["STATUS"][0]["STATUS"] == "S"
    session = logon["SESSION"][0]["SessionID"]
    second = await cgminer(host, port, "logon")
    assert second["STATUS"][0]["STATUS"] == "E", "only one session at a time"
    bad = await cgminer(host, port, "curtail", "nosuchsession,sleep")
    assert bad["STATUS"][0]["STATUS"] == "E"
    bad_mode = await cgminer(host, port, "curtail", f"{session},nap")
    assert bad_mode["STATUS"][0]["STATUS"] == "E"
    bad_profile = await cgminer(host, port, "profileset", f"{session},turbo9000")
    assert bad_profile["STATUS"][0]["STATUS"] == "E"
    assert (await cgminer(host, port, "logoff", session))["STATUS"][0]["STATUS"] == "S"
    assert (await cgminer(host, port, "logoff", session))["STATUS"][0]["STATUS"] == "E"
    assert (await cgminer(host, port, "logon"))["STATUS"][0]["STATUS"] == "S"


@pytest.mark.asyncio
async def test_luxos_session_expires_after_60s_idle() -> None:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", 1),),
        rig_port=0,
        base_octet=62,
        speed=200.0,
        workers=1,
    )
    async with SimSite(spec) as site:
        host, port = site.rig_endpoint("c001-r001")
        session = (await cgminer(host, port, "logon"))["SESSION"][0]["SessionID"]
        await asyncio.sleep(61.0 / 200.0 + 0.05)
        reply = await cgminer(host, port, "curtail", f"{session},sleep")
        assert reply["STATUS"][0]["STATUS"] == "E", "an idle session expires after 60 s"
        assert (await cgminer(host, port, "logon"))["STATUS"][0]["STATUS"] == "S"


@pytest.mark.asyncio
async def test_curtail_sleep_wakeup_and_profileset_move_power(site: SimSite) -> None:
    host, port = site.rig_endpoint(LUX)
    model = site.fleet.rigs[LUX].model
    session = (await cgminer(host, port, "logon"))["SESSION"][0]["SessionID"]
    reply = await cgminer(host, port, "curtail", f"{session},sleep")
    assert reply["STATUS"][0]["STATUS"] == "S" and reply["STATUS"][0]["Code"] == 335
    await asyncio.sleep(model.sleep_time_s / SPEED)
    watts = (await cgminer(host, port, "power"))["POWER"][0]["Watts"]
    assert watts <= model.sleep_power_w * 1.5, "asleep within sleep_time_s"
    summary = (await cgminer(host, port, "summary"))["SUMMARY"][0]
    assert summary["GHS 5s"] == 0
    reply = await cgminer(host, port, "curtail", f"{session},wakeup")
    assert reply["STATUS"][0]["Code"] == 335
    await asyncio.sleep(model.wake_time_s / SPEED)
    assert await power_of(site, LUX) >= model.nominal_power_w * 0.97
    profiles = (await cgminer(host, port, "profiles"))["PROFILES"]
    low = min(profiles, key=lambda p: p["Watts"])
    reply = await cgminer(host, port, "profileset", f"{session},{low['Profile Name']}")
    assert reply["STATUS"][0]["STATUS"] == "S"
    assert reply["PROFILE"][0]["Profile"] == low["Profile Name"]
    await asyncio.sleep(model.sleep_time_s / SPEED)
    assert await power_of(site, LUX) == pytest.approx(low["Watts"], rel=0.02)
    got = await cgminer(host, port, "profileget")
    assert got["PROFILE"][0]["Profile"] == low["Profile Name"]


@pytest.mark.asyncio
async def test_fault_offline_hung_slow(site: SimSite) -> None:
    host, port = site.rig_endpoint("c001-r002")
    await site.inject("c001-r002", "offline")
    with pytest.raises(ConnectionRefusedError):
        await cgminer(host, port, "summary")
    await site.clear("c001-r002")
    assert (await cgminer(host, port, "summary"))["STATUS"][0]["STATUS"] == "S"
    await site.inject("c001-r002", "hung")
    with pytest.raises(TimeoutError):
        await cgminer_raw(host, port, "summary", timeout_s=0.5)
    await site.clear("c001-r002")
    await site.inject("c001-r002", "slow")
    # Slow answers after SLOW_REPLY_S (2 s): not within 0.5 s, but it does answer.
    with pytest.raises(TimeoutError):
        await cgminer_raw(host, port, "summary", timeout_s=0.5)
    reply = json.loads((await cgminer_raw(host, port, "summary", timeout_s=30.0))[:-1])
    assert reply["STATUS"][0]["STATUS"] == "S"


@pytest.mark.asyncio
async def test_fault_broken_json_in_every_flavour(site: SimSite) -> None:
    host, port = site.rig_endpoint("c001-r003")
    await site.inject("c001-r003", "broken_json")
    seen = set()
    for _ in range(4):
        raw = await cgminer_raw(host, port, "summary")
        assert raw
        with pytest.raises(ValueError):
            json.loads(raw.rstrip(b"\x00").decode())
        text = raw.decode()
        if ",}" in text or ",]" in text:
            seen.add("trailing-comma")
        if "}{" in text:
            seen.add("glued")
        if ":inf" in text:
            seen.add("inf")
        if not raw.endswith(b"\x00"):
            seen.add("truncated")
    assert seen == {"trailing-comma", "glued", "inf", "truncated"}


@pytest.mark.asyncio
async def test_fault_thermal_fan_board_and_ignored_commands(site: SimSite) -> None:
    host, port = site.rig_endpoint(LUX)
    model = site.fleet.rigs[LUX].model
    await site.inject(LUX, "overheat")
    s1 = (await cgminer(host, port, "stats"))["STATS"][1]
    assert s1["temp2_1"] > model.chip_temp_max_c
    await site.clear(LUX)
    await site.inject(LUX, "fan_failure")
    s1 = (await cgminer(host, port, "stats"))["STATS"][1]
    assert s1["fan1"] == 0 and s1["fan2"] > 0
    await site.clear(LUX)
    await site.inject(LUX, "dead_board")
    s1 = (await cgminer(host, port, "stats"))["STATS"][1]
    assert s1["chain_acn3"] == 0 and s1["chain_rate3"] == "0"  # LuxOS: "0", stock: ""
    devs = (await cgminer(host, port, "devs"))["DEVS"]
    assert [d["Status"] for d in devs] == ["Alive", "Alive", "Dead"]
    await asyncio.sleep(model.sleep_time_s / SPEED)
    assert await power_of(site, LUX) < model.nominal_power_w * 0.75
    await site.clear(LUX)
    await site.inject(LUX, "ignores_commands")
    session = (await cgminer(host, port, "logon"))["SESSION"][0]["SessionID"]
    reply = await cgminer(host, port, "curtail", f"{session},sleep")
    assert reply["STATUS"][0]["Code"] == 335, "says yes"
    await asyncio.sleep(model.sleep_time_s / SPEED)
    assert await power_of(site, LUX) > model.nominal_power_w * 0.9, "does nothing"
