"""A tiny real cgminer TCP server for transport tests: canned firmware-like replies.

The server answers each connection once like real firmware (reply + NUL, then close). A
handler maps (command, parameter) to a reply: bytes (sent as is), a dict (JSON + NUL), or a
Behaviour (hang, slow, close without reply, reset, no NUL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Behaviour:
    kind: str  # "hang" | "partial-hang" | "slow" | "close" | "reset" | "no-nul" | "chunked"
    delay_s: float = 0.0
    payload: bytes = b""


Reply = bytes | dict[str, object] | Behaviour
Handler = Callable[[str, str | None], Reply]


def status(letter: str = "S", code: int = 11, msg: str = "Summary", **extra: object) -> dict:
    return {
        "STATUS": [
            {
                "STATUS": letter,
                "When": 1_800_000_000,  # canned: nothing reads it
                "Code": code,
                "Msg": msg,
                "Description": "cgminer 4.11.1",
            }
        ],
        **extra,
        "id": 1,
    }


SUMMARY = status(
    SUMMARY=[
        {
            "Elapsed": 3600,
            "MHS av": 101_000_000.0,
            "MHS 5s": 100_500_000.0,
            "MHS 1m": 100_800_000.0,
            "Accepted": 100,
            "Rejected": 1,
        }
    ]
)


class FakeCgminer:
    """asyncio server on 127.0.0.1:<free port>; records the requests it got."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str | None]] = []
        self.connections = 0
        self.open_connections = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> FakeCgminer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        try:
            raw = await reader.read(65536)
            req = json.loads(raw.decode())
            cmd, param = req["command"], req.get("parameter")
            self.requests.append((cmd, param))
            reply = self.handler(cmd, param)
            if isinstance(reply, dict):
                reply = json.dumps(reply).encode() + b"\x00"
            if isinstance(reply, bytes):
                writer.write(reply)
                await writer.drain()
            elif reply.kind == "partial-hang":
                writer.write(reply.payload)
                while await reader.read(4096):
                    pass
            elif reply.kind == "hang":
                # Say nothing, but notice when the client goes away.
                while await reader.read(4096):
                    pass
            elif reply.kind == "slow":
                await asyncio.sleep(reply.delay_s)
                writer.write(reply.payload)
            elif reply.kind == "chunked":
                for i in range(0, len(reply.payload), 7):
                    writer.write(reply.payload[i : i + 7])
                    await writer.drain()
                    await asyncio.sleep(reply.delay_s)
            elif reply.kind == "no-nul":
                writer.write(reply.payload)
            elif reply.kind == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # "close": nothing sent
        except ConnectionError:
            pass
        finally:
            self.open_connections -= 1
            writer.close()


def refused_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
