"""The API's connection limits through a real server on a loopback port: the cap closes
connections beyond it at accept, a request must arrive in time (idle, slow headers, slow
body), the file-descriptor budget, and failed accepts logged once per interval."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from api_site import SECRETS, SiteUnderTest, api_settings
from pydantic import ValidationError
from servers import free_port

from minerd.api import create_app, serve
from minerd.api.connections import (
    FIXED_RESERVE_FDS,
    MIN_API_CONNECTIONS,
    GatedListener,
    IntervalLog,
    connection_cap,
    reserved_fds,
)
from minerd.clock import ManualClock
from minerd.devices.registry import KEPT_FDS, kept_fds
from minerd.model import RigProtocol
from minerd.settings.models import ApiSettings

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def served(tmp_path: Path, **limits: Any) -> AsyncIterator[int]:
    port = free_port()
    base = api_settings(listen=f"127.0.0.1:{port}")
    settings = ApiSettings(listen=base.listen, tokens=base.tokens, **limits)
    site = SiteUnderTest(tmp_path / "conn.sqlite")
    started = asyncio.Event()
    task = asyncio.create_task(serve(create_app(site, settings, None, None), settings, started))
    try:
        async with asyncio.timeout(10):
            await started.wait()
        yield port
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        site.close()


async def closed_by_server(reader: asyncio.StreamReader, within_s: float = 20.0) -> bytes:
    """Everything the server sent until it closed the connection."""
    data = b""
    async with asyncio.timeout(within_s):
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                data += chunk
    return data


async def get_site(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /api/v1/site HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + f"Authorization: Bearer {SECRETS['viewer']}\r\n\r\n".encode()
    )
    return await closed_by_server(reader)


@pytest.mark.asyncio
async def test_connections_beyond_the_cap_are_closed_at_once(tmp_path: Path) -> None:
    cap = 5
    async with served(tmp_path, max_connections=cap, header_timeout_s=60.0) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(cap)]
        # The listener accepts in order: everything after the first `cap` is refused.
        extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for reader, _w in extra:
            assert await closed_by_server(reader) == b""
        assert not any(reader.at_eof() for reader, _w in held)
        # A held connection is a working one.
        reader, writer = held[0]
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await closed_by_server(reader)).startswith(b"HTTP/1.1 200")
        for _r, w in held:
            w.close()
        # Slots come back as connections close: a new client is served.
        for _attempt in range(200):
            answer = await get_site(port)
            if answer:
                break
            await asyncio.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert b'"site":"alatau-1"' in answer


@pytest.mark.asyncio
async def test_a_request_must_arrive_in_time(tmp_path: Path) -> None:
    limits = {"header_timeout_s": 0.5, "body_timeout_s": 0.5}
    async with served(tmp_path, **limits) as port:
        idle = await asyncio.open_connection("127.0.0.1", port)
        slow_headers = await asyncio.open_connection("127.0.0.1", port)
        slow_body = await asyncio.open_connection("127.0.0.1", port)
        slow_body[1].write(
            b"POST /api/v1/quotas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )

        async def trickle() -> None:  # one header line every 0.1 s, never the blank line
            slow_headers[1].write(b"GET /healthz HTTP/1.1\r\n")
            for i in range(10_000):
                await asyncio.sleep(0.1)
                slow_headers[1].write(f"X-Slow-{i}: 1\r\n".encode())

        trickler = asyncio.create_task(trickle())
        try:
            assert await closed_by_server(idle[0]) == b""
            assert await closed_by_server(slow_headers[0]) == b""
            assert await closed_by_server(slow_body[0]) == b""
        finally:
            trickler.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await trickler
        # A client that sends its request at once is answered, on a kept-alive connection
        # twice, the second request well after the first answer.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            await asyncio.sleep(0.2)
        writer.close()


def test_the_api_gets_what_the_open_files_limit_leaves_after_control() -> None:
    reserve = reserved_fds(rigs=500, meters=3, poll_concurrency=1000, command_concurrency=200)
    assert reserve == 500 + 200 + 3 + FIXED_RESERVE_FDS
    assert connection_cap(256, reserve, limit=None) == 256
    assert connection_cap(256, reserve, limit=20_000) == 256
    assert connection_cap(256, reserve, limit=reserve + 100) == 100
    assert connection_cap(256, reserve, limit=reserve) == MIN_API_CONNECTIONS
    assert reserved_fds(rigs=10, meters=1, poll_concurrency=4, command_concurrency=2) == (
        4 + 2 + 1 + FIXED_RESERVE_FDS
    )


def test_connections_drivers_keep_open_are_reserved_too() -> None:
    # Vnish keeps its REST session and Braiins its gRPC channel open between polls: those
    # descriptors are taken whatever the poll concurrency, so the API must leave them.
    rigs = [RigProtocol.VNISH] * 300 + [RigProtocol.BRAIINS] * 200 + [RigProtocol.STOCK] * 500
    kept = kept_fds(rigs)
    assert kept == 300 * KEPT_FDS[RigProtocol.VNISH] + 200 * KEPT_FDS[RigProtocol.BRAIINS]
    assert kept_fds([RigProtocol.STOCK, RigProtocol.LUXOS, RigProtocol.WHATSMINER]) == 0
    base = reserved_fds(rigs=1000, meters=3, poll_concurrency=64, command_concurrency=64)
    with_kept = reserved_fds(
        rigs=1000, meters=3, poll_concurrency=64, command_concurrency=64, kept=kept
    )
    assert with_kept == base + kept
    assert connection_cap(256, with_kept, limit=base + 256) == MIN_API_CONNECTIONS


def test_a_repeated_event_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(0.0)
    events = IntervalLog("api: cannot accept", interval_s=60.0, monotonic=clock.monotonic_s)
    caplog.set_level(logging.DEBUG, logger="minerd.api.connections")
    for _ in range(3000):
        events.event("Too many open files")
        clock.advance(0.0625)  # 16 a second, 187.5 s in all
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert events.total == 3000
    assert len(warnings) == 4, warnings  # at 0, 60, 120 and 180 s
    assert warnings[0] == "api: cannot accept: Too many open files"
    assert warnings[1] == "api: cannot accept: Too many open files (960 times since 60 s ago)"


@pytest.mark.asyncio
async def test_out_of_descriptors_at_accept_is_logged_once_not_per_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures = 0
    real_accept = socket.socket._accept  # type: ignore[attr-defined]

    def exhausted(sock: socket.socket) -> tuple[int, Any]:
        nonlocal failures
        if failures < 3:  # out of descriptors for three rounds, then well again
            failures += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return real_accept(sock)  # type: ignore[no-any-return]

    monkeypatch.setattr(GatedListener, "_accept", exhausted)
    caplog.set_level(logging.INFO)
    async with served(tmp_path) as port:
        # Clients queue in the backlog while accept fails; asyncio retries every second.
        waiting = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
        answer = await get_site(port)
        for _r, w in waiting:
            w.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert failures == 3
    from_asyncio = [r for r in caplog.records if r.name == "asyncio"]
    accept_warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "minerd.api.connections" and r.levelno >= logging.WARNING
    ]
    assert from_asyncio == []
    assert accept_warnings == ["api: cannot accept a connection: Too many open files"]


def test_limits_are_validated() -> None:
    for bad in (
        {"max_connections": 0},
        {"header_timeout_s": 0},
        {"body_timeout_s": float("inf")},
        {"keep_alive_s": 0},
    ):
        with pytest.raises(ValidationError):
            ApiSettings(**bad)  # type: ignore[arg-type]


@pytest.fixture
def self_signed(tmp_path: Path) -> dict[str, Path]:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=tmp_path, check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return {"tls_cert_file": tmp_path / "cert.pem", "tls_key_file": tmp_path / "key.pem"}


@pytest.mark.asyncio
async def test_tls_connections_that_fail_the_handshake_free_their_slot(
    tmp_path: Path, self_signed: dict[str, Path]
) -> None:
    async with served(tmp_path, max_connections=2, **self_signed) as port:
        for _ in range(6):  # plain HTTP on the TLS port: the handshake fails
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await closed_by_server(reader)
            writer.close()
        # Had those kept their slots, both of these would be refused at accept.
        client_tls = ssl.create_default_context(cafile=str(self_signed["tls_cert_file"]))
        held = [await asyncio.open_connection("127.0.0.1", port, ssl=client_tls) for _ in range(2)]
        for reader, writer in held:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert (await closed_by_server(reader)).startswith(b"HTTP/1.1 200")
            writer.close()
