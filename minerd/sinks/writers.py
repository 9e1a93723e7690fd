"""HTTP writers for line protocol: InfluxDB v2 API (influxdb-client) and v1 `/write` (aiohttp).

A writer sends one pre-built batch and either returns (written) or raises:
- `SinkError` (retry_after_s set when the server said when): keep the batch, retry later;
- `BatchRejected`: the server refused the data itself (400 bad line, 413, 422); retrying the
  same bytes cannot help, the batch is dropped and counted.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import aiohttp
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write_api_async import WriteApiAsync
from influxdb_client.domain.write_precision import WritePrecision

from minerd.clock import system_clock
from minerd.errors import SinkError

# Statuses that say "not now": keep the batch and retry after a while.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Statuses that say "never like this": the bytes themselves are wrong.
_REJECT_STATUSES = frozenset({400, 413, 422})


class BatchRejected(SinkError):
    """The server refused the batch's content; retrying the same bytes cannot succeed."""


class LineWriter(Protocol):
    name: str

    async def write(self, body: bytes, points: int) -> None:
        """Send newline-joined line protocol with millisecond timestamps."""

    async def close(self) -> None: ...


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = system_clock.now_s() if now_s is None else now_s
    return max(0.0, when.timestamp() - now)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def classify_status(
    sink: str, status: int, reason: str, headers: Mapping[str, str] | None
) -> SinkError:
    """The error for a non-2xx answer: rejected content or a retryable refusal."""
    retry_after = parse_retry_after(_header(headers, "Retry-After"))
    text = f"HTTP {status} {reason}".strip()
    if status in _REJECT_STATUSES:
        return BatchRejected(sink, text)
    if status in _RETRY_STATUSES or status >= 500:
        return SinkError(sink, text, retry_after)
    # 401/403/404 (no such database or bucket): a configuration problem someone may fix;
    # keep the data meanwhile.
    return SinkError(sink, text, retry_after)


@dataclass(frozen=True)
class V2Target:
    url: str
    org: str
    bucket: str
    token: str


class V2Writer:
    """InfluxDB 2.x/3.x, 1.8+ compatibility endpoint and VictoriaMetrics via /api/v2/write."""

    def __init__(
        self, target: V2Target, *, gzip_body: bool = True, timeout_s: float = 10.0
    ) -> None:
        self.name = f"influx-v2 {target.url}"
        self._target = target
        self._gzip = gzip_body
        self._timeout_s = timeout_s
        self._client: InfluxDBClientAsync | None = None
        self._write_api: WriteApiAsync | None = None

    def _api(self) -> WriteApiAsync:
        # Created on first use: the client's aiohttp session needs the running loop.
        if self._write_api is None:
            self._client = InfluxDBClientAsync(
                url=self._target.url,
                token=self._target.token,
                org=self._target.org,
                enable_gzip=self._gzip,
                timeout=int(self._timeout_s * 1000),
            )
            self._write_api = self._client.write_api()
        return self._write_api

    async def write(self, body: bytes, points: int) -> None:
        api = self._api()
        try:
            async with asyncio.timeout(self._timeout_s + 1.0):
                await api.write(
                    bucket=self._target.bucket,
                    org=self._target.org,
                    record=body,
                    write_precision=WritePrecision.MS,  # type: ignore[arg-type]  # a str constant
                )
        except InfluxDBError as exc:
            status = getattr(exc, "status", None)
            if isinstance(status, int):
                headers = getattr(exc, "headers", None)
                hdrs = dict(headers) if headers is not None else None
                reason = str(getattr(exc, "reason", ""))
                raise classify_status(self.name, status, reason, hdrs) from exc
            raise SinkError(self.name, f"write of {points} points failed: {exc}") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SinkError(
                self.name, f"write of {points} points failed: {type(exc).__name__} {exc}"
            ) from exc

    async def close(self) -> None:
        client, self._client = self._client, None
        self._write_api = None
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class V1Target:
    url: str
    database: str
    retention_policy: str = ""
    username: str = ""
    password: str = ""


class V1Writer:
    """InfluxDB 1.x `/write?db=&rp=&precision=ms` with basic auth, over aiohttp."""

    def __init__(
        self, target: V1Target, *, gzip_body: bool = True, timeout_s: float = 10.0
    ) -> None:
        self.name = f"influx-v1 {target.url}"
        self._target = target
        self._gzip = gzip_body
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        params = {"db": target.database, "precision": "ms"}
        if target.retention_policy:
            params["rp"] = target.retention_policy
        self._params = params
        self._write_url = target.url.rstrip("/") + "/write"

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {}
            if self._target.username:
                creds = f"{self._target.username}:{self._target.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(creds).decode("ascii")
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self._timeout_s)
            )
        return self._session

    async def write(self, body: bytes, points: int) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            # Level 1: most of the size win for a fraction of level 9's CPU.
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            async with (
                asyncio.timeout(self._timeout_s + 1.0),
                self._http().post(
                    self._write_url, params=self._params, data=body, headers=headers
                ) as resp,
            ):
                if resp.status in (200, 204):
                    return
                text = (await resp.text())[:200]
                raise classify_status(
                    self.name, resp.status, f"{resp.reason or ''} {text}", resp.headers
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SinkError(
                self.name, f"write of {points} points failed: {type(exc).__name__} {exc}"
            ) from exc

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
