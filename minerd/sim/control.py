"""The simulator's control endpoint: a small HTTP/1.1 server on loopback.

GET /truth             what really happens on the site (JSON); ?rigs=0 leaves out the rigs
POST /faults           {"device": "<rig or meter id>", "fault": "<name>"}
DELETE /faults         clears every fault, or one device's with {"device": "..."}
GET /health            "ok"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 10.0
MAX_BODY_BYTES = 1 << 20

TruthFn = Callable[[bool], Awaitable[dict[str, object]]]
FaultFn = Callable[[str, str], Awaitable[None]]
ClearFn = Callable[[str | None], Awaitable[None]]


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class ControlServer:
    def __init__(self, truth: TruthFn, inject: FaultFn, clear: ClearFn) -> None:
        self._truth = truth
        self._inject = inject
        self._clear = clear
        self._server: asyncio.Server | None = None
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = str(sockname[0]), int(sockname[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                method, path, body = await _read_request(reader)
            status, payload = await self._route(method, path, body)
        except ControlError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            status, payload = 400, {"error": f"bad request: {exc}"}
        except Exception as exc:  # a worker process died, say so instead of dropping the line
            log.warning("simulator control request failed: %s", exc)
            status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head + data)
            async with asyncio.timeout(READ_TIMEOUT_S):
                await writer.drain()
        writer.close()

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        path, _, query = path.partition("?")
        if path == "/health" and method == "GET":
            return 200, "ok"
        if path == "/truth" and method == "GET":
            # /truth?rigs=0: site and meters only, cheap at 50,000 rigs
            with_rigs = "rigs=0" not in query.split("&") and "rigs=false" not in query.split("&")
            return 200, await self._truth(with_rigs)
        if path == "/faults" and method == "POST":
            req = _json_object(body)
            device, fault = req.get("device"), req.get("fault")
            if not isinstance(device, str) or not isinstance(fault, str):
                raise ControlError(400, 'body must be {"device": "...", "fault": "..."}')
            await self._guard(self._inject(device, fault))
            return 200, {"device": device, "fault": fault, "injected": True}
        if path == "/faults" and method == "DELETE":
            req = _json_object(body) if body.strip() else {}
            device = req.get("device")
            if device is not None and not isinstance(device, str):
                raise ControlError(400, '"device" must be a string')
            await self._guard(self._clear(device))
            return 200, {"device": device, "cleared": True}
        raise ControlError(404, f"no route {method} {path}")

    @staticmethod
    async def _guard(call: Awaitable[None]) -> None:
        try:
            await call
        except LookupError as exc:
            raise ControlError(404, str(exc)) from exc
        except ValueError as exc:
            raise ControlError(400, str(exc)) from exc


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    request_line = (await reader.readline()).decode("latin-1").strip()
    parts = request_line.split()
    if len(parts) < 2:
        raise ValueError("no request line")
    length = 0
    while True:
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length > MAX_BODY_BYTES:
        raise ValueError("body too large")
    body = await reader.readexactly(length) if length else b""
    return parts[0].upper(), parts[1], body


def _json_object(body: bytes) -> dict[str, object]:
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise ControlError(400, f"invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ControlError(400, "body must be a JSON object")
    return value
