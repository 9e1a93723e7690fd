"""The CLI over HTTPS, as the operator guide's TLS runbook does it: `--cacert` with the site
CA verifies the server; without it, the unknown CA is refused with a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_site import SECRETS, SiteUnderTest, api_settings
from servers import free_port
from test_api_server import _make_pki, cli, served

from minerd.settings.models import ApiSettings


@pytest.mark.asyncio
async def test_cli_status_over_https_with_cacert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _make_pki(tmp_path)
    port = free_port()
    settings = ApiSettings(
        listen=f"127.0.0.1:{port}",
        tls_cert_file=tmp_path / "server.pem",
        tls_key_file=tmp_path / "server.key",
        tokens=api_settings().tokens,
    )
    site = SiteUnderTest(tmp_path / "tls.sqlite")
    auth = ["--url", f"https://127.0.0.1:{port}", "--token", SECRETS["viewer"]]
    try:
        async with served(site, settings):
            code, out = await cli("status", *auth, "--cacert", str(tmp_path / "ca.pem"))
            assert code == 0 and "site alatau-1" in out
            capsys.readouterr()
            code, out = await cli("status", *auth)
            assert (code, out) == (1, "")
            err = capsys.readouterr().err
            assert "CERTIFICATE_VERIFY_FAILED" in err and len(err.splitlines()) == 1
            assert SECRETS["viewer"] not in err
    finally:
        site.close()
