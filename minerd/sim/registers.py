"""Encode and decode values in Modbus registers the way a RegisterMap describes them."""

from __future__ import annotations

import struct

from minerd.model import ByteOrder, RegisterMap, RegisterPoint, RegisterType, WordOrder
from minerd.profiles import to_canonical


def _factor(unit: str) -> float:
    """Multiply a value in `unit` by this to get minerd's canonical unit (kW -> W...)."""
    try:
        return to_canonical(1.0, unit)
    except KeyError:
        return 1.0


def encode_point(point: RegisterPoint, regmap: RegisterMap, value: float) -> list[int]:
    """Registers for `value`, given in the canonical unit of the point's name."""
    in_unit = value / _factor(point.unit)
    raw: float = in_unit / point.scale if point.scale else in_unit
    fmt = point.type.struct_format
    if point.type is RegisterType.FLOAT32:
        data = struct.pack(fmt, raw)
    else:
        n = round(raw)
        bits = 16 * point.type.register_count
        signed = point.type.value.startswith("int")
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        data = struct.pack(fmt, min(hi, max(lo, n)))
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if regmap.byte_order is ByteOrder.LITTLE:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if regmap.word_order is WordOrder.LOW_FIRST:
        words.reverse()
    return words


def decode_point(point: RegisterPoint, regmap: RegisterMap, words: list[int]) -> float:
    """The value of registers written by a client, in the canonical unit of the point's name."""
    ws = list(words)
    if regmap.word_order is WordOrder.LOW_FIRST:
        ws.reverse()
    if regmap.byte_order is ByteOrder.LITTLE:
        ws = [((w & 0xFF) << 8) | (w >> 8) for w in ws]
    data = b"".join(w.to_bytes(2, "big") for w in ws)
    raw = float(struct.unpack(point.type.struct_format, data)[0])
    value = raw * point.scale if point.scale else raw
    return value * _factor(point.unit)


def block_size(regmap: RegisterMap) -> int:
    return max((p.address + p.register_count for p in regmap.points), default=1)


def fill(regmap: RegisterMap, values: dict[str, float], registers: list[int]) -> None:
    """Write every point of the map into `registers` (index = wire address)."""
    for point in regmap.points:
        value = values.get(point.name, 0.0)
        words = encode_point(point, regmap, value)
        registers[point.address : point.address + len(words)] = words
