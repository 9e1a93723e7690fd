"""minerd's Braiins OS+ message decoders read the gRPC replies of the fixtures.

The fixtures are proto3 JSON as grpcurl prints the firmware's replies (uint64 as strings,
enums by name). pyasic's own generated bos.v1 classes (betterproto, an independent encoder)
turn each into wire bytes, so minerd's field numbers are checked against a second reading
of the real protos, not against the simulator that shares them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import betterproto
import pytest
from pyasic.web.braiins_os.proto.braiins.bos import ApiVersion as PaApiVersion
from pyasic.web.braiins_os.proto.braiins.bos.v1 import (
    GetMinerDetailsResponse,
    GetMinerStatsResponse,
    GigaHashrate,
    PauseMiningResponse,
    PerformanceMode,
    RealHashrate,
    ResumeMiningResponse,
    SetPowerTargetResponse,
)
from pyasic.web.braiins_os.proto.braiins.bos.v1 import (
    LoginResponse as PaLoginResponse,
)

from minerd.transports.bos_messages import (
    ActionResponse,
    ApiVersion,
    LoginResponse,
    MinerDetails,
    MinerStats,
    MinerStatus,
    PowerTargetMode,
    QuickRamping,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "firmware" / "braiins-grpc"


def _wire(name: str, cls: type[betterproto.Message]) -> bytes:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    if isinstance(data.get("status"), str):  # betterproto names enum values without prefix
        data["status"] = data["status"].removeprefix("MINER_STATUS_")
    real = data.get("minerStats", {}).pop("realHashrate", None)
    msg = cls().from_dict(data)
    if real is not None:
        # betterproto cannot map protoc's JSON name "last5s" back to its field last_5_s
        fields = {
            re.sub(r"(\d+)", r"_\1_", k): GigaHashrate(v["gigahashPerSecond"])
            for k, v in real.items()
        }
        msg.miner_stats.real_hashrate = RealHashrate(**fields)  # type: ignore[attr-defined]
    return bytes(msg)


def test_login_token_and_timeout() -> None:
    got = LoginResponse.decode(_wire("login", PaLoginResponse))
    header = json.loads((FIXTURES / "login.headers.json").read_text())
    assert (got.token, got.timeout_s) == (header["authorization"], 3600)
    assert got.token not in repr(got)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("pause_mining", PauseMiningResponse), ("resume_mining", ResumeMiningResponse)],
)
def test_action_flags(name: str, cls: type[betterproto.Message]) -> None:
    assert ActionResponse.decode(_wire(name, cls)).already is True


def test_power_target_echo_and_active_mode() -> None:
    assert PowerTargetMode.decode(_wire("set_power_target", SetPowerTargetResponse)).watt == 2750
    mode = PowerTargetMode.decode_performance_mode(
        _wire("get_active_performance_mode", PerformanceMode)
    )
    assert mode == PowerTargetMode(3050)


def test_quick_ramping_echo() -> None:
    # pyasic has no SetQuickRamping stub: the bytes are written by hand from the fixture
    # (QuickRampingResponse {uint32 up_s = 1; uint32 down_s = 2}: keys 0x08, 0x10, varints).
    fixture = json.loads((FIXTURES / "set_quick_ramping.json").read_text())
    wire = bytes([0x08, fixture["upS"], 0x10, fixture["downS"]])
    assert QuickRamping.decode(wire) == QuickRamping(up_s=30, down_s=5)


def test_miner_stats_power_and_hashrate_units() -> None:
    got = MinerStats.decode(_wire("get_miner_stats", GetMinerStatsResponse))
    assert got.power_w == 3041  # uint64 watts, a string in proto-JSON
    assert got.hashrate_5s_ghs == pytest.approx(101874.316)  # GH/s, not TH/s
    assert got.hashrate_1m_ghs == pytest.approx(102210.58)
    assert got.nominal_ghs == pytest.approx(104000.0)


def test_miner_details_status_and_model() -> None:
    got = MinerDetails.decode(_wire("get_miner_details", GetMinerDetailsResponse))
    assert got.status is MinerStatus.NORMAL
    assert got.miner_model == "Antminer S19j Pro"
    assert (got.bosminer_uptime_s, got.system_uptime_s) == (48213, 50102)
    assert got.bos_version.endswith("-plus")


def test_api_version() -> None:
    assert ApiVersion.decode(_wire("get_api_version", PaApiVersion)) == ApiVersion(1, 5, 0)
