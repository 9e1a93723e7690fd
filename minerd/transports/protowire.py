"""The protobuf wire format, just enough for the few proto3 messages minerd exchanges.

Encoding: varint (wire type 0), 64-bit (1: doubles), length-delimited (2: strings, bytes,
nested messages); proto3 leaves fields at their default value off the wire. Decoding keeps
every field number's values in order and skips what the caller does not ask for, so a newer
firmware's extra fields are harmless. No generated code and no protobuf runtime needed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

__all__ = [
    "Fields",
    "WireError",
    "double_field",
    "message_field",
    "parse",
    "string_field",
    "uint_field",
]

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10


class WireError(ValueError):
    """The bytes are not a protobuf message (truncated, bad wire type)."""


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # negative int64/enum: two's complement, ten bytes
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def uint_field(number: int, value: int | bool) -> bytes:
    """uint32/uint64/bool/enum; zero is the default and is left off."""
    return _key(number, VARINT) + _varint(int(value)) if value else b""


def double_field(number: int, value: float) -> bytes:
    return _key(number, FIXED64) + struct.pack("<d", value) if value else b""


def string_field(number: int, value: str) -> bytes:
    data = value.encode()
    return _key(number, LENGTH) + _varint(len(data)) + data if data else b""


def message_field(number: int, body: bytes, *, always: bool = False) -> bytes:
    """A nested message; an empty one is sent only when presence matters (`always`)."""
    if not body and not always:
        return b""
    return _key(number, LENGTH) + _varint(len(body)) + body


def join(parts: Iterable[bytes]) -> bytes:
    return b"".join(parts)


class Fields:
    """One decoded message: the values of each field number, raw (int or bytes)."""

    def __init__(self, values: dict[int, list[int | bytes]]) -> None:
        self._values = values

    def _last(self, number: int) -> int | bytes | None:
        got = self._values.get(number)
        return got[-1] if got else None  # proto3: the last value of a scalar wins

    def uint(self, number: int) -> int:
        v = self._last(number)
        if v is None:
            return 0
        if isinstance(v, bytes):
            raise WireError(f"field {number}: expected a varint, got bytes")
        return v

    def flag(self, number: int) -> bool:
        return self.uint(number) != 0

    def double(self, number: int) -> float:
        v = self._last(number)
        if v is None:
            return 0.0
        if isinstance(v, bytes):
            raise WireError(f"field {number}: expected a double, got bytes")
        return float(struct.unpack("<d", struct.pack("<Q", v))[0])

    def bytes_(self, number: int) -> bytes:
        v = self._last(number)
        if v is None:
            return b""
        if not isinstance(v, bytes):
            raise WireError(f"field {number}: expected length-delimited, got a number")
        return v

    def string(self, number: int) -> str:
        try:
            return self.bytes_(number).decode()
        except UnicodeDecodeError as e:
            raise WireError(f"field {number}: not UTF-8") from e

    def message(self, number: int) -> Fields:
        return parse(self.bytes_(number))

    def has(self, number: int) -> bool:
        return number in self._values


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise WireError("truncated varint")
        b = data[pos + i]
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value & ((1 << 64) - 1), pos + i + 1
    raise WireError("varint longer than 10 bytes")


def parse(data: bytes) -> Fields:
    values: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        value: int | bytes
        if wire_type == VARINT:
            value, pos = _read_varint(data, pos)
        elif wire_type == FIXED64:
            if pos + 8 > len(data):
                raise WireError("truncated 64-bit field")
            value = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif wire_type == LENGTH:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise WireError("truncated length-delimited field")
            value = data[pos : pos + size]
            pos += size
        elif wire_type == FIXED32:
            if pos + 4 > len(data):
                raise WireError("truncated 32-bit field")
            value = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        values.setdefault(number, []).append(value)
    return Fields(values)
