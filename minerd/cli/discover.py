"""`minerd discover CIDR...`: find rigs, tell their firmware family and model apart, and write
inventories ready for the config.

Each address gets one `version` request on the cgminer port with a short timeout; a rig that
answers is then told apart by family (minerd.devices.detect: LuxOS, stock Antminer, Vnish,
Whatsminer, Braiins OS+, or plain cgminer, read only) and model. A bounded pool of workers
keeps the number of open sockets fixed whatever the range, and each rig's detection has a
ceiling, so a hung rig holds one worker for a few timeouts and nothing more.

Output: with --out-dir, one inventory CSV per (family, model) and the `[[rigs]]` groups that
use them printed as TOML (and kept in DIR/rigs.toml); rigs whose model has no profile go to
DIR/unknown-models.csv and are named on stderr. Without it, one CSV of every rig
(id,host,port,container,model_hint) to --output or stdout, as before. Progress goes to
stderr. Exit status: 0 when rigs were found, 1 when none answered, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from minerd.devices.detect import DETECTABLE, Detection, FamilyPorts, detect_family
from minerd.devices.inventory import (
    DEFAULT_RIG_PORT,
    InventoryRow,
    expand_hosts,
    rig_id_for,
    write_inventory_csv,
    write_inventory_rows,
)
from minerd.devices.rig_cgminer import version_model_hint
from minerd.errors import CommandRejected, DeviceError
from minerd.model import RigProtocol
from minerd.settings.models import DEFAULT_RIG_USERNAMES, RIG_PORT_KEYS
from minerd.transports.cgminer import CgminerClient, check_status

__all__ = [
    "DiscoveredRig",
    "RigGroup",
    "ScanProgress",
    "add_arguments",
    "discover",
    "group_rigs",
    "groups_toml",
    "run",
    "scan",
    "write_groups",
]

ProgressFn = Callable[["ScanProgress"], None]
UNKNOWN_CSV = "unknown-models.csv"
GROUPS_TOML = "rigs.toml"
# A rig's whole detection (version, then at most four more probes, each under the timeout)
# ends within this many timeouts, whatever a half-hung rig does.
DETECT_CEILING_TIMEOUTS = 6.0


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


@dataclass(frozen=True)
class DiscoveredRig:
    row: InventoryRow
    detection: Detection


@dataclass(frozen=True)
class RigGroup:
    """Rigs of one family and one profile: one `[[rigs]]` group, one CSV."""

    family: RigProtocol
    profile: str
    rigs: tuple[DiscoveredRig, ...]

    @property
    def name(self) -> str:
        return f"{self.family.value}-{self.profile}"


async def _probe(
    host: str,
    port: int,
    container: str,
    ports: FamilyPorts,
    timeout_s: float,
    profiles_dir: Path | None,
) -> DiscoveredRig | None:
    client = CgminerClient(host, port, timeout_s=timeout_s, connect_timeout_s=timeout_s)
    try:
        reply = await client.request("version")
    except DeviceError:
        return None
    try:
        check_status(reply, client.device, client.endpoint, "version")
    except CommandRejected:
        # A rig that refuses `version` is still a rig (btminer's `version` is unconfirmed,
        # firmware-apis.md 5.1): its `summary` names the firmware in STATUS Description.
        with contextlib.suppress(DeviceError):
            reply = await client.command("summary")
    try:
        async with asyncio.timeout(timeout_s * DETECT_CEILING_TIMEOUTS):
            detection = await detect_family(host, port, reply, ports, timeout_s, profiles_dir)
    except TimeoutError:
        note = f"detection did not finish within {timeout_s * DETECT_CEILING_TIMEOUTS:g}s"
        detection = Detection(RigProtocol.CGMINER, "", None, "", note)
    hint = version_model_hint(reply)
    model = detection.model_type
    if model and model not in hint:  # Braiins names its model in devdetails, not version
        hint = f"{model} / {hint}" if hint else model
    return DiscoveredRig(
        InventoryRow(rig_id_for(host, port), host, port, container, hint), detection
    )


async def discover(
    hosts: Sequence[str],
    port: int = DEFAULT_RIG_PORT,
    *,
    ports: FamilyPorts | None = None,
    timeout_s: float = 1.0,
    concurrency: int = 256,
    container: str = "",
    progress: ProgressFn | None = None,
    progress_interval_s: float = 0.5,
    profiles_dir: Path | None = None,
) -> list[DiscoveredRig]:
    """Every host that answers `version`, with its family and model, in the order of `hosts`;
    models are matched to `profiles_dir`'s rig profiles first, then to the shipped ones."""
    family_ports = ports or FamilyPorts()
    found: dict[int, DiscoveredRig] = {}
    state = ScanProgress(len(hosts))
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(hosts):
            index = next_index
            next_index += 1
            rig = await _probe(hosts[index], port, container, family_ports, timeout_s, profiles_dir)
            if rig is not None:
                found[index] = rig
                state.found += 1
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


async def scan(
    hosts: Sequence[str],
    port: int = DEFAULT_RIG_PORT,
    *,
    timeout_s: float = 1.0,
    concurrency: int = 256,
    container: str = "",
    progress: ProgressFn | None = None,
    progress_interval_s: float = 0.5,
    ports: FamilyPorts | None = None,
) -> list[InventoryRow]:
    """Rows for every host that answers `version`, in the order of `hosts`."""
    rigs = await discover(
        hosts,
        port,
        ports=ports,
        timeout_s=timeout_s,
        concurrency=concurrency,
        container=container,
        progress=progress,
        progress_interval_s=progress_interval_s,
    )
    return [r.row for r in rigs]


def group_rigs(rigs: Sequence[DiscoveredRig]) -> tuple[list[RigGroup], list[DiscoveredRig]]:
    """One group per (family, profile), in DETECTABLE then profile order; and the rigs whose
    model fits no profile."""
    by_key: dict[tuple[RigProtocol, str], list[DiscoveredRig]] = {}
    unknown: list[DiscoveredRig] = []
    for rig in rigs:
        profile = rig.detection.profile
        if profile is None:
            unknown.append(rig)
        else:
            by_key.setdefault((rig.detection.family, profile), []).append(rig)
    order = {f: i for i, f in enumerate(DETECTABLE)}
    keys = sorted(by_key, key=lambda k: (order.get(k[0], len(order)), k[1]))
    return [RigGroup(f, p, tuple(by_key[(f, p)])) for f, p in keys], unknown


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


# What each login family's password_file holds (docs/families/<family>.md).
_PASSWORD_OF = {
    "stock": "the rigs' web password",
    "vnish": "the Vnish web password",
    "whatsminer": "the admin password, write access on",
    "braiins": "the Braiins OS+ password",
}


def _group_lines(group: RigGroup, csv_path: Path, ports: FamilyPorts) -> list[str]:
    family = group.family.value
    models = sorted({r.detection.model_type for r in group.rigs})
    lines = [
        f"# {len(group.rigs)} rig(s): {', '.join(models)} on {family}",
        "[[rigs]]",
        f"name = {_q(group.name)}",
        f"driver = {_q(family)}",
        f"profile = {_q(group.profile)}",
        f"csv = {_q(str(csv_path))}",
    ]
    for key in RIG_PORT_KEYS.get(family, ()):
        lines.append(f"{key} = {getattr(ports, key)}")
    if family in RIG_PORT_KEYS:
        user = DEFAULT_RIG_USERNAMES.get(family)
        whose = f"user {user}" if user else "no user name"
        lines += [
            f"# {_PASSWORD_OF.get(family, 'the rigs password')} ({whose}), one line, mode 0600:",
            f"password_file = {_q(family + '.password')}",
        ]
    elif group.family is RigProtocol.LUXOS:
        lines.append('# password = ""  # the LuxOS session password, if the rigs have one')
    elif group.family is RigProtocol.CGMINER:
        lines.append("# read only: minerd reads these rigs but cannot command them")
    return [*lines, ""]


def groups_toml(
    groups: Sequence[RigGroup],
    unknown: Sequence[DiscoveredRig],
    csv_paths: dict[str, Path],
    ports: FamilyPorts,
    profiles_dir: Path | None = None,
) -> str:
    """The `[[rigs]]` groups for the config, with the rigs left out named in comments."""
    lines = ["# [[rigs]] groups from `minerd discover`: one per firmware family and model"]
    if profiles_dir is not None:
        lines.append(
            f"# site profiles were matched first: the config needs [site] profiles_dir = "
            f"{_q(str(profiles_dir))}"
        )
    lines.append("")
    for group in groups:
        lines += _group_lines(group, csv_paths[group.name], ports)
    if unknown:
        lines.append(f"# Not grouped: {len(unknown)} rig(s) whose model has no rig profile:")
        lines += [f"#   {text}" for text in _unknown_summary(unknown)]
        lines.append("")
    return "\n".join(lines)


def _unknown_summary(unknown: Sequence[DiscoveredRig]) -> list[str]:
    counts: dict[tuple[str, str], list[str]] = {}
    for rig in unknown:
        d = rig.detection
        counts.setdefault((d.family.value, d.model_type), []).append(rig.row.host)
    out = []
    for (family, model), hosts in sorted(counts.items()):
        named = f"model {model!r}" if model else "no model reported"
        shown = ", ".join(hosts[:3]) + (f" and {len(hosts) - 3} more" if len(hosts) > 3 else "")
        out.append(f"{family}: {named}: {len(hosts)} rig(s) ({shown})")
    return out


def _unknown_rows(unknown: Sequence[DiscoveredRig]) -> list[InventoryRow]:
    rows = []
    for rig in unknown:
        d = rig.detection
        hint = " / ".join(p for p in (d.model_type or "no model", d.family.value, d.firmware) if p)
        rows.append(InventoryRow(rig.row.id, rig.row.host, rig.row.port, rig.row.container, hint))
    return rows


def write_groups(
    out_dir: Path,
    rigs: Sequence[DiscoveredRig],
    ports: FamilyPorts,
    profiles_dir: Path | None = None,
) -> tuple[str, list[RigGroup], list[DiscoveredRig]]:
    """One CSV per group (and unknown-models.csv) in out_dir; the TOML of the groups."""
    groups, unknown = group_rigs(rigs)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for group in groups:
        path = (out_dir / f"{group.name}.csv").resolve()
        write_inventory_csv(path, [r.row for r in group.rigs])
        paths[group.name] = path
    unknown_path = out_dir / UNKNOWN_CSV
    if unknown:
        write_inventory_csv(unknown_path, _unknown_rows(unknown))
    elif unknown_path.exists():
        unknown_path.unlink()  # a stale list from an earlier scan would mislead
    toml = groups_toml(groups, unknown, paths, ports, profiles_dir)
    (out_dir / GROUPS_TOML).write_text(toml, encoding="utf-8")
    return toml, groups, unknown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="CIDR",
        help="addresses to scan: CIDR (10.0.0.0/24), range (10.0.0.10-20) or single IP",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_RIG_PORT, help="cgminer API port")
    parser.add_argument(
        "--timeout", type=float, default=1.0, metavar="S", help="seconds per probe (1.0)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=256, help="addresses probed at once (256)"
    )
    parser.add_argument("--container", default="", help="container column for every row")
    parser.add_argument(
        "-o", "--output", default="-", help="inventory CSV to write ('-': stdout, the default)"
    )
    parser.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write one inventory CSV per firmware family and model into DIR and print the "
        "[[rigs]] groups for the config (also kept in DIR/rigs.toml)",
    )
    defaults = FamilyPorts()
    parser.add_argument(
        "--web-port",
        type=int,
        default=defaults.web_port,
        help=f"stock CGI / Vnish REST port ({defaults.web_port})",
    )
    parser.add_argument(
        "--api-port",
        type=int,
        default=defaults.api_port,
        help=f"Whatsminer API v3 port ({defaults.api_port})",
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=defaults.grpc_port,
        help=f"Braiins OS+ gRPC port ({defaults.grpc_port})",
    )
    parser.add_argument(
        "--profiles-dir",
        metavar="DIR",
        help="the site's own profiles ([site] profiles_dir): DIR/rigs/*.toml are matched "
        "before the shipped ones",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _open_files_budget(wanted: int) -> int:
    """Concurrency that leaves half the open-files limit to everything else."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, int(soft) // 2))


def _report(rigs: Sequence[DiscoveredRig], split: bool, err: TextIO) -> None:
    """What was found per family and model, the probes that fell short, the unknown models."""
    groups, unknown = group_rigs(rigs)
    for group in groups:
        print(f"  {group.name}: {len(group.rigs)} rig(s)", file=err)
    notes = [r for r in rigs if r.detection.note]
    for rig in notes[:20]:
        d = rig.detection
        print(f"  note: {rig.row.host}: {d.family.value}: {d.note}", file=err)
    if len(notes) > 20:
        print(f"  note: {len(notes) - 20} more rigs with probe notes", file=err)
    if unknown:
        where = f" (listed in {UNKNOWN_CSV})" if split else ""
        print(
            f"{len(unknown)} rig(s) not grouped{where}: their model fits no profile in "
            "drivers/rigs; add a profile for the model, then a [[rigs]] group by hand:",
            file=err,
        )
        for text in _unknown_summary(unknown):
            print(f"  {text}", file=err)
    if not split and len(groups) > 1:
        print(
            f"{len(groups)} families/models found; a [[rigs]] group takes one driver and one "
            "profile: use --out-dir DIR to write one inventory per group",
            file=err,
        )


def run(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        hosts = expand_hosts(args.targets)
    except ValueError as exc:
        print(f"minerd discover: {exc}", file=err)
        return 2
    for flag in ("port", "web_port", "api_port", "grpc_port"):
        value = getattr(args, flag)
        if not 1 <= value <= 65535:
            print(f"minerd discover: --{flag.replace('_', '-')} {value} is not 1..65535", file=err)
            return 2
    if args.out_dir is not None and args.output != "-":
        print("minerd discover: use either --out-dir or -o/--output, not both", file=err)
        return 2
    if args.timeout <= 0 or args.concurrency < 1:
        print("minerd discover: --timeout must be > 0 and --concurrency >= 1", file=err)
        return 2
    ports = FamilyPorts(args.web_port, args.api_port, args.grpc_port)
    profiles_dir = Path(args.profiles_dir).resolve() if args.profiles_dir else None
    if profiles_dir is not None and not profiles_dir.is_dir():
        print(f"minerd discover: --profiles-dir {profiles_dir} is not a directory", file=err)
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

    rigs = asyncio.run(
        discover(
            hosts,
            args.port,
            ports=ports,
            timeout_s=args.timeout,
            concurrency=concurrency,
            container=args.container,
            progress=show,
            progress_interval_s=0.5 if tty else 5.0,
            profiles_dir=profiles_dir,
        )
    )
    if tty and not args.quiet:
        print(file=err)
    rows = [r.row for r in rigs]
    if args.out_dir is not None:
        out_dir = Path(args.out_dir)
        try:
            toml, groups, unknown = write_groups(out_dir, rigs, ports, profiles_dir)
        except OSError as exc:
            print(f"minerd discover: cannot write to {out_dir}: {exc}", file=err)
            return 2
        sys.stdout.write(toml)
        sys.stdout.flush()
        if not args.quiet:
            grouped = len(rigs) - len(unknown)
            print(
                f"wrote {grouped} rigs in {len(groups)} group(s) to {out_dir} "
                f"(groups in {out_dir / GROUPS_TOML})",
                file=err,
            )
    elif args.output == "-":
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
    if rigs and not args.quiet:
        _report(rigs, args.out_dir is not None, err)
    elif rigs and args.out_dir is not None:
        _, unknown = group_rigs(rigs)
        if unknown:  # never silent about rigs it could not place, even with -q
            print(f"{len(unknown)} rig(s) not grouped: see {UNKNOWN_CSV}", file=err)
    return 0 if rows else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minerd discover", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
