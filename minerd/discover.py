"""`minerd discover CIDR...`: find rigs answering the cgminer API and write an inventory CSV.

Each address gets one `version` request with a short timeout; a bounded pool of workers
keeps the number of open sockets fixed whatever the range. Progress goes to stderr; the
CSV (id,host,port,container,model_hint) to --output or stdout. Exit status: 0 when rigs
were found, 1 when none answered, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from minerd.devices.inventory import (
    DEFAULT_RIG_PORT,
    InventoryRow,
    expand_hosts,
    rig_id_for,
    write_inventory_rows,
)
from minerd.devices.rig_cgminer import version_model_hint
from minerd.errors import DeviceError
from minerd.transports.cgminer import CgminerClient

__all__ = ["ScanProgress", "add_arguments", "run", "scan"]

ProgressFn = Callable[["ScanProgress"], None]


class ScanProgress:
    __slots__ = ("done", "found", "started_s", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.found = 0
        self.started_s = time.monotonic()

    def line(self) -> str:
        rate = self.done / max(1e-6, time.monotonic() - self.started_s)
        return f"scanned {self.done}/{self.total}, found {self.found} rigs ({rate:.0f} addr/s)"


async def scan(
    hosts: Sequence[str],
    port: int = DEFAULT_RIG_PORT,
    *,
    timeout_s: float = 1.0,
    concurrency: int = 256,
    container: str = "",
    progress: ProgressFn | None = None,
    progress_interval_s: float = 0.5,
) -> list[InventoryRow]:
    """Rows for every host that answers `version`, in the order of `hosts`."""
    found: dict[int, InventoryRow] = {}
    state = ScanProgress(len(hosts))
    next_index = 0

    async def probe(index: int) -> None:
        host = hosts[index]
        client = CgminerClient(host, port, timeout_s=timeout_s, connect_timeout_s=timeout_s)
        try:
            reply = await client.command("version")
        except DeviceError:
            return
        found[index] = InventoryRow(
            rig_id_for(host, port), host, port, container, version_model_hint(reply)
        )
        state.found += 1

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(hosts):
            index = next_index
            next_index += 1
            await probe(index)
            state.done += 1

    async def report() -> None:
        while True:
            await asyncio.sleep(progress_interval_s)
            if progress is not None:
                progress(state)

    workers = max(1, min(concurrency, len(hosts)))
    reporter = asyncio.create_task(report())
    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(workers):
                tg.create_task(worker())
    finally:
        reporter.cancel()
    if progress is not None:
        progress(state)
    return [found[i] for i in sorted(found)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="CIDR",
        help="addresses to scan: CIDR (10.0.0.0/24), range (10.0.0.10-20) or single IP",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_RIG_PORT, help="cgminer API port")
    parser.add_argument(
        "--timeout", type=float, default=1.0, metavar="S", help="seconds per address (1.0)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=256, help="addresses probed at once (256)"
    )
    parser.add_argument("--container", default="", help="container column for every row")
    parser.add_argument(
        "-o", "--output", default="-", help="inventory CSV to write ('-': stdout, the default)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _open_files_budget(wanted: int) -> int:
    """Concurrency that leaves half the open-files limit to everything else."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, int(soft) // 2))


def run(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        hosts = expand_hosts(args.targets)
    except ValueError as exc:
        print(f"minerd discover: {exc}", file=err)
        return 2
    if not 1 <= args.port <= 65535:
        print(f"minerd discover: --port {args.port} is not 1..65535", file=err)
        return 2
    if args.timeout <= 0 or args.concurrency < 1:
        print("minerd discover: --timeout must be > 0 and --concurrency >= 1", file=err)
        return 2
    concurrency = _open_files_budget(args.concurrency)
    tty = err.isatty()

    def show(p: ScanProgress) -> None:
        if args.quiet:
            return
        if tty:
            print("\r" + p.line(), end="", file=err, flush=True)
        else:
            print(p.line(), file=err, flush=True)

    rows = asyncio.run(
        scan(
            hosts,
            args.port,
            timeout_s=args.timeout,
            concurrency=concurrency,
            container=args.container,
            progress=show,
            progress_interval_s=0.5 if tty else 5.0,
        )
    )
    if tty and not args.quiet:
        print(file=err)
    if args.output == "-":
        write_inventory_rows(sys.stdout, rows)
        sys.stdout.flush()
    else:
        try:
            with Path(args.output).open("w", newline="", encoding="utf-8") as fh:
                write_inventory_rows(fh, rows)
        except OSError as exc:
            print(f"minerd discover: cannot write {args.output}: {exc}", file=err)
            return 2
        if not args.quiet:
            print(f"wrote {len(rows)} rigs to {args.output}", file=err)
    return 0 if rows else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minerd discover", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
