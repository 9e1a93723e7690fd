"""`minerd demo`: a simulated site and the daemon in one command, no external service.

The simulator's rigs listen on their own loopback addresses and speak the cgminer/LuxOS API,
its meters speak Modbus TCP: the daemon reads and commands them exactly as a real site. The
demo writes its config, tokens and SQLite file under --dir and prints where to look.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from pathlib import Path

from minerd.app import Daemon, run_until_signalled
from minerd.clock import ScaledClock
from minerd.settings import load_settings
from minerd.sim.site import SimSite
from minerd.sim.spec import RigGroupSpec, SiteSpec

log = logging.getLogger("minerd.demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rigs", type=int, default=60, help="simulated rigs (default 60)")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="status page and API address")
    parser.add_argument("--dir", default="demo-site", help="where config, tokens and state go")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")


def _free(listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


def spec_for(rigs: int, speed: float) -> SiteSpec:
    third = max(1, rigs // 3)
    groups = (
        RigGroupSpec(model="bitmain-s21", count=rigs - 2 * third),
        RigGroupSpec(model="bitmain-s19jpro", count=third),
        RigGroupSpec(model="microbt-m50s", count=third),
    )
    # Ephemeral ports everywhere: the demo never collides with a real service.
    return SiteSpec(
        groups=groups, name="demo-site", rigs_per_container=20, speed=speed, rig_port=0, workers=1
    )


async def _demo(args: argparse.Namespace, workdir: Path) -> None:
    async with SimSite(spec_for(args.rigs, args.speed)) as sim:
        config = workdir / "site.toml"
        tokens = sim.write_config(config, api_listen=args.listen)
        settings = load_settings(config)
        daemon = Daemon(settings, clock=ScaledClock(args.speed))
        daemon.build()
        task = asyncio.create_task(daemon.run(), name="daemon")
        ready = asyncio.create_task(daemon.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            await task  # raises what stopped the daemon
            return
        url = f"http://{args.listen}/"
        print(
            f"\nminerd demo: {args.rigs} simulated rigs, site {settings.site.name}\n"
            f"  status page   {url}#token={tokens.operator}\n"
            f"  API docs      http://{args.listen}/docs\n"
            f"  simulator     {sim.control_url} (GET /truth, POST /faults)\n"
            f"  config        {config}\n"
            f"  tokens        grid={tokens.grid}\n"
            f"                operator={tokens.operator}\n"
            f"                viewer={tokens.viewer}\n"
            f"  try: curl -H 'Authorization: Bearer {tokens.grid}' "
            f"-d '{{\"limit_kw\": 60}}' -H 'Content-Type: application/json' "
            f"http://{args.listen}/api/v1/quotas\n"
            "Ctrl-C stops.\n",
            flush=True,
        )
        await task


def run(args: argparse.Namespace) -> int:
    if not _free(args.listen):
        print(f"minerd demo: {args.listen} is in use; pass --listen HOST:PORT", file=sys.stderr)
        return 2
    workdir = Path(args.dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run_until_signalled(lambda: _demo(args, workdir)))
