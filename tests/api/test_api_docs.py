"""Every curl example of docs/grid-api.md runs, in order, against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from api_site import SECRETS, SiteUnderTest, api_settings
from servers import free_port

from minerd.api import create_app, serve

DOC = Path(__file__).resolve().parents[2] / "docs" / "grid-api.md"
DOC_QUOTA_ID = "q-0193a2b1c2d3-000001-9f3e2a1b"


def curl_examples(text: str) -> list[str]:
    """The curl commands of the sh blocks, with their continuation lines and multi-line
    quoted bodies (a command ends on a line without a trailing backslash, quotes closed)."""
    out: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        current: list[str] = []
        for line in block.splitlines():
            if not current and not line.startswith("curl "):
                continue
            current.append(line)
            cmd = "\n".join(current)
            if not cmd.endswith("\\") and cmd.count("'") % 2 == 0:
                out.append(cmd)
                current = []
    return out


async def _curl(cmd: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        cmd + " -w '\\n%{http_code}'",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 0, f"{cmd}: {err.decode()}"
    body, _, code = out.decode().rpartition("\n")
    return int(code), body


@pytest.mark.asyncio
async def test_every_grid_curl_example_works(tmp_path: Path) -> None:
    assert shutil.which("curl"), "curl is needed to check the documented examples"
    examples = curl_examples(DOC.read_text())
    assert len(examples) >= 9
    methods = {m for e in examples for m in re.findall(r"-X (\w+)", e)} | {"GET"}
    assert methods == {"GET", "POST", "PUT", "DELETE"}
    port = free_port()
    settings = api_settings(listen=f"127.0.0.1:{port}")
    site = SiteUnderTest(tmp_path / "docs.sqlite")
    started = asyncio.Event()
    task = asyncio.create_task(serve(create_app(site, settings, None, None), settings, started))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MINERD": f"http://127.0.0.1:{port}",
        "TOKEN": SECRETS["grid"],
        "AUTH": f"Authorization: Bearer {SECRETS['grid']}",
    }
    try:
        async with asyncio.timeout(10):
            await started.wait()
        quota_id = ""
        for cmd in examples:
            # A reader copies the commands: an id of the doc's own answer would be a 404.
            assert DOC_QUOTA_ID not in cmd, f"{cmd}: use $QUOTA_ID, set from the answer"
            code, body = await _curl(cmd, env, tmp_path)
            assert 200 <= code < 300, f"{cmd}\n-> {code} {body}"
            if not quota_id and "POST" in cmd:
                quota_id = json.loads(body)["id"]
                env["QUOTA_ID"] = quota_id  # what the doc tells the reader to do
        assert (tmp_path / "alatau-1-2027-01-15.csv").read_text().startswith("interval_start,")
        withdrawn = site.stores.quotas.get(quota_id)
        assert withdrawn is not None and withdrawn.withdrawn_at_s is not None
        assert len(site.stores.quotas.all()) == 5  # now, window, three schedule blocks
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        site.close()
