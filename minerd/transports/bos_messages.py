"""The Braiins OS+ gRPC messages minerd uses (package braiins.bos.v1), written for minerd.

Only the fields minerd reads or writes; field numbers and types as the firmware puts them on
the wire (firmware-apis.md 6: authentication, actions, performance, miner, units, version).
Every message encodes to and decodes from protobuf bytes with minerd.transports.protowire.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from minerd.transports.protowire import (
    double_field,
    join,
    message_field,
    parse,
    string_field,
    uint_field,
)

__all__ = [
    "ActionResponse",
    "ApiVersion",
    "Empty",
    "LoginRequest",
    "LoginResponse",
    "MinerDetails",
    "MinerStats",
    "MinerStatus",
    "PowerTargetMode",
    "QuickRamping",
    "SaveAction",
    "SetPowerTargetRequest",
    "SetQuickRampingRequest",
    "method",
]

PACKAGE = "braiins.bos.v1"


def method(service: str, name: str, package: str = PACKAGE) -> str:
    """The HTTP/2 path of an RPC: /braiins.bos.v1.ActionsService/PauseMining."""
    return f"/{package}.{service}/{name}"


class SaveAction(IntEnum):
    UNSPECIFIED = 0
    SAVE = 1
    SAVE_AND_APPLY = 2
    SAVE_AND_FORCE_APPLY = 3


class MinerStatus(IntEnum):
    UNSPECIFIED = 0
    NOT_STARTED = 1
    NORMAL = 2
    PAUSED = 3
    SUSPENDED = 4
    RESTRICTED = 5


def _power(watt: int) -> bytes:  # Power {uint64 watt = 1}
    return uint_field(1, watt)


def _giga(ghs: float) -> bytes:  # GigaHashrate {double gigahash_per_second = 1}
    return double_field(1, ghs)


@dataclass(frozen=True)
class Empty:
    """Every request without fields (PauseMining, GetMinerStats, ...)."""

    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, data: bytes) -> Empty:
        parse(data)  # still refuse garbage
        return cls()


@dataclass(frozen=True)
class LoginRequest:
    username: str  # 1
    password: str  # 2

    def __repr__(self) -> str:  # the password never reaches a log line
        return f"LoginRequest(username={self.username!r}, password=<hidden>)"

    def encode(self) -> bytes:
        return string_field(1, self.username) + string_field(2, self.password)

    @classmethod
    def decode(cls, data: bytes) -> LoginRequest:
        f = parse(data)
        return cls(f.string(1), f.string(2))


@dataclass(frozen=True)
class LoginResponse:
    token: str  # 1 (empty on firmware that sends it only in the `authorization` header)
    timeout_s: int  # 2, uint32: idle seconds until the token expires

    def __repr__(self) -> str:
        return f"LoginResponse(token=<hidden>, timeout_s={self.timeout_s})"

    def encode(self) -> bytes:
        return string_field(1, self.token) + uint_field(2, self.timeout_s)

    @classmethod
    def decode(cls, data: bytes) -> LoginResponse:
        f = parse(data)
        return cls(f.string(1), f.uint(2))


@dataclass(frozen=True)
class ActionResponse:
    """PauseMiningResponse {already_paused = 1} / ResumeMiningResponse {already_mining = 1}."""

    already: bool

    def encode(self) -> bytes:
        return uint_field(1, self.already)

    @classmethod
    def decode(cls, data: bytes) -> ActionResponse:
        return cls(parse(data).flag(1))


@dataclass(frozen=True)
class SetPowerTargetRequest:
    save_action: SaveAction  # 1
    watt: int  # 2: Power power_target

    def encode(self) -> bytes:
        return uint_field(1, self.save_action) + message_field(2, _power(self.watt), always=True)

    @classmethod
    def decode(cls, data: bytes) -> SetPowerTargetRequest:
        f = parse(data)
        return cls(SaveAction(f.uint(1)), f.message(2).uint(1))


@dataclass(frozen=True)
class PowerTargetMode:
    """SetPowerTargetResponse {Power power_target = 1} has the same layout as
    PowerTargetMode; GetActivePerformanceMode wraps it as
    PerformanceMode{tuner_mode = 2 {power_target = 1 {power_target = 1 {watt = 1}}}}."""

    watt: int

    def encode(self) -> bytes:
        return message_field(1, _power(self.watt), always=True)

    @classmethod
    def decode(cls, data: bytes) -> PowerTargetMode:
        return cls(parse(data).message(1).uint(1))

    def encode_performance_mode(self) -> bytes:
        return message_field(2, message_field(1, self.encode(), always=True), always=True)

    @classmethod
    def decode_performance_mode(cls, data: bytes) -> PowerTargetMode | None:
        """The tuner's power target, None in manual or hashrate-target mode."""
        tuner = parse(data)
        if not tuner.has(2):
            return None
        mode = tuner.message(2)
        if not mode.has(1):
            return None
        return cls.decode(mode.bytes_(1))


@dataclass(frozen=True)
class SetQuickRampingRequest:
    save_action: SaveAction  # 1
    up_s: int  # 2, uint32: ramp time when resuming
    down_s: int  # 3, uint32: ramp time when pausing

    def encode(self) -> bytes:
        return join(
            (uint_field(1, self.save_action), uint_field(2, self.up_s), uint_field(3, self.down_s))
        )

    @classmethod
    def decode(cls, data: bytes) -> SetQuickRampingRequest:
        f = parse(data)
        return cls(SaveAction(f.uint(1)), f.uint(2), f.uint(3))


@dataclass(frozen=True)
class QuickRamping:
    """QuickRampingResponse {up_s = 1, down_s = 2}."""

    up_s: int
    down_s: int

    def encode(self) -> bytes:
        return uint_field(1, self.up_s) + uint_field(2, self.down_s)

    @classmethod
    def decode(cls, data: bytes) -> QuickRamping:
        f = parse(data)
        return cls(f.uint(1), f.uint(2))


@dataclass(frozen=True)
class MinerStats:
    """GetMinerStatsResponse: miner_stats = 2 (WorkSolverStats {real_hashrate = 1
    {last_5s = 1, last_1m = 4}, nominal_hashrate = 2}, GH/s doubles), power_stats = 3
    (MinerPowerStats {approximated_consumption = 1 Power})."""

    power_w: int
    hashrate_5s_ghs: float
    hashrate_1m_ghs: float
    nominal_ghs: float

    def encode(self) -> bytes:
        real = message_field(1, _giga(self.hashrate_5s_ghs)) + message_field(
            4, _giga(self.hashrate_1m_ghs)
        )
        solver = message_field(1, real) + message_field(2, _giga(self.nominal_ghs))
        power = message_field(1, _power(self.power_w), always=True)
        return message_field(2, solver, always=True) + message_field(3, power, always=True)

    @classmethod
    def decode(cls, data: bytes) -> MinerStats:
        f = parse(data)
        solver = f.message(2)
        real = solver.message(1)
        return cls(
            power_w=f.message(3).message(1).uint(1),
            hashrate_5s_ghs=real.message(1).double(1),
            hashrate_1m_ghs=real.message(4).double(1),
            nominal_ghs=solver.message(2).double(1),
        )


@dataclass(frozen=True)
class MinerDetails:
    """GetMinerDetailsResponse: uid = 1, miner_identity = 2 {name = 3, miner_model = 4},
    bos_version = 5 {current = 1, major = 2, bos_plus = 3}, hostname = 6,
    bosminer_uptime_s = 10, system_uptime_s = 11, status = 12 (MinerStatus)."""

    uid: str
    miner_model: str
    hostname: str
    bos_version: str
    status: MinerStatus
    bosminer_uptime_s: int
    system_uptime_s: int

    def encode(self) -> bytes:
        identity = string_field(3, self.miner_model) + string_field(4, self.miner_model)
        version = join(
            (string_field(1, self.bos_version), string_field(2, "v1"), uint_field(3, True))
        )
        return join(
            (
                string_field(1, self.uid),
                message_field(2, identity),
                message_field(5, version),
                string_field(6, self.hostname),
                uint_field(10, self.bosminer_uptime_s),
                uint_field(11, self.system_uptime_s),
                uint_field(12, self.status),
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> MinerDetails:
        f = parse(data)
        raw_status = f.uint(12)
        known = raw_status in {s.value for s in MinerStatus}
        status = MinerStatus(raw_status) if known else MinerStatus.UNSPECIFIED
        return cls(
            uid=f.string(1),
            miner_model=f.message(2).string(4),
            hostname=f.string(6),
            bos_version=f.message(5).string(1),
            status=status,
            bosminer_uptime_s=f.uint(10),
            system_uptime_s=f.uint(11),
        )


@dataclass(frozen=True)
class ApiVersion:
    """braiins.bos.ApiVersion {major = 1, minor = 2, patch = 3 (uint64), pre = 4, build = 5}."""

    major: int
    minor: int
    patch: int

    def encode(self) -> bytes:
        return join(
            (uint_field(1, self.major), uint_field(2, self.minor), uint_field(3, self.patch))
        )

    @classmethod
    def decode(cls, data: bytes) -> ApiVersion:
        f = parse(data)
        return cls(f.uint(1), f.uint(2), f.uint(3))
