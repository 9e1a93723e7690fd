"""minerd's minimal protobuf codec: the wire forms the Braiins messages rely on."""

from __future__ import annotations

import struct

import pytest

from minerd.transports.bos_messages import LoginRequest, MinerStats, PowerTargetMode
from minerd.transports.protowire import (
    WireError,
    double_field,
    message_field,
    parse,
    string_field,
    uint_field,
)


def test_varints_and_defaults() -> None:
    assert uint_field(1, 0) == b""  # proto3 leaves defaults off the wire
    assert uint_field(1, 3250) == b"\x08\xb2\x19"
    assert uint_field(2, True) == b"\x10\x01"
    big = parse(uint_field(1, 2**64 - 1))
    assert big.uint(1) == 2**64 - 1
    assert parse(uint_field(1, -1)).uint(1) == 2**64 - 1  # negative enum: 10-byte varint


def test_doubles_strings_and_nested_messages() -> None:
    assert double_field(1, 1.5) == b"\x09" + struct.pack("<d", 1.5)
    nested = message_field(3, string_field(1, "héllo") + double_field(2, 104000.25))
    f = parse(nested).message(3)
    assert (f.string(1), f.double(2)) == ("héllo", 104000.25)
    assert message_field(4, b"") == b"" and message_field(4, b"", always=True) == b"\x22\x00"


def test_unknown_fields_are_skipped_and_the_last_scalar_wins() -> None:
    extra = b"\x2d\x01\x02\x03\x04"  # field 5, fixed32: a newer firmware's field
    data = uint_field(1, 7) + extra + string_field(9, "x") + uint_field(1, 8)
    assert parse(data).uint(1) == 8
    assert parse(data).has(9) and not parse(data).has(2)


@pytest.mark.parametrize(
    "data",
    [b"\x08", b"\x0a\x05ab", b"\x09\x00\x00", b"\x0b", b"\x00\x01", b"\x08" + b"\xff" * 11],
)
def test_broken_bytes_are_a_wire_error(data: bytes) -> None:
    with pytest.raises(WireError):
        parse(data)


def test_type_mismatch_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        parse(string_field(1, "3250")).uint(1)
    with pytest.raises(WireError):
        parse(uint_field(1, 5)).string(1)


def test_messages_round_trip_and_hide_secrets() -> None:
    req = LoginRequest("root", "s3cret")
    assert LoginRequest.decode(req.encode()) == req
    assert "s3cret" not in repr(req)
    stats = MinerStats(power_w=3068, hashrate_5s_ghs=104000.5, hashrate_1m_ghs=0.0, nominal_ghs=1.0)
    assert MinerStats.decode(stats.encode()) == stats
    assert PowerTargetMode.decode_performance_mode(b"") is None  # manual mode: no target
    assert PowerTargetMode.decode_performance_mode(
        PowerTargetMode(0).encode_performance_mode()
    ) == PowerTargetMode(0)
