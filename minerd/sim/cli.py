"""`minerd sim`: run a simulated site and write the daemon's config for it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from minerd.clock import elapsed_s
from minerd.model import RigProtocol
from minerd.sim.catalog import rig_model_names
from minerd.sim.fleet_spec import parse_fleet
from minerd.sim.site import SimSite
from minerd.sim.spec import RigGroupSpec, SiteSpec

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("bitmain-s19jpro", "bitmain-s21")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rigs", type=int, default=20, help="LuxOS rigs (default 20)")
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="rig model for the LuxOS rigs, repeatable: split evenly (default: "
        + ", ".join(DEFAULT_MODELS)
        + ")",
    )
    parser.add_argument(
        "--fleet",
        default=None,
        metavar="FAMILY:COUNT[:MODEL],...",
        help='rigs per firmware family, e.g. "luxos:2000,stock:4000,vnish:2000,'
        'whatsminer:1000,braiins:500,cgminer:500" (replaces --rigs and --cgminer-rigs)',
    )
    parser.add_argument("--cgminer-rigs", type=int, default=0, help="read-only cgminer rigs")
    parser.add_argument("--modbus-rigs", type=int, default=0, help="rigs behind container PLCs")
    parser.add_argument("--mqtt-rigs", type=int, default=0, help="rigs on the MQTT broker")
    parser.add_argument("--mqtt", default=None, help="broker URL for MQTT rigs: mqtt://host:port")
    parser.add_argument("--speed", type=float, default=1.0, help="sim seconds per wall second")
    parser.add_argument(
        "--control", default="127.0.0.1:8700", help="HOST:PORT of the control endpoint"
    )
    parser.add_argument("--port", type=int, default=4028, help="rig API port (0: ephemeral)")
    parser.add_argument("--base-octet", type=int, default=1, help="rigs on 127.<base+c>.x.y")
    parser.add_argument("--rigs-per-container", type=int, default=250)
    parser.add_argument("--meter-port", type=int, default=5020, help="grid meter port (+1 feeders)")
    parser.add_argument("--plc-port", type=int, default=5502, help="container PLC Modbus port")
    parser.add_argument("--workers", type=int, default=0, help="rig processes (0: by size)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="DEVICE:FAULT",
        help="inject a fault at start, repeatable",
    )
    parser.add_argument("--write-config", default=None, metavar="PATH", help="daemon config")
    parser.add_argument(
        "--api-listen", default="127.0.0.1:8080", help="[api] listen in the written config"
    )


def spec_from_args(args: argparse.Namespace) -> SiteSpec:
    models = tuple(args.model or DEFAULT_MODELS)
    unknown = [m for m in models if m not in rig_model_names()]
    if unknown:
        known = ", ".join(rig_model_names())
        raise SystemExit(f"minerd sim: unknown rig model(s) {unknown}; known: {known}")
    groups: list[RigGroupSpec] = []
    if getattr(args, "fleet", None):
        try:
            groups.extend(parse_fleet(str(args.fleet), models, rig_model_names()))
        except ValueError as e:
            raise SystemExit(f"minerd sim: {e}") from None
    else:
        base, extra = divmod(int(args.rigs), len(models))
        for i, model in enumerate(models):
            count = base + (1 if i < extra else 0)
            if count:
                groups.append(RigGroupSpec(model, count, RigProtocol.LUXOS))
        if args.cgminer_rigs:
            groups.append(RigGroupSpec(models[0], int(args.cgminer_rigs), RigProtocol.CGMINER))
    if args.modbus_rigs:
        groups.append(RigGroupSpec("microbt-m50s", int(args.modbus_rigs), RigProtocol.MODBUS))
    if args.mqtt_rigs:
        groups.append(RigGroupSpec("microbt-m50s", int(args.mqtt_rigs), RigProtocol.MQTT))
    faults = []
    for text in args.fault:
        device, sep, fault = str(text).partition(":")
        if not sep:
            raise SystemExit(f"--fault {text!r}: expected DEVICE:FAULT")
        faults.append((device, fault))
    return SiteSpec(
        groups=tuple(groups),
        speed=float(args.speed),
        rig_port=int(args.port),
        base_octet=int(args.base_octet),
        rigs_per_container=int(args.rigs_per_container),
        meter_port=int(args.meter_port),
        plc_port=int(args.plc_port),
        mqtt_url=args.mqtt,
        control=str(args.control),
        workers=int(args.workers),
        initial_faults=tuple(faults),
    )


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(spec, args.write_config, str(args.api_listen)))
    return 0


async def _serve(spec: SiteSpec, config_path: str | None, api_listen: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    started = elapsed_s()
    async with SimSite(spec) as site:
        print(
            f"minerd sim: {spec.rig_count} rigs in {site.containers} containers, "
            f"{len(site.meters)} meters, {site.workers_n} rig process(es), "
            f"speed {spec.speed:g}, up in {elapsed_s() - started:.1f} s",
            flush=True,
        )
        print(f"minerd sim: control endpoint {site.control_url} (GET /truth)", flush=True)
        if config_path:
            tokens = site.write_config(config_path, api_listen)
            print(f"minerd sim: config {config_path}, tokens {tokens.path}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minerd sim", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
