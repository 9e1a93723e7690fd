"""The simulated Vnish REST API answers as the fixtures say the firmware does
(tests/fixtures/firmware/vnish-web: same keys, JSON types, units), with the firmware's auth
and its quirks: bare or Bearer token, 403/429 on unlock, POST /settings that says nothing
about whether the preset took, presets wrapped on some builds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from firmware_fixtures import load
from sim_fleet import manual_fleet

from minerd.clock import ManualClock
from minerd.model import RigProtocol
from minerd.sim import RigGroupSpec, SiteSpec
from minerd.sim.fleet import RigFleet
from minerd.sim.vnish_web import UNLOCK_FAILS, VnishWebListeners

FIX = "vnish-web"
PLAIN, WRAPPED = "c001-r001", "c001-r002"  # even and odd rig index: both preset layouts


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", 2, RigProtocol.VNISH),),
        rig_port=0,
        web_port=0,
        base_octet=171,
    )
    async with manual_fleet(spec, start_s=1_764_400_000.0) as f:
        yield f


def _http(fleet: RigFleet, rig_id: str) -> httpx.AsyncClient:
    rig = fleet.rig(rig_id)
    port = fleet.family_port_of(rig_id)
    assert port
    return httpx.AsyncClient(base_url=f"http://{rig.plan.host}:{port}/api/v1", timeout=10.0)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def _missing(want: dict[str, Any], got: dict[str, Any], path: str = "") -> list[str]:
    """Keys of the fixture the simulator lacks or sends with another JSON type (recursive
    into objects, first element of arrays)."""
    out = []
    for key, value in want.items():
        where = f"{path}.{key}"
        if key not in got:
            out.append(f"{where} missing")
            continue
        if value is None or got[key] is None:
            continue
        if _kind(value) != _kind(got[key]):
            out.append(f"{where}: {_kind(got[key])} != {_kind(value)}")
        elif isinstance(value, dict):
            out += _missing(value, got[key], where)
        elif isinstance(value, list) and value and got[key] and isinstance(value[0], dict):
            out += _missing(value[0], got[key][0], where + "[0]")
    return out


async def _token(http: httpx.AsyncClient) -> str:
    r = await http.post("/unlock", json={"pw": "admin"})
    assert r.status_code == 200
    assert set(r.json()) == set(load(FIX, "POST_unlock"))
    return str(r.json()["token"])


@pytest.mark.asyncio
async def test_replies_have_the_fixture_layout(fleet: RigFleet) -> None:
    async with _http(fleet, PLAIN) as http:
        token = await _token(http)
        auth = {"Authorization": f"Bearer {token}"}
        summary = (await http.get("/summary")).json()
        # the keys the fixture's summary has, less pools (the simulated rig has none)
        want = load(FIX, "GET_summary")
        want["miner"].pop("pools")
        assert _missing(want, summary) == []
        for name, path in (
            ("GET_info", "/info"),
            ("GET_status", "/status"),
            ("GET_perf-summary", "/perf-summary"),
        ):
            assert _missing(load(FIX, name), (await http.get(path)).json()) == [], name
        settings = (await http.get("/settings", headers=auth)).json()
        assert settings["miner"]["overclock"]["preset"] == "3068"  # nominal preset at start
        presets = (await http.get("/autotune/presets", headers=auth)).json()
        assert isinstance(presets, list)
        assert _missing(load(FIX, "GET_autotune_presets")[2], presets[1]) == []
    async with _http(fleet, WRAPPED) as http:
        auth = {"Authorization": f"Bearer {await _token(http)}"}
        wrapped = (await http.get("/autotune/presets", headers=auth)).json()
        assert set(wrapped) == set(load(FIX, "GET_autotune_presets-wrapped")) == {"presets"}


@pytest.mark.asyncio
async def test_units_are_the_firmwares(fleet: RigFleet) -> None:
    rig = fleet.rig(PLAIN)
    async with _http(fleet, PLAIN) as http:
        info = (await http.get("/info")).json()
        miner = (await http.get("/summary")).json()["miner"]
    view = rig.view(fleet.clock.now_s())
    assert info["hr_measure"] == "GH/s"
    assert miner["hr_realtime"] == pytest.approx(view.hashrate_ths * 1000.0, rel=1e-3)
    assert miner["power_consumption"] == round(view.power_w)  # watts
    assert miner["power_usage"] < 100  # deprecated efficiency (J/TH), never watts
    assert miner["miner_type"].endswith("(Vnish 1.2.6)")


@pytest.mark.asyncio
async def test_auth_takes_bearer_or_bare_token_and_refuses_others(fleet: RigFleet) -> None:
    async with _http(fleet, PLAIN) as http:
        assert (await http.get("/settings")).status_code == 401
        assert (await http.post("/mining/pause")).status_code == 401
        token = await _token(http)
        assert (await http.get("/settings", headers={"Authorization": token})).status_code == 200
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/settings", headers=bearer)).status_code == 200
        wrong = await http.post("/unlock", json={"pw": "nope"})
        assert wrong.status_code == 403 and set(wrong.json()) == set(load(FIX, "POST_unlock-403"))
        for _ in range(UNLOCK_FAILS - 1):
            await http.post("/unlock", json={"pw": "nope"})
        assert (await http.post("/unlock", json={"pw": "admin"})).status_code == 429
        listeners = fleet.family_listeners[RigProtocol.VNISH]
        assert isinstance(listeners, VnishWebListeners)
        listeners.revoke_tokens(PLAIN)  # a reboot
        assert (await http.get("/settings", headers=bearer)).status_code == 401


@pytest.mark.asyncio
async def test_settings_answer_the_same_whether_the_preset_took_or_not(fleet: RigFleet) -> None:
    rig = fleet.rig(PLAIN)
    async with _http(fleet, PLAIN) as http:
        auth = {"Authorization": await _token(http)}
        settled = load(FIX, "POST_settings")
        bad = await http.post(
            "/settings", json={"miner": {"overclock": {"preset": "1234"}}}, headers=auth
        )
        assert bad.status_code == 200 and bad.json() == settled
        assert (await http.get("/perf-summary")).json()["current_preset"]["name"] == "3068"
        good = await http.post(
            "/settings", json={"miner": {"overclock": {"preset": "2700"}}}, headers=auth
        )
        assert good.json() == settled
        assert (await http.get("/perf-summary")).json()["current_preset"]["name"] == "2700"
        assert rig.power_limit_w == 2700


@pytest.mark.asyncio
async def test_pause_and_resume_move_the_rig_unless_it_ignores_commands(fleet: RigFleet) -> None:
    rig = fleet.rig(PLAIN)
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    async with _http(fleet, PLAIN) as http:
        auth = {"Authorization": f"Bearer {await _token(http)}"}
        r = await http.post("/mining/pause", headers=auth)
        assert r.status_code == 200 and r.content == b""
        clock.advance(60.0)
        assert (await http.get("/status")).json()["miner_state"] == "stopped"
        assert (await http.get("/summary")).json()["miner"]["hr_realtime"] == 0
        await http.post("/mining/resume", headers=auth)
        clock.advance(120.0)
        assert (await http.get("/status")).json()["miner_state"] == "mining"
        await fleet.inject(PLAIN, "ignores_commands")
        assert (await http.post("/mining/stop", headers=auth)).status_code == 200
        clock.advance(60.0)
        assert (await http.get("/status")).json()["miner_state"] == "mining"
        assert rig.awake


@pytest.mark.asyncio
async def test_offline_closes_the_server_and_clear_reopens_it(fleet: RigFleet) -> None:
    rig = fleet.rig(PLAIN)
    port = fleet.family_port_of(PLAIN)
    await fleet.inject(PLAIN, "offline")
    assert fleet.family_port_of(PLAIN) is None
    async with httpx.AsyncClient(timeout=5.0) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://{rig.plan.host}:{port}/api/v1/status")
    await fleet.clear(PLAIN)
    assert fleet.family_port_of(PLAIN) == port
    async with _http(fleet, PLAIN) as http:
        assert (await http.get("/status")).status_code == 200
        assert "AnthillOS" in (await http.get(f"http://{rig.plan.host}:{port}/")).text
