"""`minerd quota set|show|schedule|withdraw` and `minerd status`: thin clients of the API.

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
import os
import re
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO
from urllib.parse import urlencode

DEFAULT_URL = "http://127.0.0.1:8080"
EXIT_OK, EXIT_API, EXIT_USAGE = 0, 1, 2
ROLES = ("grid", "operator", "viewer")
_KEYED_LINE = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*)")

JsonObj = dict[str, object]


class CliError(Exception):
    """Something the user must fix or know; printed without a traceback."""

    def __init__(self, message: str, code: int = EXIT_API) -> None:
        self.code = code
        super().__init__(message)


# ---------------------------------------------------------------- arguments


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("MINERD_URL", DEFAULT_URL), help="API base URL")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token", help="API token (visible in the process list: prefer --token-file)")
    tok.add_argument(
        "--token-file",
        type=Path,
        help='file holding the API token, or one `role = "token"` line per role',
    )
    p.add_argument(
        "--role",
        choices=ROLES,
        help="which token of a several-role token file (default operator for status, "
        "grid for quota)",
    )
    p.add_argument("--cacert", type=Path, help="CA bundle to verify an https URL")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.allow_abbrev = False  # "--to" must not be taken for "--token"
    _common(parser)
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


# ---------------------------------------------------------------- HTTP


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return _checked(str(args.token), "--token")
    if args.token_file is not None:
        role = args.role or ("operator" if args.command == "status" else "grid")
        return read_token_file(Path(args.token_file), role)
    env = os.environ.get("MINERD_TOKEN", "")
    if env:
        return _checked(env.strip(), "MINERD_TOKEN")
    raise CliError("no token: pass --token-file FILE, --token or set MINERD_TOKEN", EXIT_USAGE)


def read_token_file(path: Path, role: str) -> str:
    """The token in `path`: its only line, or the `role = "token"` line of that role.
    Errors name the file, line and roles, never a token."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read token file {path}: {exc.strerror}", EXIT_USAGE) from None
    except UnicodeDecodeError:
        raise CliError(f"token file {path}: not UTF-8 text", EXIT_USAGE) from None
    lines = [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise CliError(f"token file {path} holds no token", EXIT_USAGE)
    by_role: dict[str, str] = {}
    for n, line in lines:
        m = _KEYED_LINE.fullmatch(line)
        if m is None or m.group(1).lower() not in ROLES:
            if len(lines) == 1:
                return _checked(line, str(path))  # a file holding just the token
            raise CliError(
                f'token file {path}:{n}: expected `role = "token"` lines '
                f"(roles {', '.join(ROLES)}) or a single token",
                EXIT_USAGE,
            )
        by_role[m.group(1).lower()] = _unquote(m.group(2).strip())
    if role not in by_role:
        raise CliError(
            f"token file {path} has no {role} token (it has {', '.join(sorted(by_role))}): "
            "choose one with --role",
            EXIT_USAGE,
        )
    return _checked(by_role[role], f"{path} ({role})")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _checked(token: str, where: str) -> str:
    """A bearer token is one word of printable ASCII; anything else would end up in an
    HTTP library's error message, token and all."""
    if not token or not all(33 <= ord(c) <= 126 for c in token):
        raise CliError(
            f"the token from {where} is not one word of printable characters", EXIT_USAGE
        )
    return token


def _redact(text: str, args: argparse.Namespace) -> str:
    """`text` with every token the user could have given replaced (last line of defence)."""
    secrets: list[str] = []
    if getattr(args, "token", None):
        secrets.append(str(args.token))
    if os.environ.get("MINERD_TOKEN"):
        secrets.append(os.environ["MINERD_TOKEN"].strip())
    token_file = getattr(args, "token_file", None)
    if token_file is not None:
        try:
            for line in Path(token_file).read_text(encoding="utf-8").splitlines():
                m = _KEYED_LINE.fullmatch(line.strip())
                secrets.append(_unquote(m.group(2).strip()) if m else line.strip())
        except (OSError, UnicodeDecodeError):
            pass
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "<token>")
    return text


def call(
    args: argparse.Namespace,
    method: str,
    path: str,
    body: object | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, JsonObj]:
    url = str(args.url).rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {_token(args)}")
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    ctx = ssl.create_default_context(cafile=str(args.cacert)) if args.cacert else None
    try:
        with urllib.request.urlopen(req, timeout=args.timeout, context=ctx) as resp:
            return int(resp.status), _json(resp.read())
    except urllib.error.HTTPError as exc:
        payload = _json(exc.read())
        message = str(payload.get("error", exc.reason))
        raise CliError(f"{method} {path}: HTTP {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach {url}: {exc}") from None
    except ValueError:
        # http.client quotes a refused header value, which would be the token.
        raise CliError(f"{method} {path}: the request could not be built") from None


def _json(raw: bytes) -> JsonObj:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"error": raw[:200].decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}


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
        print(f"minerd {args.command}: {_redact(str(exc), args)}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # no traceback: its frames would show the token
        name = type(exc).__name__
        print(f"minerd {args.command}: {name}: {_redact(str(exc), args)}", file=sys.stderr)
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
