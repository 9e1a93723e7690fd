"""The Digest HTTP client against tiny loopback servers: what real web servers do that the
simulated stock CGI does not (a body without Content-Length, an algorithm we cannot answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from minerd.errors import CommandRejected
from minerd.transports.http_digest import DigestClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, DigestClient]:
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    client = DigestClient("127.0.0.1", port, device="r1", username="root", password="s3cret")
    return server, client


@pytest.mark.asyncio
async def test_a_body_without_length_is_read_to_the_close() -> None:
    sent = asyncio.Event()

    async def reply(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"code":')
        await writer.drain()
        await sent.wait()  # the client has read the first piece before the rest comes
        writer.write(b'"M000","msg":"OK!"}')
        await writer.drain()

    server, client = await _serve(reply)
    try:
        task = asyncio.create_task(client.get_json("/cgi-bin/x.cgi"))
        await asyncio.sleep(0.05)
        sent.set()
        assert await task == {"code": "M000", "msg": "OK!"}
    finally:
        server.close()


@pytest.mark.asyncio
async def test_an_unknown_digest_algorithm_is_a_device_error_naming_it() -> None:
    async def challenge(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
            b'WWW-Authenticate: Digest realm="antMiner Configuration", nonce="n1", '
            b'qop="auth", algorithm=SHA-512-256\r\n\r\n'
        )
        await writer.drain()

    server, client = await _serve(challenge)
    try:
        with pytest.raises(CommandRejected) as err:
            await client.get_json("/cgi-bin/get_miner_conf.cgi")
        assert "SHA-512-256" in str(err.value) and "r1" in str(err.value)
        assert "s3cret" not in str(err.value)
    finally:
        server.close()
