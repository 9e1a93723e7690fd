"""The minerd command line: check, run, demo, sim, discover, quota, status, backup,
coordinator, region.

Commands other than check import their modules only when chosen, so `minerd check` stays
fast and does not need the daemon's or the simulator's dependencies to import.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from minerd import __version__
from minerd.cli.logging_setup import LOG_FORMATS, configure_logging

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a killed writer

# command -> (module, help); the module has run(args) and may have add_arguments(parser)
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("minerd.cli.demo", "run a simulated site and the daemon against it"),
    "sim": ("minerd.sim.cli", "run the site simulator (rigs and meters on 127.0.0.0/8)"),
    "discover": ("minerd.cli.discover", "scan hosts for rigs and write an inventory CSV"),
    "quota": (
        "minerd.cli.quota_cli",
        "quotas, energy awards and the settlement report through the daemon's API",
    ),
    "status": ("minerd.cli.quota_cli", "show the site's status through the daemon's API"),
    "backup": ("minerd.cli.backup", "copy the database online (checked) and prune old copies"),
    "coordinator": (
        "minerd.cli.coordinator",
        "split a regional limit over sites as allocations with leases (NATS)",
    ),
    "region": (
        "minerd.cli.region_cli",
        "this site's saved regional allocation: forget it (daemon stopped)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minerd", description="Keeps a mining site under its grid power quota."
    )
    parser.add_argument("--version", action="version", version=f"minerd {__version__}")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default="logfmt", help="stderr log format"
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = sub.add_parser("check", help="validate the site config and every profile it names")
    check.add_argument("-c", "--config", required=True, help="site config (TOML)")
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("-c", "--config", required=True, help="site config (TOML)")
    for name, (_, text) in LAZY_COMMANDS.items():
        # Options of lazy commands are parsed in a second step, by the module's own parser.
        sub.add_parser(name, help=text, add_help=False)
    return parser


def _import(module: str) -> ModuleType:
    return importlib.import_module(module)


def _parents(module: str) -> set[str]:
    """'a.b.c' -> {'a', 'a.b', 'a.b.c'}."""
    parts = module.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def _cmd_check(args: argparse.Namespace) -> int:
    from minerd.cli.check import run_check

    return run_check(args.config)


def _cmd_run(args: argparse.Namespace) -> int:
    from minerd.cli.check import EXIT_CONFIG
    from minerd.errors import ConfigError
    from minerd.settings import load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as e:
        for problem in e.problems:
            print(f"{e.source}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    app = _import("minerd.daemon.app")
    code = app.run(settings, args.log_format)
    return int(code or 0)


def _cmd_lazy(args: argparse.Namespace, rest: list[str]) -> int:
    module_name, text = LAZY_COMMANDS[args.command]
    try:
        module = _import(module_name)
    except ModuleNotFoundError as e:
        if e.name not in _parents(module_name):
            raise  # a dependency of the command is missing: show the real error
        print(f"minerd: command '{args.command}' is not available ({e})", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"minerd {args.command}", description=text)
    add_arguments = getattr(module, "add_arguments", None)
    if add_arguments is not None:
        add_arguments(parser)
    sub_args = parser.parse_args(rest, namespace=args)
    code = module.run(sub_args)
    return int(code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a pipe buffers: a closed reader shows here, not at exit
        return code
    except BrokenPipeError:
        # `minerd check ... | head`: the reader left; exit quietly like other Unix tools.
        # stdout is pointed at /dev/null so the interpreter's final flush cannot fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging(args.log_format, args.log_level)
    if args.command in LAZY_COMMANDS:
        return _cmd_lazy(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "check":
        return _cmd_check(args)
    return _cmd_run(args)
