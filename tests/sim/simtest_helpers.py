"""Independent clients for the simulator tests: a raw cgminer socket client and register
decoding by hand (never through minerd's own transports or profiles)."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any


async def cgminer_raw(
    host: str, port: int, command: str, parameter: str | None = None, timeout_s: float = 3.0
) -> bytes:
    """Send one request, read until the rig closes; returns the raw bytes."""
    request: dict[str, str] = {"command": command}
    if parameter is not None:
        request["parameter"] = parameter
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(json.dumps(request).encode())
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()


async def cgminer(host: str, port: int, command: str, parameter: str | None = None) -> Any:
    """Strict parse: the reply must end with one NUL and be valid JSON without it."""
    raw = await cgminer_raw(host, port, command, parameter)
    assert raw.endswith(b"\x00"), raw[-40:]
    return json.loads(raw[:-1].decode())


def f32(words: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", words[0], words[1]))[0])


def i64(words: list[int]) -> int:
    return int(struct.unpack(">q", struct.pack(">HHHH", *words))[0])


def u32(words: list[int]) -> int:
    return int(struct.unpack(">I", struct.pack(">HH", words[0], words[1]))[0])
