"""Register maps on the wire: plan block reads, decode registers to values, encode writes.

Pure functions, no I/O. Values here are in the point's declared unit (raw * scale); the
conversion to canonical units (kW -> W, Wh -> kWh) is the caller's, via minerd.profiles.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from minerd.model import ByteOrder, RegisterPoint, RegisterType, WordOrder

MAX_BLOCK_REGISTERS: Final = 125  # Modbus limit for one FC3/FC4 read
# Reading a few unused registers costs less than another round trip on a shared link.
DEFAULT_MAX_GAP: Final = 64


@dataclass(frozen=True)
class Block:
    """One read request: `count` registers from `address`, covering `points`."""

    address: int
    count: int
    points: tuple[RegisterPoint, ...]

    @property
    def end(self) -> int:
        """One past the last register."""
        return self.address + self.count

    @property
    def has_gaps(self) -> bool:
        return sum(p.register_count for p in self.points) < self.count


def plan_blocks(
    points: Iterable[RegisterPoint],
    *,
    max_gap: int = DEFAULT_MAX_GAP,
    max_count: int = MAX_BLOCK_REGISTERS,
) -> tuple[Block, ...]:
    """Merge points into the fewest reads: a gap up to max_gap registers is read and ignored."""
    ordered = sorted(points, key=lambda p: p.address)
    blocks: list[Block] = []
    start = 0
    members: list[RegisterPoint] = []
    end = 0
    for p in ordered:
        p_end = p.address + p.register_count
        if members and p.address - end <= max_gap and p_end - start <= max_count:
            members.append(p)
            end = max(end, p_end)
            continue
        if members:
            blocks.append(Block(start, end - start, tuple(members)))
        start, end, members = p.address, p_end, [p]
    if members:
        blocks.append(Block(start, end - start, tuple(members)))
    return tuple(blocks)


def _to_bytes(registers: Sequence[int], byte_order: ByteOrder, word_order: WordOrder) -> bytes:
    words = list(registers)
    if word_order is WordOrder.LOW_FIRST:
        words.reverse()
    big = byte_order is ByteOrder.BIG
    return b"".join(w.to_bytes(2, "big" if big else "little") for w in words)


def _from_bytes(data: bytes, byte_order: ByteOrder, word_order: WordOrder) -> list[int]:
    big = byte_order is ByteOrder.BIG
    words = [
        int.from_bytes(data[i : i + 2], "big" if big else "little") for i in range(0, len(data), 2)
    ]
    if word_order is WordOrder.LOW_FIRST:
        words.reverse()
    return words


def decode_raw(
    rtype: RegisterType, registers: Sequence[int], byte_order: ByteOrder, word_order: WordOrder
) -> float:
    """The unscaled number held by `registers` (exactly rtype.register_count of them)."""
    if len(registers) != rtype.register_count:
        raise ValueError(
            f"{rtype.value} needs {rtype.register_count} registers, got {len(registers)}"
        )
    (value,) = struct.unpack(rtype.struct_format, _to_bytes(registers, byte_order, word_order))
    return float(value)


def decode_point(
    point: RegisterPoint, registers: Sequence[int], byte_order: ByteOrder, word_order: WordOrder
) -> float:
    """raw * scale, in point.unit."""
    return decode_raw(point.type, registers, byte_order, word_order) * point.scale


def decode_block(
    block: Block, registers: Sequence[int], byte_order: ByteOrder, word_order: WordOrder
) -> dict[str, float]:
    """Every point of a block read, in its declared unit."""
    if len(registers) != block.count:
        raise ValueError(
            f"block at {block.address} needs {block.count} registers, got {len(registers)}"
        )
    values: dict[str, float] = {}
    for p in block.points:
        offset = p.address - block.address
        values[p.name] = decode_point(
            p, registers[offset : offset + p.register_count], byte_order, word_order
        )
    return values


def encode_point(
    point: RegisterPoint, value: float, byte_order: ByteOrder, word_order: WordOrder
) -> list[int]:
    """Registers that hold `value` (in point.unit) for a write. Checks the point's bounds."""
    if not point.writable:
        raise ValueError(f"point {point.name} is not writable")
    if point.min_value is not None and value < point.min_value:
        raise ValueError(f"{point.name} {value:g} below min {point.min_value:g}")
    if point.max_value is not None and value > point.max_value:
        raise ValueError(f"{point.name} {value:g} above max {point.max_value:g}")
    raw = value / point.scale
    fmt = point.type.struct_format
    try:
        data = struct.pack(fmt, raw if point.type is RegisterType.FLOAT32 else round(raw))
    except struct.error as exc:
        raise ValueError(f"{point.name} {value:g} does not fit {point.type.value}") from exc
    return _from_bytes(data, byte_order, word_order)
