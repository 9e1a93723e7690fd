"""Block planning and register decoding/encoding, checked against struct-packed wire words."""

from __future__ import annotations

import itertools
import math

import pytest
from modbus_test_server import words

from minerd.devices.modbus_codec import (
    Block,
    decode_block,
    decode_point,
    encode_point,
    plan_blocks,
)
from minerd.model import ByteOrder, RegisterPoint, RegisterType, WordOrder
from minerd.profiles import load_meter_map, load_rig_register_map

SAMPLES: dict[str, list[float]] = {
    "int16": [0, 1, -1, -32768, 32767],
    "uint16": [0, 1, 65535, 0x1234],
    "int32": [0, -1, -(2**31), 2**31 - 1, 0x12345678],
    "uint32": [0, 2**32 - 1, 0x12345678],
    "int64": [0, -1, -(2**63), 2**63 - 1, 987_654_321],
    "uint64": [0, 2**64 - 1, 0x0123456789ABCDEF],
    "float32": [0.0, -1.5, 230.125, 1e30],
}
ORDERS = list(itertools.product(ByteOrder, WordOrder))


def _point(
    type_: str,
    scale: float = 1.0,
    *,
    writable: bool = False,
    min_value: float | None = None,
    max_value: float | None = None,
) -> RegisterPoint:
    return RegisterPoint(
        name="p",
        address=0,
        type=RegisterType(type_),
        scale=scale,
        unit="W",
        writable=writable,
        min_value=min_value,
        max_value=max_value,
    )


@pytest.mark.parametrize("type_", list(SAMPLES))
@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
def test_decode_every_type_and_order(
    type_: str, byte_order: ByteOrder, word_order: WordOrder
) -> None:
    point = _point(type_)
    for raw in SAMPLES[type_]:
        regs = words(
            type_,
            raw,
            little_bytes=byte_order is ByteOrder.LITTLE,
            low_first=word_order is WordOrder.LOW_FIRST,
        )
        got = decode_point(point, regs, byte_order, word_order)
        assert got == pytest.approx(float(raw), rel=1e-7), (raw, regs)


def test_word_and_byte_order_change_the_meaning() -> None:
    regs = [0x1234, 0x5678]
    p = _point("uint32")
    assert decode_point(p, regs, ByteOrder.BIG, WordOrder.HIGH_FIRST) == 0x12345678
    assert decode_point(p, regs, ByteOrder.BIG, WordOrder.LOW_FIRST) == 0x56781234
    assert decode_point(p, regs, ByteOrder.LITTLE, WordOrder.HIGH_FIRST) == 0x34127856
    assert decode_point(p, regs, ByteOrder.LITTLE, WordOrder.LOW_FIRST) == 0x78563412


def test_scale_applies() -> None:
    assert decode_point(
        _point("int32", 0.1), words("int32", -12345), ByteOrder.BIG, WordOrder.HIGH_FIRST
    ) == pytest.approx(-1234.5)
    assert decode_point(
        _point("uint16", 0.01), [1050], ByteOrder.BIG, WordOrder.HIGH_FIRST
    ) == pytest.approx(10.5)


def test_decode_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="float32 needs 2 registers, got 1"):
        decode_point(_point("float32"), [0], ByteOrder.BIG, WordOrder.HIGH_FIRST)


def test_nan_float_decodes_as_nan() -> None:
    # The reader turns a non-finite value into a ProtocolError naming the point.
    assert math.isnan(
        decode_point(_point("float32"), [0x7FC0, 0], ByteOrder.BIG, WordOrder.HIGH_FIRST)
    )


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
def test_encode_round_trips(byte_order: ByteOrder, word_order: WordOrder) -> None:
    cases = [
        ("uint32", 1.0, 3200.0),
        ("int16", 0.1, -12.3),
        ("float32", 1.0, 2.5),
        ("int64", 1.0, -7.0),
    ]
    for type_, scale, value in cases:
        p = _point(type_, scale, writable=True, min_value=-5000.0, max_value=5000.0)
        regs = encode_point(p, value, byte_order, word_order)
        assert len(regs) == p.register_count
        assert decode_point(p, regs, byte_order, word_order) == pytest.approx(value)


def test_encode_checks_bounds_and_writability() -> None:
    p = _point("uint16", writable=True, min_value=0.0, max_value=1.0)
    assert encode_point(p, 1, ByteOrder.BIG, WordOrder.HIGH_FIRST) == [1]
    with pytest.raises(ValueError, match="above max"):
        encode_point(p, 2, ByteOrder.BIG, WordOrder.HIGH_FIRST)
    with pytest.raises(ValueError, match="below min"):
        encode_point(p, -1, ByteOrder.BIG, WordOrder.HIGH_FIRST)
    with pytest.raises(ValueError, match="not writable"):
        encode_point(_point("uint16"), 1, ByteOrder.BIG, WordOrder.HIGH_FIRST)
    wide = _point("uint16", writable=True, min_value=0.0, max_value=1e6)
    with pytest.raises(ValueError, match="does not fit uint16"):
        encode_point(wide, 70_000, ByteOrder.BIG, WordOrder.HIGH_FIRST)


def _spans(blocks: tuple[Block, ...]) -> list[tuple[int, int]]:
    return [(b.address, b.count) for b in blocks]


def test_plans_for_the_shipped_maps() -> None:
    assert _spans(plan_blocks(load_meter_map("eastron-sdm630").points)) == [(0, 76)]
    assert _spans(plan_blocks(load_meter_map("janitza-umg604").points)) == [(19000, 78)]
    legacy = load_meter_map("janitza-umg604-legacy").points
    assert _spans(plan_blocks(legacy)) == [(1317, 54), (9851, 14)]
    assert _spans(plan_blocks(load_meter_map("schneider-iem3000").points)) == [
        (2999, 62),
        (3203, 8),
    ]
    assert _spans(plan_blocks(load_meter_map("generic-modbus-meter").points)) == [(0, 12)]
    assert _spans(plan_blocks(load_rig_register_map("container-plc-rig").points)) == [(0, 14)]


def test_plan_without_gaps_and_within_125() -> None:
    sdm = load_meter_map("eastron-sdm630").points
    assert _spans(plan_blocks(sdm, max_gap=0)) == [(0, 18), (52, 2), (72, 4)]
    many = [RegisterPoint(f"p{i}", i * 2, RegisterType.FLOAT32, 1.0, "W") for i in range(100)]
    blocks = plan_blocks(many)
    assert _spans(blocks) == [(0, 124), (124, 76)]  # never split a point, never above 125
    assert all(not b.has_gaps for b in blocks)
    assert plan_blocks(sdm)[0].has_gaps


def test_decode_block_maps_offsets() -> None:
    m = load_meter_map("eastron-sdm630")
    (block,) = plan_blocks(m.points)
    regs = [0] * block.count
    regs[52:54] = words("float32", 7200.0)
    regs[74:76] = words("float32", 12.25)
    values = decode_block(block, regs, m.byte_order, m.word_order)
    assert values["power_w"] == 7200.0
    assert values["energy_export_kwh"] == 12.25
    assert values["voltage_l1_v"] == 0.0
    assert set(values) == {p.name for p in m.points}
