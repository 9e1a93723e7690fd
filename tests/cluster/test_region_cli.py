"""`minerd coordinator --config region.toml` as a process: it serves the limit subject on a
real nats-server, audits a change to its SQLite file, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import nats
import pytest
from servers import ServerProcess

from minerd.cluster.region import limit_subject
from minerd.storage.audit import AuditLog
from minerd.storage.db import Database

pytestmark = pytest.mark.timeout(120)


@pytest.mark.asyncio
async def test_the_coordinator_process_takes_a_limit_change_and_stops_on_sigterm(
    nats_server: ServerProcess, tmp_path: Path
) -> None:
    name = f"r{uuid.uuid4().hex[:8]}"
    config = tmp_path / "region.toml"
    config.write_text(
        f'[region]\nname = "{name}"\nnats_url = "{nats_server.url}"\nlimit_kw = 500\n\n'
        '[coordinator]\nid = "coord-cli"\naudit_db = "audit.sqlite"\n'
        'control_token_env = "MINERD_TEST_REGION_TOKEN"\n'
    )
    env = {**os.environ, "MINERD_TEST_REGION_TOKEN": "t0k"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minerd",
        "coordinator",
        "--config",
        str(config),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        nc = await nats.connect(nats_server.url)
        try:
            body = json.dumps({"limit_kw": 420, "actor": "ops-cli", "token": "t0k"}).encode()
            answer: dict[str, object] = {}
            for _ in range(300):  # until the process subscribes (a bound, not a timing)
                try:
                    msg = await nc.request(limit_subject(name), body, timeout=1)
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    assert proc.returncode is None, "the coordinator exited"
                    await asyncio.sleep(0.2)
                    continue
                answer = json.loads(msg.data)
                break
        finally:
            await nc.close()
        assert answer == {"ok": True, "limit_kw": 420.0, "coordinator": "coord-cli"}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    db = Database(tmp_path / "audit.sqlite")
    try:
        entries = AuditLog(db).query(action="region.limit.set")
    finally:
        db.close()
    assert [e.actor for e in entries] == ["ops-cli"]
    assert json.loads(entries[0].detail)["to_kw"] == 420.0
