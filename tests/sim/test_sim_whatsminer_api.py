"""The simulated Whatsminer speaks API v3 (4433) and the v2 privileged API (4028) as the
fixtures in tests/fixtures/firmware/whatsminer-api say (same keys, types, units), with auth,
and honours the rig's faults. Raw sockets here: no minerd client parses the replies."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from firmware_fixtures import load
from sim_fleet import manual_fleet

from minerd.model import RigProtocol
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec
from minerd.transports.whatsminer import aes_decrypt, aes_encrypt, v2_token, v3_token

RIG = "c001-r001"
FIX = "whatsminer-api"
WAIT_S = 20.0  # bound that turns a hang into a failure; never a timing assertion


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(
        groups=(RigGroupSpec("microbt-m50s", 1, RigProtocol.WHATSMINER),),
        rig_port=0,
        base_octet=177,
        whatsminer_api_port=0,
    )
    async with manual_fleet(spec, start_s=1_764_400_000.0, warm_up_s=600) as f:  # past warm-up
        yield f


async def v3(fleet: RigFleet, body: dict[str, Any]) -> dict[str, Any]:
    rig = fleet.rigs[RIG]
    port = fleet.family_port_of(RIG)
    assert port
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection(rig.plan.host, port)
        raw = json.dumps(body).encode()
        writer.write(struct.pack("<I", len(raw)) + raw)
        (size,) = struct.unpack("<I", await reader.readexactly(4))
        data = await reader.readexactly(size)
        writer.close()
    reply: dict[str, Any] = json.loads(data)
    return reply


async def v2(fleet: RigFleet, body: dict[str, Any]) -> dict[str, Any]:
    rig = fleet.rigs[RIG]
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection(rig.plan.host, fleet.port_of(rig))
        writer.write(json.dumps(body).encode())
        data = await reader.read()
        writer.close()
    reply: dict[str, Any] = json.loads(data.rstrip(b"\x00"))
    return reply


def same_shape(got: Any, want: Any, path: str = "") -> None:
    """Every key of the fixture is in the reply with the same JSON type."""
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        for key, value in want.items():
            if key.startswith("_"):
                continue
            assert key in got, f"{path}.{key} missing"
            same_shape(got[key], value, f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list), path
        if want and got:
            same_shape(got[0], want[0], f"{path}[0]")
    elif isinstance(want, bool) or want is None:
        assert type(got) is type(want), path
    elif isinstance(want, int | float):
        assert isinstance(got, int | float) and not isinstance(got, bool), path
    else:
        assert type(got) is type(want), f"{path}: {type(got).__name__}"


def now(fleet: RigFleet) -> float:
    return fleet.clock.now_s()


# ---------------------------------------------------------------- API v3


@pytest.mark.asyncio
async def test_v3_reads_have_the_fixture_layout_in_th_and_w(fleet: RigFleet) -> None:
    info = await v3(fleet, {"cmd": "get.device.info"})
    same_shape(info, load(FIX, "v3_get.device.info"))
    assert info["msg"]["miner"]["type"] == "M50S_VH30"
    status = await v3(fleet, {"cmd": "get.miner.status", "param": "summary+edevs"})
    same_shape(status, load(FIX, "v3_get.miner.status-summary"))
    same_shape(status, load(FIX, "v3_get.miner.status-edevs"))
    view = fleet.rigs[RIG].view(now(fleet))
    summary = status["msg"]["summary"]
    assert summary["hash-realtime"] == pytest.approx(view.hashrate_ths, rel=1e-3)  # TH/s
    assert summary["power-realtime"] == pytest.approx(view.power_w, abs=1)  # W
    assert len(status["msg"]["edevs"]) == 3
    err = await v3(fleet, {"cmd": "get.miner.status"})
    same_shape(err, load(FIX, "v3_error-param-null"))
    assert err["code"] == -3


def _signed(cmd: str, param: Any, salt: str, password: str = "super") -> dict[str, Any]:
    ts = 1_764_400_310
    return {
        "cmd": cmd,
        "param": param,
        "ts": ts,
        "account": "super",
        "token": v3_token(cmd, password, salt, ts),
    }


@pytest.mark.asyncio
async def test_v3_set_needs_the_token_and_moves_the_rig(fleet: RigFleet) -> None:
    salt_reply = await v3(fleet, {"cmd": "get.device.info", "param": "salt"})
    same_shape(salt_reply, load(FIX, "v3_get.device.info-salt"))
    salt = salt_reply["msg"]["salt"]
    rig = fleet.rigs[RIG]
    bad = await v3(fleet, _signed("set.miner.service", "stop", salt, password="wrong"))
    assert bad["code"] != 0 and rig.awake
    ok = await v3(fleet, _signed("set.miner.service", "stop", salt))
    same_shape(ok, load(FIX, "v3_set.ok"))
    assert ok["msg"] == "ok" and not rig.awake
    await v3(fleet, _signed("set.miner.service", "start", salt))
    assert rig.awake
    pct = await v3(fleet, _signed("set.miner.power_percent", 70, salt))
    assert pct["code"] == 0
    assert rig.power_limit_w == pytest.approx(rig.model.nominal_power_w * 0.70)


@pytest.mark.asyncio
async def test_v3_ignores_commands_answers_ok_and_does_nothing(fleet: RigFleet) -> None:
    await fleet.inject(RIG, "ignores_commands")
    salt = (await v3(fleet, {"cmd": "get.device.info", "param": "salt"}))["msg"]["salt"]
    ok = await v3(fleet, _signed("set.miner.service", "stop", salt))
    assert ok["code"] == 0 and fleet.rigs[RIG].awake


@pytest.mark.asyncio
async def test_v3_hung_rig_accepts_and_never_answers(fleet: RigFleet) -> None:
    await fleet.inject(RIG, "hung")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):  # a bound, not a measurement: hung never answers
            await v3(fleet, {"cmd": "get.device.info"})


@pytest.mark.asyncio
async def test_v3_listener_closes_while_offline(fleet: RigFleet) -> None:
    await fleet.inject(RIG, "offline")
    assert fleet.family_port_of(RIG) is None
    await fleet.clear(RIG)
    assert fleet.family_port_of(RIG)


# ---------------------------------------------------------------- API v2 on 4028


@pytest.mark.asyncio
async def test_v2_token_and_status_have_the_fixture_layout(fleet: RigFleet) -> None:
    token = await v2(fleet, {"cmd": "get_token"})
    same_shape(token, load(FIX, "v2_get_token"))
    assert token["STATUS"] == "S" and token["Code"] == 134
    status = await v2(fleet, {"command": "status"})
    same_shape(status, load(FIX, "v2_status"))
    assert status["Msg"]["mineroff"] == "false"


async def _privileged(fleet: RigFleet, body: dict[str, Any], password: str = "super") -> Any:
    msg = (await v2(fleet, {"cmd": "get_token"}))["Msg"]
    tok = v2_token(password, msg["time"], msg["salt"], msg["newsalt"])
    reply = await v2(
        fleet, {"enc": 1, "data": aes_encrypt(tok.aes_key, {**body, "token": tok.sign})}
    )
    if "enc" in reply:
        return aes_decrypt(tok.aes_key, reply["enc"])
    return reply


@pytest.mark.asyncio
async def test_v2_privileged_power_off_on_and_percent(fleet: RigFleet) -> None:
    rig = fleet.rigs[RIG]
    off = await _privileged(fleet, {"cmd": "power_off", "respbefore": "true"})
    same_shape(off, load(FIX, "v2_privileged_ok"))
    assert off["Code"] == 131 and not rig.awake
    status = await v2(fleet, {"command": "status"})
    same_shape(status, load(FIX, "v2_status-off"))
    assert status["Msg"]["mineroff"] == "true"
    await _privileged(fleet, {"cmd": "power_on"})
    assert rig.awake
    pct = await _privileged(fleet, {"cmd": "set_power_pct", "percent": "80"})
    assert pct["Code"] == 131
    assert rig.power_limit_w == pytest.approx(rig.model.nominal_power_w * 0.80)
    bad = await _privileged(fleet, {"cmd": "set_power_pct", "percent": "180"})
    assert bad["Code"] == 14


@pytest.mark.asyncio
async def test_v2_wrong_password_is_a_plain_token_error(fleet: RigFleet) -> None:
    reply = await _privileged(fleet, {"cmd": "power_off", "respbefore": "true"}, "admin")
    same_shape(reply, load(FIX, "v2_privileged_token_error"))
    assert reply["Code"] == 135 and fleet.rigs[RIG].awake


def test_token_flow_matches_the_passlib_vector() -> None:
    vec = load(FIX, "v2_token_vector")
    tok = v2_token(vec["password"], vec["time"], vec["salt"], vec["newsalt"])
    assert tok.sign == vec["sign"]
    assert tok.aes_key.hex() == vec["aes_key_sha256_hex"]
    req = load(FIX, "v3_set.miner.service.request")
    salt = load(FIX, "v3_get.device.info-salt")["msg"]["salt"]
    assert v3_token(req["cmd"], "super", salt, req["ts"]) == req["token"]
