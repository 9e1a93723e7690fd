"""`minerd quota awards send|list|withdraw` and `minerd quota settlement`: energy awards per
settlement interval and the settlement report, through the API.

The CLI sends an award file as it is (JSON to /api/v1/awards, CSV to /api/v1/awards.csv); the
API checks it, and every problem it names is printed against the file: `day.csv:3: energy_mwh:
'lots' is not a number`. Times are shown in the site's time zone, which GET /api/v1/site gives.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from minerd.cli.api_client import (
    EXIT_OK,
    EXIT_USAGE,
    ApiRefused,
    CliError,
    JsonObj,
    call,
    parse_json,
    request,
)

ACTIONS = frozenset({"awards", "settlement"})
_CSV_LINE = re.compile(r"line (\d+)\.(.+)")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("awards", help="energy awards per settlement interval (MWh)")
    asub = a.add_subparsers(dest="awards_command", metavar="ACTION", required=True)
    se = asub.add_parser("send", help="send an award schedule from a JSON or CSV file")
    se.add_argument("file", help="CSV or JSON as the API takes them (docs/grid-api.md); - = stdin")
    se.add_argument(
        "--format",
        choices=("csv", "json"),
        help="default: the file's suffix, else JSON if it starts with [ or {",
    )
    se.add_argument(
        "--replace",
        action="store_true",
        help="withdraw the awards in the file's span that it does not send again",
    )
    se.add_argument("--idempotency-key", help="Idempotency-Key header (makes a retry safe)")
    ls = asub.add_parser("list", help="awards in force now and upcoming")
    ls.add_argument("--from", dest="from_", help="ISO 8601 with offset; default now")
    ls.add_argument("--to", help="ISO 8601 with offset; default 48 h after now")
    ls.add_argument("--history", action="store_true", help="include replaced and withdrawn")
    wd = asub.add_parser("withdraw", help="withdraw one award by id")
    wd.add_argument("award_id")
    st = sub.add_parser("settlement", help="a day's settlement report: awarded against imported")
    st.add_argument(
        "day",
        nargs="?",
        default="today",
        help="YYYY-MM-DD, today or yesterday, in the site's time zone (default today)",
    )
    st.add_argument("--csv", action="store_true", help="print the report as the API's CSV")


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.quota_command == "settlement":
        return _settlement(args, out)
    cmd = args.awards_command
    if cmd == "send":
        return _send(args, out)
    if cmd == "list":
        return _list(args, out)
    if cmd == "withdraw":
        _, ans = call(args, "DELETE", f"/api/v1/awards/{args.award_id}")
        if args.json:
            print(json.dumps(ans, indent=2), file=out)
        else:
            print(f"award {ans['id']} withdrawn at {ans['withdrawn_at']}", file=out)
        return EXIT_OK
    raise CliError(f"unknown action {cmd!r}", EXIT_USAGE)


# ---------------------------------------------------------------- send


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {name}: {exc.strerror}", EXIT_USAGE) from None


def _is_json(name: str, data: bytes, forced: str | None) -> bool:
    if forced is not None:
        return forced == "json"
    suffix = Path(name).suffix.lower()
    if suffix in (".json", ".csv"):
        return suffix == ".json"
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"[", b"{")


def _with_replace(data: bytes) -> bytes:
    """The JSON body with replace=true; text that is not JSON goes as it is (the API says
    what is wrong with it)."""
    try:
        body = json.loads(data)
    except ValueError:
        return data
    if isinstance(body, list):
        body = {"awards": body}
    if isinstance(body, dict):
        body["replace"] = True
    return json.dumps(body).encode()


def where_in_file(name: str, field: str) -> str:
    """The API's field as a place in the file: "line 3.energy_mwh" -> "day.csv:3: energy_mwh",
    "awards.2.energy_mwh" -> "day.json: awards.2.energy_mwh"."""
    m = _CSV_LINE.fullmatch(field)
    if m is not None:
        return f"{name}:{m.group(1)}: {m.group(2)}"
    return f"{name}: {field}"


def _send(args: argparse.Namespace, out: TextIO) -> int:
    name = str(args.file)
    data = _read(name)
    shown = "stdin" if name == "-" else name
    hdrs = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    try:
        if _is_json(name, data, args.format):
            body = _with_replace(data) if args.replace else data
            status, raw = request(args, "POST", "/api/v1/awards", body, headers=hdrs)
        else:
            path = "/api/v1/awards.csv" + ("?replace=true" if args.replace else "")
            status, raw = request(
                args, "POST", path, data, content_type="text/csv; charset=utf-8", headers=hdrs
            )
    except ApiRefused as exc:
        if not exc.problems:
            raise CliError(f"awards in {shown} refused: {exc}") from None
        lines = [f"awards in {shown} refused (HTTP {exc.status}), nothing stored:"]
        lines += [f"  {where_in_file(shown, f)}: {e}" for f, e in exc.problems]
        raise CliError("\n".join(lines)) from None
    ans = parse_json(raw)
    if args.json:
        print(json.dumps(ans, indent=2), file=out)
        return EXIT_OK
    awards = _items(ans, "awards")
    if status == 201:
        print(
            f"awards stored: {ans['new']} new, {ans['repeated']} repeated, "
            f"{len(_texts(ans, 'superseded'))} superseded, "
            f"{len(_texts(ans, 'withdrawn'))} withdrawn",
            file=out,
        )
    else:
        print(f"awards already stored: {ans['repeated']} repeated, nothing changed", file=out)
    if awards:
        print(
            f"{len(awards)} intervals from {awards[0]['interval_start']} to "
            f"{awards[-1]['interval_end']}, {sum(_mwh(a) for a in awards):.3f} MWh",
            file=out,
        )
    for note in _texts(ans, "notes"):
        print(f"note: {note}", file=out)
    return EXIT_OK


# ---------------------------------------------------------------- list


def _site_time(args: argparse.Namespace) -> tuple[ZoneInfo, datetime]:
    """The site's time zone and its clock's now (GET /api/v1/site)."""
    _, site = call(args, "GET", "/api/v1/site")
    name = str(site.get("timezone") or "UTC")
    try:
        tz = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CliError(f"the site's time zone {name!r} is unknown here (install tzdata)") from None
    return tz, datetime.fromisoformat(str(site["taken_at"])).astimezone(tz)


def _local(text: object, tz: ZoneInfo) -> datetime:
    return datetime.fromisoformat(str(text)).astimezone(tz)


def interval_label(start: object, end: object, tz: ZoneInfo) -> str:
    s, e = _local(start, tz), _local(end, tz)
    return f"{s:%Y-%m-%d %H:%M}-{e:%H:%M}"


def _list(args: argparse.Namespace, out: TextIO) -> int:
    tz, now = _site_time(args)
    params = {"from": args.from_ or now.isoformat()}
    if args.to:
        params["to"] = args.to
    if args.history:
        params["history"] = "true"
    _, ans = call(args, "GET", f"/api/v1/awards?{urlencode(params)}")
    if args.json:
        print(json.dumps(ans, indent=2), file=out)
        return EXIT_OK
    awards = _items(ans, "awards")
    head = "award history" if args.history else "awards in force"
    span = f"{_local(ans['from'], tz):%Y-%m-%d %H:%M} and {_local(ans['to'], tz):%Y-%m-%d %H:%M}"
    print(f"{head} between {span} ({tz.key}):", file=out)
    if not awards:
        print("  none", file=out)
        return EXIT_OK
    print(f"  {'interval':<22} {'MWh':>10} {'mean kW':>10}  id  [source]", file=out)
    for a in awards:
        print("  " + _award_row(a, now, tz), file=out)
    total_mwh = sum(_mwh(a) for a in awards if not a.get("withdrawn_at"))
    print(f"{len(awards)} awards, {total_mwh:.3f} MWh in force", file=out)
    return EXIT_OK


def _award_row(a: JsonObj, now: datetime, tz: ZoneInfo) -> str:
    start, end = _local(a["interval_start"], tz), _local(a["interval_end"], tz)
    ref = f" ref {a['reference']}" if a.get("reference") else ""
    if a.get("withdrawn_at"):
        state = f"  withdrawn {_local(a['withdrawn_at'], tz):%Y-%m-%d %H:%M}"
    elif start <= now < end:
        state = "  (in progress)"
    else:
        state = ""
    return (
        f"{interval_label(a['interval_start'], a['interval_end'], tz):<22} "
        f"{_mwh(a):>10.3f} {_n(a['mean_kw'], '.1f', 10)}  "
        f"{a['id']}  [{a['source']}]{ref}{state}"
    )


# ---------------------------------------------------------------- settlement


def day_span(day: str, tz: ZoneInfo, now: datetime) -> tuple[date, datetime, datetime]:
    """The local day asked for and its bounds (23 or 25 hours on a DST change)."""
    today = now.astimezone(tz).date()
    if day == "today":
        d = today
    elif day == "yesterday":
        d = today - timedelta(days=1)
    else:
        try:
            d = date.fromisoformat(day)
        except ValueError:
            raise CliError(
                f"day {day!r}: expected YYYY-MM-DD, today or yesterday", EXIT_USAGE
            ) from None
    start = datetime(d.year, d.month, d.day, tzinfo=tz)
    nxt = d + timedelta(days=1)
    return d, start, datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)


def _settlement(args: argparse.Namespace, out: TextIO) -> int:
    tz, now = _site_time(args)
    d, start, end = day_span(args.day, tz, now)
    params = {"from": start.isoformat(), "to": end.isoformat()}
    if args.csv:
        params["format"] = "csv"
        _, raw = request(args, "GET", f"/api/v1/settlement?{urlencode(params)}", accept="text/csv")
        out.write(raw.decode("utf-8"))
        return EXIT_OK
    _, ans = call(args, "GET", f"/api/v1/settlement?{urlencode(params)}")
    if args.json:
        print(json.dumps(ans, indent=2), file=out)
        return EXIT_OK
    records = _items(ans, "records")
    print(
        f"settlement {ans['site']} {d.isoformat()} ({tz.key}): {len(records)} closed "
        f"interval{'' if len(records) == 1 else 's'}",
        file=out,
    )
    if not records:
        return EXIT_OK
    print(
        f"{'interval':<11} {'awarded MWh':>11} {'imported MWh':>12} {'deviation MWh':>13} "
        f"{'dev %':>7} {'peak kW':>9} {'over s':>7}  source",
        file=out,
    )
    for r in records:
        label = interval_label(r["interval_start"], r["interval_end"], tz)[11:]
        note = f"  {r['note']}" if r.get("note") else ""
        print(
            f"{label:<11} {_n(r['awarded_mwh'], '.3f', 11)} {_n(r['imported_mwh'], '.3f', 12)} "
            f"{_n(r['deviation_mwh'], '+.3f', 13)} {_n(r['deviation_pct'], '+.2f', 7)} "
            f"{_n(r['peak_kw'], '.1f', 9)} {_n(r['seconds_over'], '.1f', 7)}  "
            f"{r['energy_source']}{note}",
            file=out,
        )
    s = ans["summary"]
    assert isinstance(s, dict)
    print(
        f"total: awarded {s['awarded_mwh']:.3f} MWh, imported {s['imported_mwh']:.3f} MWh in "
        f"the intervals with an award, deviation {s['deviation_mwh']:+.3f} MWh; "
        f"{s['intervals_over']} over the award, {s['intervals_under_99']} under 99 %; "
        f"{s['seconds_over']:.1f} s over a power limit",
        file=out,
    )
    return EXIT_OK


def _mwh(award: JsonObj) -> float:
    value = award.get("energy_mwh")
    return float(value) if isinstance(value, int | float) else 0.0


def _items(ans: JsonObj, key: str) -> list[JsonObj]:
    """The objects in the list `ans[key]` (none if it is not a list)."""
    value = ans.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _texts(ans: JsonObj, key: str) -> list[str]:
    value = ans.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


def _n(value: object, spec: str, width: int) -> str:
    """A number in its column, or '-' where the API has none (no award)."""
    text = format(value, spec) if isinstance(value, int | float) else "-"
    return text.rjust(width)
