"""Async client for the cgminer JSON RPC API (TCP 4028, one request per connection).

A request is `{"command": ..., "parameter": ...}`; the rig replies once, ends with a NUL
and closes. Each request opens its own connection with a small asyncio.Protocol (no stream
objects) because a site polls thousands of rigs per second through this client.

Errors (all from minerd.errors, naming the device and "host:port"):
- DeviceUnreachable: refused, reset, no route, closed before any byte;
- DeviceTimeout: connect or total time exceeded (hung rig);
- ProtocolError: reply truncated or not JSON even after repair, no STATUS;
- CommandRejected: STATUS letter E or F (code and message of the rig).

The client holds no socket between requests: a timeout or cancellation aborts the one
connection in flight. Bounding concurrency is the caller's job.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from minerd.errors import (
    CommandRejected,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    ProtocolError,
)
from minerd.transports.jsonrepair import JsonRepairError, loads_lenient

__all__ = [
    "DEFAULT_PORT",
    "BatchReply",
    "CgminerClient",
    "CgminerReply",
    "check_status",
]

DEFAULT_PORT = 4028
# A reply is a JSON object; callers pick typed fields out of it right away.
CgminerReply = dict[str, object]

_OK_LETTERS = frozenset("SIW")
# Encoded parameterless requests ("summary+stats"...): a handful of distinct strings.
_REQUESTS: dict[str, bytes] = {}


class _OneShot(asyncio.Protocol):
    """Send one request, collect the reply until NUL or EOF."""

    __slots__ = ("_buf", "_done", "_max_bytes", "_request", "transport")

    def __init__(self, request: bytes, done: asyncio.Future[bytes], max_bytes: int) -> None:
        self._request = request
        self._done = done
        self._buf = bytearray()
        self._max_bytes = max_bytes
        self.transport: asyncio.Transport | None = None

    @property
    def received(self) -> int:
        return len(self._buf)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if b"\x00" in data:
            self._finish()
        elif len(buf) > self._max_bytes:
            if not self._done.done():
                self._done.set_exception(_TooLarge(len(buf)))
            if self.transport is not None:
                self.transport.abort()

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done.done():
            return
        if exc is not None and not self._buf:
            self._done.set_exception(exc)
        else:
            self._done.set_result(bytes(self._buf))

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(bytes(self._buf))
        if self.transport is not None:
            self.transport.close()


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"reply larger than {size} bytes")


def check_status(reply: CgminerReply, device: str, endpoint: str, command: str) -> None:
    """Raise CommandRejected for STATUS E/F, ProtocolError when there is no STATUS."""
    status = reply.get("STATUS")
    first = status[0] if isinstance(status, list) and status else status
    if not isinstance(first, dict):
        raise ProtocolError(device, endpoint, f"{command}: reply has no STATUS")
    letter = first.get("STATUS")
    if isinstance(letter, str) and letter[:1] in _OK_LETTERS:
        return
    code_raw = first.get("Code", 0)
    code = code_raw if isinstance(code_raw, int) else 0
    msg = first.get("Msg") or first.get("Description") or "rejected"
    raise CommandRejected(device, endpoint, f"{command}: {msg} (code {code})", code=code)


@dataclass(frozen=True, slots=True)
class BatchReply:
    """Replies of several report commands; a rejected command is in errors, not replies."""

    replies: dict[str, CgminerReply] = field(default_factory=dict)
    errors: dict[str, DeviceError] = field(default_factory=dict)

    def get(self, command: str) -> CgminerReply:
        """The reply of one command, or raise the error it got."""
        reply = self.replies.get(command)
        if reply is not None:
            return reply
        raise self.errors[command]


class CgminerClient:
    """cgminer API client for one rig endpoint. Cheap to create; holds no connection."""

    # Endpoints whose firmware refused `a+b` batching: remembered for the process lifetime.
    _no_batch: ClassVar[set[str]] = set()

    __slots__ = (
        "connect_timeout_s",
        "device",
        "endpoint",
        "host",
        "max_reply_bytes",
        "port",
        "timeout_s",
    )

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        device: str | None = None,
        connect_timeout_s: float = 1.0,
        timeout_s: float = 3.0,
        max_reply_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.endpoint = f"{host}:{port}"
        self.device = device or self.endpoint
        self.connect_timeout_s = min(connect_timeout_s, timeout_s)
        self.timeout_s = timeout_s
        self.max_reply_bytes = max_reply_bytes

    @property
    def batching(self) -> bool:
        """False once this endpoint refused a `+`-joined command."""
        return self.endpoint not in self._no_batch

    @classmethod
    def reset_batching(cls, endpoint: str | None = None) -> None:
        """Forget that an endpoint (or every one) refused batching: after a firmware update."""
        if endpoint is None:
            cls._no_batch.clear()
        else:
            cls._no_batch.discard(endpoint)

    async def raw(self, command: str, parameter: str | None = None) -> bytes:
        """Send one request and return the raw reply bytes (NUL stripped, unparsed)."""
        if parameter is None:
            request = _REQUESTS.get(command)
            if request is None:
                request = json.dumps({"command": command}).encode()
                if len(_REQUESTS) < 256:
                    _REQUESTS[command] = request
        else:
            request = json.dumps({"command": command, "parameter": parameter}).encode()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes] = loop.create_future()
        proto = _OneShot(request, done, self.max_reply_bytes)
        phase = "connect"
        try:
            # One timer: the connect deadline first, then moved to the total deadline
            # (counted from the same start, so the wire timeout stays real seconds).
            async with asyncio.timeout(self.connect_timeout_s) as deadline:
                await loop.create_connection(lambda: proto, self.host, self.port)
                phase = "reply"
                start = (deadline.when() or 0.0) - self.connect_timeout_s
                deadline.reschedule(start + self.timeout_s)
                data = await done
        except TimeoutError:
            limit = self.connect_timeout_s if phase == "connect" else self.timeout_s
            got = proto.received
            what = f"reply incomplete ({got} bytes)" if got else f"no {phase}"
            raise DeviceTimeout(
                self.device, self.endpoint, f"{command}: {what} within {limit:g}s"
            ) from None
        except _TooLarge as exc:
            raise ProtocolError(self.device, self.endpoint, f"{command}: {exc}") from None
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise DeviceUnreachable(self.device, self.endpoint, f"{command}: {why}") from None
        finally:
            # Timeout or cancellation: drop the connection in flight, never leak it.
            if proto.transport is not None and not proto.transport.is_closing():
                proto.transport.abort()
        end = data.find(b"\x00")
        if end >= 0:
            data = data[:end]
        if not data:
            raise DeviceUnreachable(
                self.device, self.endpoint, f"{command}: connection closed without a reply"
            )
        return data

    async def request(self, command: str, parameter: str | None = None) -> CgminerReply:
        """Send one command; return the parsed reply without checking STATUS."""
        data = await self.raw(command, parameter)
        try:
            reply = loads_lenient(data)
        except JsonRepairError as exc:
            raise ProtocolError(self.device, self.endpoint, f"{command}: {exc}") from None
        if not isinstance(reply, dict):
            raise ProtocolError(
                self.device, self.endpoint, f"{command}: reply is {type(reply).__name__}"
            )
        return reply

    async def command(self, command: str, parameter: str | None = None) -> CgminerReply:
        """Send one command; raise CommandRejected on STATUS E/F; return the reply."""
        reply = await self.request(command, parameter)
        check_status(reply, self.device, self.endpoint, command)
        return reply

    async def batch(self, commands: Sequence[str]) -> BatchReply:
        """Run report commands as one `a+b+c` request, or one by one where not supported.

        A command the rig rejects lands in BatchReply.errors; transport failures raise.
        """
        if len(commands) == 1 or not self.batching:
            return await self._one_by_one(commands)
        reply = await self.request("+".join(commands))
        parts = self._split(reply, commands)
        if parts is None:
            self._no_batch.add(self.endpoint)
            return await self._one_by_one(commands)
        return parts

    def _split(self, reply: CgminerReply, commands: Sequence[str]) -> BatchReply | None:
        """Per-command replies of a batched reply; None when the rig did not batch."""
        result = BatchReply()
        for cmd in commands:
            part = reply.get(cmd)
            if isinstance(part, list) and part:
                part = part[0]
            if not isinstance(part, dict):
                return None
            try:
                check_status(part, self.device, self.endpoint, cmd)
            except DeviceError as exc:
                result.errors[cmd] = exc
            else:
                result.replies[cmd] = part
        return result

    async def _one_by_one(self, commands: Sequence[str]) -> BatchReply:
        result = BatchReply()
        for cmd in commands:
            try:
                result.replies[cmd] = await self.command(cmd)
            except (CommandRejected, ProtocolError) as exc:
                result.errors[cmd] = exc
        return result
