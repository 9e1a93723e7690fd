"""`minerd coordinator --config region.toml`: the regional coordinator (issue 16 item 3).

Splits the region's limit over its sites by marginal hashrate per kW, within each site's own
limit, as allocations with leases over NATS (docs/scale.md). Needs the [cluster] extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from minerd.cli.check import EXIT_CONFIG
from minerd.errors import ConfigError
from minerd.settings.region import load_region_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="region config (TOML)")


async def _serve(args: argparse.Namespace) -> int:
    from minerd.clock import SystemClock
    from minerd.daemon.coordinator import CoordinatorService

    settings = load_region_config(args.config)
    service = CoordinatorService(settings, SystemClock())
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        if task is not None:
            loop.add_signal_handler(sig, task.cancel)
    try:
        await service.run()
    except asyncio.CancelledError:
        return 0
    finally:
        service.close()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        load_region_config(args.config)
    except ConfigError as e:
        for problem in e.problems:
            print(f"{e.source}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        import nats  # noqa: F401
    except ModuleNotFoundError:
        print("minerd coordinator needs nats-py: pip install 'minerd[cluster]'", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(args))
    return 0
