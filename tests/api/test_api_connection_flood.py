"""Idle connections cannot take the file descriptors that rigs and meters need (issue 18).

The real daemon runs as a child process with a small open-files limit against a simulated
site (served by this test process, real time). Rounds of idle TCP connections, three times
the API's connection cap, never send a byte. The API holds at most its cap of them and
closes the rest at once; the header timeout cuts the held ones; every rig and meter read
goes on succeeding meanwhile; afterwards the API serves an authenticated request; and the
log stays short (no traceback per failed accept).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
from pathlib import Path

import httpx
import pytest
from servers import free_port

from minerd.sim import SimSite

sys.path.insert(0, str(Path(__file__).parents[1] / "scenarios"))

from scenario_kit import Tuning, site_spec, tune_config

RIGS = 20
FD_LIMIT = 256  # the daemon's RLIMIT_NOFILE: 300 idle sockets would exhaust it
CAP = 100  # [api] max_connections
IDLE = 300  # idle connections per round
ROUNDS = 3
HEADER_TIMEOUT_S = 1.0
MAX_LOG_LINES = 100


def _limit_open_files() -> None:  # runs in the child, before exec
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, hard))


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _counter(metrics: str, name: str) -> float:
    """The sum of every series of a Prometheus counter in the text exposition."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _held_until_closed(reader: asyncio.StreamReader) -> None:
    """Returns when the server closes the connection (EOF or reset)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(1024):
            pass


async def _idle_round(port: int, pid: int) -> tuple[int, int]:
    """Opens IDLE connections that never send a byte; returns (the daemon's open files
    once the over-cap connections are closed, connections the server closed) after the
    server closed all of them."""
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(IDLE)]
    waiters = [asyncio.create_task(_held_until_closed(r)) for r, _w in conns]
    try:
        async with asyncio.timeout(30):  # those over the cap are closed at once
            for closed, next_closed in enumerate(asyncio.as_completed(waiters), 1):
                await next_closed
                if closed == IDLE - CAP:
                    break
        fds = _open_fds(pid)
        async with asyncio.timeout(30):  # the header timeout cuts the held ones
            await asyncio.gather(*waiters)
        return fds, sum(t.done() for t in waiters)
    finally:
        for t in waiters:
            t.cancel()
        for _r, w in conns:
            w.close()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_idle_connection_flood_leaves_rig_reads_and_the_api_working(
    tmp_path: Path,
) -> None:
    async with SimSite(site_spec(RIGS, base_octet=231, speed=1.0)) as sim:
        config = tmp_path / "site.toml"
        port = free_port()
        tokens = sim.write_config(config, api_listen=f"127.0.0.1:{port}")
        tune_config(config, Tuning(rig_interval_s=1.0))
        text = config.read_text(encoding="utf-8")
        api_keys = f"[api]\nmax_connections = {CAP}\nheader_timeout_s = {HEADER_TIMEOUT_S}\n"
        config.write_text(text.replace("[api]\n", api_keys, 1), encoding="utf-8")
        log = tmp_path / "daemon.log"
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "minerd", "run", "-c", str(config),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                preexec_fn=_limit_open_files,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        grid = {"Authorization": f"Bearer {tokens.grid}"}
        viewer = {"Authorization": f"Bearer {tokens.viewer}"}
        try:
            async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
                async with asyncio.timeout(60):
                    while True:
                        assert proc.returncode is None, log.read_text()[-3000:]
                        with contextlib.suppress(httpx.HTTPError):
                            if (await http.get("/readyz")).status_code == 200:
                                break
                        await asyncio.sleep(0.1)
                before = (await http.get("/metrics")).text
                baseline_fds = _open_fds(proc.pid)
            rounds = [await _idle_round(port, proc.pid) for _ in range(ROUNDS)]
            async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
                site = await http.get("/api/v1/site", headers=grid)
                rigs = await http.get("/api/v1/rigs", headers=viewer)
                after = (await http.get("/metrics")).text
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
            polls = _counter(after, "minerd_polls_total") - _counter(before, "minerd_polls_total")
            errors = _counter(after, "minerd_poll_errors_total") - _counter(
                before, "minerd_poll_errors_total"
            )
            print(
                f"\n{ROUNDS} rounds of {IDLE} idle connections, cap {CAP}, fd limit {FD_LIMIT}: "
                f"daemon fds {baseline_fds} before, {[f for f, _ in rounds]} during; "
                f"{polls:.0f} reads, {errors:.0f} failed; {len(lines)} log lines"
            )
            assert proc.returncode is None, "\n".join(lines[-40:])
            for fds, closed in rounds:
                assert closed == IDLE
                assert fds <= baseline_fds + CAP + RIGS, (fds, baseline_fds)
            assert site.status_code == 200, site.text
            assert rigs.status_code == 200, rigs.text
            assert all(r["fresh"] for r in rigs.json()["rigs"]), rigs.text
            assert polls > 0
            assert errors == 0, "\n".join(lines[-40:])
            assert not [line for line in lines if "open files" in line], "\n".join(lines[-40:])
            assert len(lines) <= MAX_LOG_LINES, "\n".join(lines[:60])
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
