"""The simulated Braiins OS+ gRPC server answers like the fixtures (same fields, same types,
same units) and guards its API as the firmware does: login token in body and header, bare
`authorization` metadata, UNAUTHENTICATED without it. Replies are decoded with pyasic's own
bos.v1 classes (an independent decoder), then compared with the fixtures' proto3 JSON.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import betterproto
import grpc
import grpc.aio
import pytest
import pytest_asyncio
from pyasic.web.braiins_os.proto.braiins.bos import ApiVersion
from pyasic.web.braiins_os.proto.braiins.bos.v1 import (
    GetMinerDetailsResponse,
    GetMinerStatsResponse,
    LoginResponse,
    PauseMiningResponse,
    PerformanceMode,
    ResumeMiningResponse,
    SetPowerTargetResponse,
)
from sim_fleet import manual_fleet

from minerd.model import RigProtocol
from minerd.sim import cgminer
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec
from minerd.transports.bos_messages import (
    LoginRequest,
    SaveAction,
    SetPowerTargetRequest,
    SetQuickRampingRequest,
    method,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "firmware" / "braiins-grpc"
RIG = "c001-r001"
Json = object


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.BRAIINS),),
        rig_port=0,
        grpc_port=0,
        base_octet=114,
    )
    async with manual_fleet(spec, start_s=1_764_400_000.0, warm_up_s=600) as f:
        yield f


@pytest_asyncio.fixture
async def channel(fleet: RigFleet) -> AsyncIterator[grpc.aio.Channel]:
    port = fleet.family_port_of(RIG)
    async with grpc.aio.insecure_channel(f"{fleet.rigs[RIG].plan.host}:{port}") as chan:
        yield chan


async def _call(
    chan: grpc.aio.Channel, service: str, name: str, body: bytes = b"", token: str | None = None
) -> tuple[bytes, dict[str, str]]:
    package = "braiins.bos" if service == "ApiVersionService" else "braiins.bos.v1"
    rpc = chan.unary_unary(method(service, name, package))
    call = rpc(body, metadata=(("authorization", token),) if token else None, timeout=10)
    reply: bytes = await call
    header = {k: str(v) for k, v in (await call.initial_metadata() or ())}
    return reply, header


async def _login(
    chan: grpc.aio.Channel, password: str = "root"
) -> tuple[LoginResponse, dict[str, str]]:
    reply, header = await _call(
        chan, "AuthenticationService", "Login", LoginRequest("root", password).encode()
    )
    return LoginResponse().parse(reply), header


def _fixture(name: str) -> dict[str, Json]:
    data: dict[str, Json] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def _same_shape(fixture: Json, sim: Json, path: str = "") -> None:
    """Every field of the fixture is in the sim's reply with the same JSON type, and the sim
    sends nothing the fixture does not have."""
    if isinstance(fixture, dict):
        assert isinstance(sim, dict), path
        for key, value in fixture.items():
            assert key in sim, f"{path}.{key} missing from the simulator's reply"
            _same_shape(value, sim[key], f"{path}.{key}")
        return
    assert type(sim) is type(fixture), f"{path}: {type(sim).__name__} vs {type(fixture).__name__}"


def _sim_dict(msg: betterproto.Message) -> dict[str, Json]:
    full: dict[str, Json] = msg.to_dict(include_default_values=True)
    return full


def _sent(msg: betterproto.Message) -> dict[str, Json]:
    sent: dict[str, Json] = msg.to_dict()
    return sent


def _keys(d: Json, path: str = "") -> set[str]:
    if not isinstance(d, dict):
        return set()
    out = set()
    for k, v in d.items():
        out.add(f"{path}.{k}")
        out |= _keys(v, f"{path}.{k}")
    return out


@pytest.mark.asyncio
async def test_login_gives_the_token_in_body_and_header(channel: grpc.aio.Channel) -> None:
    body, header = await _login(channel)
    assert body.token and header["authorization"] == body.token
    assert body.timeout_s == _fixture("login")["timeoutS"]
    _same_shape(_fixture("login"), _sim_dict(body))
    _same_shape(_fixture("login.headers"), header)


@pytest.mark.asyncio
async def test_a_wrong_password_and_a_missing_token_are_unauthenticated(
    channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _login(channel, password="nope")
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(channel, "ActionsService", "PauseMining")
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(channel, "ActionsService", "PauseMining", token="Bearer x")
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    version, _ = await _call(channel, "ApiVersionService", "GetApiVersion")  # no auth needed
    _same_shape(_fixture("get_api_version"), _sim_dict(ApiVersion().parse(version)))


@pytest.mark.asyncio
async def test_reads_match_the_fixtures_and_the_rig(
    fleet: RigFleet, channel: grpc.aio.Channel
) -> None:
    token = (await _login(channel))[0].token
    now_s = fleet.clock.now_s()
    view = fleet.rigs[RIG].view(now_s)

    raw, _ = await _call(channel, "MinerService", "GetMinerStats", token=token)
    stats = GetMinerStatsResponse().parse(raw)
    assert stats.power_stats.approximated_consumption.watt == round(view.power_w)
    # GH/s on the wire (gotcha 8.1)
    assert stats.miner_stats.real_hashrate.last_5_s.gigahash_per_second == pytest.approx(
        view.hashrate_ths * 1000
    )
    fixture = _fixture("get_miner_stats")
    assert isinstance(fixture["powerStats"], dict)
    _same_shape(fixture["powerStats"], _sim_dict(stats)["powerStats"])

    raw, _ = await _call(channel, "MinerService", "GetMinerDetails", token=token)
    details = GetMinerDetailsResponse().parse(raw)
    assert details.status == 2  # MINER_STATUS_NORMAL
    assert details.miner_identity.miner_model == "Antminer S19j Pro"
    _same_shape(_fixture("get_miner_details"), _sim_dict(details))
    assert _keys(_sent(details)) <= _keys(_fixture("get_miner_details"))

    raw, _ = await _call(channel, "PerformanceService", "GetActivePerformanceMode", token=token)
    mode = PerformanceMode().parse(raw)
    nominal_w = round(fleet.rigs[RIG].model.nominal_power_w)
    assert mode.tuner_mode.power_target.power_target.watt == nominal_w
    assert _sent(mode).keys() == _fixture("get_active_performance_mode").keys()
    _same_shape(_fixture("get_active_performance_mode"), _sim_dict(mode))


@pytest.mark.asyncio
async def test_commands_move_the_rig_and_echo_like_the_fixtures(
    fleet: RigFleet, channel: grpc.aio.Channel
) -> None:
    token = (await _login(channel))[0].token
    sim = fleet.rigs[RIG]

    raw, _ = await _call(channel, "ActionsService", "PauseMining", token=token)
    assert PauseMiningResponse().parse(raw).already_paused is False
    assert sim.awake is False
    raw, _ = await _call(channel, "ActionsService", "PauseMining", token=token)
    paused = PauseMiningResponse().parse(raw)
    assert paused.already_paused is True
    _same_shape(_fixture("pause_mining"), _sim_dict(paused))
    raw, _ = await _call(channel, "MinerService", "GetMinerDetails", token=token)
    assert GetMinerDetailsResponse().parse(raw).status == 3  # MINER_STATUS_PAUSED

    raw, _ = await _call(channel, "ActionsService", "ResumeMining", token=token)
    assert ResumeMiningResponse().parse(raw).already_mining is False
    assert sim.awake is True

    request = SetPowerTargetRequest(SaveAction.SAVE_AND_APPLY, 2750).encode()
    raw, _ = await _call(channel, "PerformanceService", "SetPowerTarget", request, token=token)
    echoed = SetPowerTargetResponse().parse(raw)
    assert echoed.power_target.watt == 2750
    assert sim.power_limit_w == 2750
    _same_shape(_fixture("set_power_target"), _sim_dict(echoed))

    request = SetQuickRampingRequest(SaveAction.SAVE_AND_APPLY, 30, 5).encode()
    raw, _ = await _call(channel, "PerformanceService", "SetQuickRamping", request, token=token)
    # pyasic has no stub for this reply: QuickRampingResponse {up_s = 1, down_s = 2}
    fixture = _fixture("set_quick_ramping")
    assert raw == bytes([0x08, fixture["upS"], 0x10, fixture["downS"]])


@pytest.mark.asyncio
async def test_ignores_commands_answers_yes_and_does_nothing(
    fleet: RigFleet, channel: grpc.aio.Channel
) -> None:
    token = (await _login(channel))[0].token
    await fleet.inject(RIG, "ignores_commands")
    raw, _ = await _call(channel, "ActionsService", "PauseMining", token=token)
    assert PauseMiningResponse().parse(raw).already_paused is False
    assert fleet.rigs[RIG].awake is True


@pytest.mark.asyncio
async def test_an_offline_rig_has_no_grpc_listener_until_cleared(fleet: RigFleet) -> None:
    await fleet.inject(RIG, "offline")
    assert fleet.family_port_of(RIG) is None
    await fleet.clear(RIG)
    port = fleet.family_port_of(RIG)
    assert port
    async with grpc.aio.insecure_channel(f"{fleet.rigs[RIG].plan.host}:{port}") as chan:
        body, _ = await _login(chan)
    assert body.token


def test_legacy_devdetails_matches_the_fixture(fleet: RigFleet) -> None:
    reply = cgminer.handle(fleet.rigs[RIG], "devdetails", "", fleet.clock.now_s())
    fixture = _fixture("legacy-devdetails")
    assert isinstance(reply["DEVDETAILS"], list) and isinstance(fixture["DEVDETAILS"], list)
    assert reply["DEVDETAILS"][0].keys() == fixture["DEVDETAILS"][0].keys()
    _same_shape(fixture["DEVDETAILS"][0], reply["DEVDETAILS"][0])
    assert reply["DEVDETAILS"][0]["Model"] == "Bitmain Antminer S19j Pro"
    assert "BOSminer" in str(reply["STATUS"])
