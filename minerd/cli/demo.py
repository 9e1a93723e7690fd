"""`minerd demo`: a simulated site and the daemon in one command, no external service.

The simulator's rigs listen on their own loopback addresses and speak their firmware's APIs
(a real site's mix: stock Antminer CGI, LuxOS, Vnish REST, Whatsminer, Braiins OS+ gRPC and
read-only cgminer), its meters speak Modbus TCP: the daemon reads and commands them exactly
as a real site. The
demo writes its config, tokens and SQLite file under --dir and prints where to look.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from pathlib import Path

from minerd.cli.demo_cluster import (
    DemoClusterError,
    check_nats_client,
    nats_server_binary,
    run_cluster_demo,
)
from minerd.clock import ScaledClock
from minerd.daemon.app import Daemon, run_until_signalled
from minerd.settings import load_settings
from minerd.sim.catalog import rig_model_names
from minerd.sim.fleet_spec import parse_fleet
from minerd.sim.site import SimSite
from minerd.sim.spec import SiteSpec

log = logging.getLogger("minerd.cli.demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rigs", type=int, default=60, help="simulated rigs, split over the families (default 60)"
    )
    parser.add_argument(
        "--fleet",
        default=None,
        metavar="FAMILY:COUNT[:MODEL],...",
        help='rigs per firmware family, e.g. "luxos:10,stock:20,cgminer:5" (replaces --rigs; '
        "default: a real site's mix of LuxOS, stock, Vnish, Whatsminer, Braiins OS+ and "
        "read-only cgminer)",
    )
    parser.add_argument("--listen", default="127.0.0.1:8080", help="status page and API address")
    parser.add_argument("--dir", default="demo-site", help="where config, tokens and state go")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        metavar="N",
        help="N >= 2: run the site as a controller and N poller shards on a local nats-server "
        "(needs the cluster extra: pip install 'minerd[cluster]'); default: one process",
    )
    parser.add_argument(
        "--base-octet",
        type=int,
        default=1,
        help="the simulated rigs of container c listen on 127.<base-octet + c>.x.y (default 1)",
    )


def _free(listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


# A real site's mix by firmware family (share of rigs, per 20): stock Antminer most, then
# LuxOS and Vnish, Whatsminer, Braiins OS+, and a few plain cgminer rigs minerd only reads.
MIX = (("stock", 8), ("luxos", 4), ("vnish", 4), ("whatsminer", 2), ("braiins", 1), ("cgminer", 1))
ANTMINER_MODELS = ("bitmain-s21", "bitmain-s19jpro")


def default_fleet(rigs: int) -> str:
    """`rigs` split over MIX, every family at least one rig (the rounding goes to stock)."""
    counts = {name: max(1, rigs * share // 20) for name, share in MIX}
    counts["stock"] = max(1, counts["stock"] + rigs - sum(counts.values()))
    return ",".join(f"{name}:{n}" for name, n in counts.items())


def spec_for(rigs: int, speed: float, fleet: str | None = None, base_octet: int = 1) -> SiteSpec:
    groups = parse_fleet(fleet or default_fleet(rigs), ANTMINER_MODELS, rig_model_names())
    # Ephemeral API ports: the demo never collides with a real service. The families' extra
    # servers (web CGI/REST, Whatsminer API v3, Braiins gRPC) take one fixed unprivileged
    # port on each rig's own loopback address, since a written config names one per group.
    return SiteSpec(
        groups=groups,
        name="demo-site",
        rigs_per_container=20,
        speed=speed,
        rig_port=0,
        workers=1,
        web_port=18080,
        whatsminer_api_port=14433,
        grpc_port=15051,
        base_octet=base_octet,
    )


async def _demo(args: argparse.Namespace, workdir: Path) -> None:
    spec = spec_for(args.rigs, args.speed, args.fleet, args.base_octet)
    async with SimSite(spec) as sim:
        if args.shards:
            await run_cluster_demo(sim, workdir, args.listen, args.shards, _families(spec))
            return
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
            f"\nminerd demo: {spec.rig_count} simulated rigs ({_families(spec)}), "
            f"site {settings.site.name}\n"
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


def _families(spec: SiteSpec) -> str:
    counts: dict[str, int] = {}
    for g in spec.groups:
        counts[g.protocol.value] = counts.get(g.protocol.value, 0) + g.count
    return ", ".join(f"{n} {name}" for name, n in counts.items())


def run(args: argparse.Namespace) -> int:
    if not _free(args.listen):
        print(f"minerd demo: {args.listen} is in use; pass --listen HOST:PORT", file=sys.stderr)
        return 2
    if args.shards == 1 or args.shards < 0:
        print("minerd demo: --shards takes N >= 2 (or 0: one process)", file=sys.stderr)
        return 2
    try:
        spec = spec_for(args.rigs, args.speed, args.fleet, args.base_octet)
        if args.shards:
            nats_server_binary()
            check_nats_client()
    except (ValueError, DemoClusterError) as e:
        print(f"minerd demo: {e}", file=sys.stderr)
        return 2
    if args.shards > spec.rig_count:
        print(f"minerd demo: {args.shards} shards for {spec.rig_count} rigs", file=sys.stderr)
        return 2
    workdir = Path(args.dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run_until_signalled(lambda: _demo(args, workdir)))
