"""The API through a real uvicorn server on a loopback port: plain HTTP driven by the CLI
client, TLS with optional client certificates, shutdown on cancel, a port in use."""

from __future__ import annotations

import asyncio
import io
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from api_site import SECRETS, START_S, SiteUnderTest, api_settings
from servers import free_port

from minerd.api import create_app, serve
from minerd.api.times import iso
from minerd.cli.quota_cli import add_arguments, run
from minerd.settings.models import ApiSettings


@asynccontextmanager
async def served(site: SiteUnderTest, settings: ApiSettings) -> AsyncIterator[asyncio.Task[None]]:
    started = asyncio.Event()
    app = create_app(site, settings, lambda: b"minerd_up 1\n", None)
    task = asyncio.create_task(serve(app, settings, started))
    try:
        async with asyncio.timeout(10):
            await started.wait()
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


async def cli(*argv: str) -> tuple[int, str]:
    """Run a CLI command in a thread (it uses blocking urllib) and capture its output."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"minerd {argv[0]}")
    add_arguments(parser)
    args = parser.parse_args(list(argv[1:]))
    args.command = argv[0]
    out = io.StringIO()
    code = await asyncio.to_thread(run, args, out)
    return code, out.getvalue()


@pytest.mark.asyncio
async def test_cli_against_a_real_server(tmp_path: Path) -> None:
    port = free_port()
    site = SiteUnderTest(tmp_path / "srv.sqlite")
    token_file = tmp_path / "grid.token"
    token_file.write_text(SECRETS["grid"] + "\n")
    url = f"http://127.0.0.1:{port}"
    auth = ["--url", url, "--token-file", str(token_file)]
    try:
        async with served(site, api_settings(listen=f"127.0.0.1:{port}")):
            code, out = await cli("quota", *auth, "set", "420", "--reference", "ORD-7")
            assert code == 0 and "accepted: 420.0 kW from " + iso(START_S) in out
            code, out = await cli("quota", *auth, "set", "420", "--reference", "ORD-7")
            assert code == 0 and "already accepted" in out
            blocks = tmp_path / "day-ahead.csv"
            blocks.write_text(
                "start,end,limit_kw\n"
                f"{iso(START_S + 3600)},{iso(START_S + 7200)},300\n"
                f"{iso(START_S + 7200)},{iso(START_S + 10800)},250\n"
            )
            code, out = await cli("quota", *auth, "schedule", str(blocks))
            assert (code, out.strip()) == (0, "schedule accepted: 2 blocks, 0 replaced")
            code, out = await cli("quota", *auth, "show", "--to", iso(START_S + 4 * 3600))
            assert code == 0 and "ref ORD-7" in out and "300.0 kW  (quota)" in out
            qid = site.stores.quotas.all()[0].quota_id
            code, out = await cli("quota", *auth, "withdraw", qid)
            assert code == 0 and f"quota {qid} withdrawn at {iso(START_S)}" in out
            code, out = await cli("status", "--url", url, "--token", SECRETS["viewer"])
            assert code == 0 and "site alatau-1" in out and "grid import   17.5 kW" in out
            # Errors are one line with the API's message, and a non-zero exit.
            code, out = await cli("quota", *auth, "set", "-5")
            assert code == 1 and out == ""
            code, _ = await cli("quota", "--url", url, "--token", "wrong", "show")
            assert code == 1
        assert _refused(port), "cancelling serve() closes the listening socket"
    finally:
        site.close()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_pki(d: Path) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=minerd-test-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "grid-client"):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                 "-extfile", "san.ext", cwd=d)  # fmt: skip
    _openssl("req", "-x509", *ec, "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2",
             "-subj", "/CN=rogue", cwd=d)  # fmt: skip


@pytest.mark.asyncio
async def test_tls_with_optional_client_certificates(tmp_path: Path) -> None:
    _make_pki(tmp_path)
    port = free_port()
    settings = ApiSettings(
        listen=f"127.0.0.1:{port}",
        tls_cert_file=tmp_path / "server.pem",
        tls_key_file=tmp_path / "server.key",
        client_ca_file=tmp_path / "ca.pem",
        tokens=api_settings().tokens,
    )
    site = SiteUnderTest(tmp_path / "tls.sqlite")
    url = f"https://127.0.0.1:{port}"

    def context(cert: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        if cert is not None:
            ctx.load_cert_chain(tmp_path / f"{cert}.pem", tmp_path / f"{cert}.key")
        return ctx

    try:
        async with served(site, settings):
            for cert in (None, "grid-client"):
                async with httpx.AsyncClient(verify=context(cert), base_url=url) as c:
                    r = await c.get(
                        "/api/v1/site", headers={"Authorization": f"Bearer {SECRETS['grid']}"}
                    )
                    assert r.status_code == 200 and r.json()["site"] == "alatau-1"
            # A client certificate the site's CA did not sign is refused in the handshake.
            async with httpx.AsyncClient(verify=context("rogue"), base_url=url) as c:
                with pytest.raises(httpx.HTTPError):
                    await c.get("/healthz")
            # Plain HTTP on the TLS port gets no answer worth the name.
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
                with pytest.raises(httpx.HTTPError):
                    await c.get("/healthz")
    finally:
        site.close()


@pytest.mark.asyncio
async def test_port_in_use_is_an_error_not_an_exit(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    site = SiteUnderTest(tmp_path / "busy.sqlite")
    settings = api_settings(listen=f"127.0.0.1:{port}")
    try:
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            async with asyncio.timeout(10):
                await serve(create_app(site, settings, None, None), settings)
    finally:
        blocker.close()
        site.close()
