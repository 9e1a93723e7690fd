"""HTTP client for the Vnish (AnthillOS) REST API `http://<ip>[:port]/api/v1` (reference:
firmware-apis.md section 4).

- `POST /unlock {"pw"}` gives a token, sent as `Authorization: Bearer <token>` on protected
  calls. The token is kept and reused; a 401 takes one new unlock and one retry, then fails.
- 403 on unlock is a wrong password, 429 too many attempts: both CommandRejected, and no new
  unlock is tried for UNLOCK_BACKOFF_S so a wrong password does not lock the rig further.
- A 200 may still carry `{"err": "..."}` (a mining action the miner refused): rejected.
- One keep-alive connection per rig (aiohttp, already installed with influxdb-client[async]).
Errors come from minerd.errors and name the device and `host:port/api/v1/<path>`; the
password never appears in one. Every call runs under the caller's timeout.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from minerd.clock import Clock, system_clock
from minerd.errors import (
    CommandRejected,
    DeviceUnreachable,
    ProtocolError,
)
from minerd.transports.deadline import device_deadline

__all__ = ["KEPT_CONNECTIONS", "UNLOCK_BACKOFF_S", "VnishWebClient"]

UNLOCK_BACKOFF_S = 60.0  # after a 403/429 the next unlock waits this long (wall seconds)
_MAX_BODY_BYTES = 1 << 20
KEPT_CONNECTIONS = 2  # keep-alive connections one rig's client may hold open (summary+perf)


class VnishWebClient:
    """One rig's REST API: a token and a keep-alive connection, both reused."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        device: str,
        password: str | None,
        timeout_s: float = 3.0,
        clock: Clock = system_clock,
    ) -> None:
        self._clock = clock
        self.host = host
        self.port = port
        self.device = device
        self._password = password  # never logged, never in an error
        self.timeout_s = timeout_s
        self._base = f"http://{host}:{port}/api/v1" if port != 80 else f"http://{host}/api/v1"
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._unlock_refused: tuple[float, CommandRejected] | None = None
        self._token_lock = asyncio.Lock()
        self.unlocks = 0  # tokens taken since start (a test and an operator read it)
        self._closed_reads: set[str] = set()  # reads this rig refused without a token

    def endpoint(self, path: str) -> str:
        return f"{self.host}:{self.port}/api/v1/{path}"

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=KEPT_CONNECTIONS, use_dns_cache=False, force_close=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # the caller's asyncio.timeout rules
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------ calls

    async def get(self, path: str, *, auth: bool = False, timeout_s: float | None = None) -> object:
        return await self.call("GET", path, None, auth=auth, timeout_s=timeout_s)

    async def post(
        self, path: str, body: object = None, *, timeout_s: float | None = None
    ) -> object:
        return await self.call("POST", path, body, auth=True, timeout_s=timeout_s)

    async def call(
        self,
        method: str,
        path: str,
        body: object,
        *,
        auth: bool,
        timeout_s: float | None = None,
    ) -> object:
        """The JSON reply of one call (None for an empty 200 body), under one timeout."""
        limit_s = self.timeout_s if timeout_s is None else timeout_s
        async with device_deadline(self.device, self.endpoint(path), limit_s):
            return await self._call(method, path, body, auth)

    async def _call(self, method: str, path: str, body: object, auth: bool) -> object:
        # A read that needs no token is sent without one unless the rig asked for it before
        # (builds differ on which reads are open: GET /summary's auth is "optional").
        auth = auth or path in self._closed_reads
        token = await self._ensure_token(path) if auth else None
        status, data = await self._send(method, path, body, token)
        if status == 401 and self._password:
            # Expired or revoked (reboot), or a read this build protects: one unlock, one retry.
            if not auth:
                self._closed_reads.add(path)
            self._drop_token(token)
            token = await self._ensure_token(path)
            status, data = await self._send(method, path, body, token)
        return self._result(path, status, data)

    def _result(self, path: str, status: int, data: object) -> object:
        where = self.endpoint(path)
        if status == 401 and not self._password:
            # no unlock was tried: say what is missing, not that a token was refused
            raise CommandRejected(
                self.device, where, "needs a token (401); no password configured", 401
            )
        if status == 401:
            raise CommandRejected(self.device, where, "token refused (401) after a new unlock", 401)
        if status >= 400:
            raise CommandRejected(self.device, where, f"HTTP {status}{_err_text(data)}", status)
        if isinstance(data, dict) and "err" in data:
            raise CommandRejected(self.device, where, f"refused:{_err_text(data)}", status)
        return data

    async def _send(
        self, method: str, path: str, body: object, token: str | None
    ) -> tuple[int, object]:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        payload = None if body is None else json.dumps(body).encode()
        if payload is not None:
            headers["Content-Type"] = "application/json"
        where = self.endpoint(path)
        try:
            async with self._http().request(
                method, f"{self._base}/{path}", data=payload, headers=headers
            ) as resp:
                raw = await resp.content.read(_MAX_BODY_BYTES + 1)
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            raise DeviceUnreachable(self.device, where, f"cannot connect: {exc.os_error}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise DeviceUnreachable(self.device, where, f"connection lost: {exc}") from None
        except aiohttp.ClientError as exc:
            raise ProtocolError(self.device, where, f"bad HTTP reply: {exc}") from None
        if len(raw) > _MAX_BODY_BYTES:
            raise ProtocolError(self.device, where, "reply larger than 1 MiB")
        if not raw.strip():
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            if status >= 400:
                return status, raw.decode(errors="replace")[:200]
            raise ProtocolError(self.device, where, f"not JSON ({len(raw)} bytes)") from None

    # ------------------------------------------------------------ token

    async def _ensure_token(self, path: str) -> str:
        async with self._token_lock:
            if self._token is not None:
                return self._token
            if self._unlock_refused is not None:
                at, error = self._unlock_refused
                if self._clock.monotonic_s() - at < UNLOCK_BACKOFF_S:
                    raise error
                self._unlock_refused = None
            self._token = await self._unlock()
            return self._token

    def _drop_token(self, token: str | None) -> None:
        if token is not None and self._token == token:
            self._token = None

    async def _unlock(self) -> str:
        where = self.endpoint("unlock")
        if not self._password:
            raise CommandRejected(self.device, where, "no password configured for this rig group")
        status, data = await self._send("POST", "unlock", {"pw": self._password}, None)
        if status in (403, 429):
            why = "wrong password" if status == 403 else "too many unlock attempts"
            error = CommandRejected(
                self.device,
                where,
                f"unlock refused: {why} (HTTP {status}); not retried for {UNLOCK_BACKOFF_S:g} s",
                status,
            )
            self._unlock_refused = (self._clock.monotonic_s(), error)
            raise error
        token = data.get("token") if isinstance(data, dict) else None
        if status != 200 or not isinstance(token, str) or not token:
            raise ProtocolError(self.device, where, f"unlock gave no token (HTTP {status})")
        self.unlocks += 1
        return token


def _err_text(data: object) -> str:
    if isinstance(data, dict):
        err = data.get("err")
        return f": {str(err).strip()}" if err else ""
    if isinstance(data, str) and data.strip():
        return f": {data.strip()[:120]}"
    return ""
