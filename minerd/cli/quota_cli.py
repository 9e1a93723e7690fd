"""`minerd quota set|show|schedule|withdraw|awards|settlement` and `minerd status`: thin
clients of the API (awards and settlement: minerd.cli.awards_cli; HTTP and token:
minerd.cli.api_client).

Wiring (minerd/cli/entry.py LAZY_COMMANDS): both "quota" and "status" map to this module;
run(args) dispatches on args.command. Token: --token, --token-file or $MINERD_TOKEN;
URL: --url or $MINERD_URL (default http://127.0.0.1:8080).

A token file holds one token, or one `role = "token"` line per role (the PATH.tokens file
`minerd sim --write-config` writes); --role picks one (default operator for status, grid
for quota). No message or traceback ever prints a token.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO
from urllib.parse import urlencode

from minerd.cli import awards_cli

# Re-exported: tests and scripts read the exit codes here.
from minerd.cli.api_client import EXIT_API as EXIT_API
from minerd.cli.api_client import EXIT_OK as EXIT_OK
from minerd.cli.api_client import EXIT_USAGE as EXIT_USAGE
from minerd.cli.api_client import CliError as CliError
from minerd.cli.api_client import JsonObj, add_common, call, redact


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.allow_abbrev = False  # "--to" must not be taken for "--token"
    add_common(parser)
    if parser.prog.split()[-1] == "status":
        return
    sub = parser.add_subparsers(dest="quota_command", metavar="ACTION", required=True)
    s = sub.add_parser("set", help="set a limit now or for a time window")
    s.add_argument("limit_kw", type=float, help="the limit in kW")
    s.add_argument("--start", help="ISO 8601 with offset; default now")
    s.add_argument("--end", help="ISO 8601 with offset; default until withdrawn")
    s.add_argument("--reference", help="the grid order's reference (makes a retry safe)")
    s.add_argument("--idempotency-key", help="Idempotency-Key header (makes a retry safe)")
    sh = sub.add_parser("show", help="quotas and the effective-limit timeline")
    sh.add_argument("--from", dest="from_", help="ISO 8601 with offset; default now")
    sh.add_argument("--to", help="ISO 8601 with offset; default 48 h after from")
    sc = sub.add_parser("schedule", help="replace day-ahead blocks from a CSV or JSON file")
    sc.add_argument("file", type=Path, help="CSV (start,end,limit_kw) or JSON {blocks: [...]}")
    w = sub.add_parser("withdraw", help="withdraw a quota by id")
    w.add_argument("quota_id")
    awards_cli.add_parsers(sub)


# ---------------------------------------------------------------- commands


def _schedule_blocks(path: Path) -> list[JsonObj]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}", EXIT_USAGE) from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CliError(f"{path}: not JSON: {exc}", EXIT_USAGE) from exc
        blocks = data.get("blocks") if isinstance(data, dict) else data
        if not isinstance(blocks, list):
            raise CliError(f'{path}: expected a list of blocks or {{"blocks": [...]}}', EXIT_USAGE)
        return [b for b in blocks if isinstance(b, dict)]
    out: list[JsonObj] = []
    reader = csv.DictReader(text.splitlines())
    _check_schedule_header(path, reader.fieldnames)
    for n, row in enumerate(reader, start=2):
        try:
            out.append(
                {"start": row["start"], "end": row["end"], "limit_kw": float(row["limit_kw"])}
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CliError(
                f"{path}:{n}: need columns start,end,limit_kw ({exc})", EXIT_USAGE
            ) from exc
    return out


SCHEDULE_COLUMNS = ("start", "end", "limit_kw")


def _check_schedule_header(path: Path, fieldnames: Sequence[str] | None) -> None:
    """Line 1 must name the columns; a file that starts with data says so, naming line 1."""
    want = ",".join(SCHEDULE_COLUMNS)
    if not fieldnames:
        raise CliError(
            f"{path}: empty; expected a header row {want} and one row per block", EXIT_USAGE
        )
    names = [f.strip() for f in fieldnames]
    missing = [c for c in SCHEDULE_COLUMNS if c not in names]
    if not missing:
        return
    if not any(c in names for c in SCHEDULE_COLUMNS):
        raise CliError(
            f"{path}:1: no header row: line 1 must be {want} (it is {','.join(names)!r})",
            EXIT_USAGE,
        )
    raise CliError(f"{path}:1: header row lacks {', '.join(missing)} (need {want})", EXIT_USAGE)


def _print_notes(ans: JsonObj, out: TextIO) -> None:
    """The API's hints (e.g. a limit above the contract, which caps it)."""
    notes = ans.get("notes")
    for note in notes if isinstance(notes, list) else []:
        print(f"note: {note}", file=out)


def _print_quota(q: JsonObj, out: TextIO) -> None:
    end = q.get("end") or "until withdrawn"
    state = f" withdrawn {q['withdrawn_at']}" if q.get("withdrawn_at") else ""
    ref = f" ref {q['reference']}" if q.get("reference") else ""
    print(
        f"{q['id']}  {q['limit_kw']:>10} kW  {q['start']} -> {end}  [{q['source']}]{ref}{state}",
        file=out,
    )


def _quota(args: argparse.Namespace, out: TextIO) -> int:
    cmd = args.quota_command
    if cmd in awards_cli.ACTIONS:
        return awards_cli.run(args, out)
    if cmd == "set":
        body: JsonObj = {"limit_kw": args.limit_kw}
        for key in ("start", "end", "reference"):
            if getattr(args, key):
                body[key] = getattr(args, key)
        hdrs = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
        status, ans = call(args, "POST", "/api/v1/quotas", body, hdrs)
        if args.json:
            print(json.dumps(ans, indent=2), file=out)
        else:
            verb = "accepted" if status == 201 else "already accepted"
            print(
                f"quota {ans['id']} {verb}: {args.limit_kw} kW from {ans['effective_at']}", file=out
            )
            _print_notes(ans, out)
        return EXIT_OK
    if cmd == "show":
        params = {k: v for k, v in (("from", args.from_), ("to", args.to)) if v}
        query = f"?{urlencode(params)}" if params else ""
        _, ans = call(args, "GET", f"/api/v1/quotas{query}")
        if args.json:
            print(json.dumps(ans, indent=2), file=out)
            return EXIT_OK
        quotas = ans.get("quotas")
        print(f"quotas in force between {ans['from']} and {ans['to']}:", file=out)
        for q in quotas if isinstance(quotas, list) else []:
            _print_quota(q, out)
        print("effective limit:", file=out)
        steps = ans.get("timeline")
        for s in steps if isinstance(steps, list) else []:
            print(
                f"  {s['start']} -> {s['end']}  {s['limit_kw']:>10} kW  ({s['origin']})", file=out
            )
        return EXIT_OK
    if cmd == "schedule":
        blocks = _schedule_blocks(args.file)
        _, ans = call(args, "PUT", "/api/v1/quotas/schedule", {"blocks": blocks})
        if args.json:
            print(json.dumps(ans, indent=2), file=out)
        else:
            added, withdrawn = ans.get("added"), ans.get("withdrawn")
            n_added = len(added) if isinstance(added, list) else 0
            n_gone = len(withdrawn) if isinstance(withdrawn, list) else 0
            print(f"schedule accepted: {n_added} blocks, {n_gone} replaced", file=out)
            _print_notes(ans, out)
        return EXIT_OK
    if cmd == "withdraw":
        _, ans = call(args, "DELETE", f"/api/v1/quotas/{args.quota_id}")
        if args.json:
            print(json.dumps(ans, indent=2), file=out)
        else:
            print(f"quota {ans['id']} withdrawn at {ans['withdrawn_at']}", file=out)
        return EXIT_OK
    raise CliError(f"unknown action {cmd!r}", EXIT_USAGE)


def _status(args: argparse.Namespace, out: TextIO) -> int:
    _, s = call(args, "GET", "/api/v1/site")
    if args.json:
        print(json.dumps(s, indent=2), file=out)
        return EXIT_OK
    lim = s["limit"]
    assert isinstance(lim, dict)
    fs = s["failsafe"]
    assert isinstance(fs, dict)
    counts = s["rigs_by_state"]
    assert isinstance(counts, dict)
    states = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    lines = [
        f"site {s['site']} at {s['taken_at']}",
        f"grid import   {_kw(s['grid_import_kw'])}" + ("" if s["grid_fresh"] else " (STALE)"),
        f"limit         {lim['limit_kw']:.1f} kW ({lim['origin']})",
        f"in force      {_in_force(s.get('in_force'))}",
        f"rig budget    {s['rig_budget_kw']:.1f} kW; rigs draw {s['rig_power_kw']:.1f} kW",
        f"hashrate      {s['hashrate_ths']:.1f} TH/s",
        f"rigs          {s['rigs_total']}: {states}",
        f"fail-safe     {'ACTIVE: ' + str(fs['reason']) if fs['active'] else 'no'}",
    ]
    print("\n".join(lines), file=out)
    return EXIT_OK


def _in_force(lim: object) -> str:
    """The quota, cap or contract in force (the fail-safe, when active, caps it)."""
    if not isinstance(lim, dict):
        return "unknown"
    quota = f" {lim['quota_id']}" if lim.get("quota_id") else ""
    return f"{lim['limit_kw']:.1f} kW ({lim['origin']}{quota})"


def _kw(value: object) -> str:
    return f"{value:.1f} kW" if isinstance(value, int | float) else "not read yet"


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    try:
        if args.command == "status":
            return _status(args, stream)
        return _quota(args, stream)
    except CliError as exc:
        print(f"minerd {args.command}: {redact(str(exc), args)}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # no traceback: its frames would show the token
        name = type(exc).__name__
        print(f"minerd {args.command}: {name}: {redact(str(exc), args)}", file=sys.stderr)
        return EXIT_API


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry for tests: `quota ...` or `status ...`."""
    items = list(sys.argv[1:] if argv is None else argv)
    if not items or items[0] not in ("quota", "status"):
        print("usage: quota_cli (quota|status) ...", file=sys.stderr)
        return EXIT_USAGE
    parser = argparse.ArgumentParser(prog=f"minerd {items[0]}")
    add_arguments(parser)
    args = parser.parse_args(items[1:])
    args.command = items[0]
    return run(args)
