"""Energy awards as they arrive (JSON body, CSV upload, MQTT message, a dropped file) turned
into checked award lines. One parser for every intake, so each refuses the same things with
the same words; nothing here writes (runtime.commands.PutAwards stores them).

JSON: a list of awards, or {"awards": [...], "replace": false, "reference": "..."}.
CSV: a header with interval_start (or date and hour) and energy_mwh, optionally interval_s,
id, reference; comma or semicolon separated (a semicolon file may use a decimal comma).
Each award: interval_start (ISO 8601 with an offset, or local time in the site's zone
without one) or, as market exports give it, the local date and the interval's number in
that day from 1 (hour); energy_mwh; optional interval_s (default from [awards]), id,
reference.
Every bad line or item is reported with where it is and what is wrong; one bad line
refuses the whole batch.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from minerd.errors import QuotaError
from minerd.intervals import LocalTimeError, day_intervals, is_boundary, iso_local, local_to_s

MAX_AWARDS = 5000  # 52 days of 15-minute intervals
MAX_MEAN_KW = 10_000_000.0  # 10 GW: catches kWh sent as MWh
_COLUMNS = ("interval_start", "date", "hour", "energy_mwh", "interval_s", "id", "reference")
_KEYS = frozenset(_COLUMNS)
_MAX_TEXT = 200
_YEARS = (1970, 9000)


@dataclass(frozen=True)
class AwardLine:
    start_s: float
    end_s: float
    energy_kwh: float
    award_id: str | None = None  # the sender's id; None: minerd makes one
    reference: str | None = None
    where: str = ""  # "line 3", "awards.2": for messages about it later


@dataclass(frozen=True)
class AwardBatch:
    lines: tuple[AwardLine, ...]
    replace: bool = False  # withdraw awards in force in the batch's span it does not re-send

    @property
    def span(self) -> tuple[float, float]:
        return min(a.start_s for a in self.lines), max(a.end_s for a in self.lines)


@dataclass(frozen=True)
class Problem:
    where: str  # "line 4" (CSV, 1 = header) or "awards.3" (JSON)
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message}"


class AwardInputError(QuotaError):
    """A batch with one or more bad awards; nothing of it is stored (HTTP 422)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        field = f"{first.where}.{first.field}" if first.where else first.field
        super().__init__(field, f"{first.where}: {first.message}{more}")


@dataclass(frozen=True)
class Rules:
    """What the site accepts: its zone and default interval length."""

    tz: ZoneInfo
    interval_s: float = 3600.0


# ---------------------------------------------------------------- entry points


def parse_json_text(text: str | bytes, rules: Rules) -> AwardBatch:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AwardInputError([Problem("", "body", f"is not JSON: {exc}")]) from None
    return parse_json(data, rules)


def parse_json(data: object, rules: Rules) -> AwardBatch:
    """A decoded JSON value: a list of awards or an object with "awards"."""
    replace = False
    batch_ref: str | None = None
    problems: list[Problem] = []
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"awards", "replace", "reference"})
        if unknown:
            raise AwardInputError([Problem("", unknown[0], "unknown key")])
        replace_value = data.get("replace", False)
        if not isinstance(replace_value, bool):
            raise AwardInputError([Problem("", "replace", "must be true or false")])
        replace = replace_value
        batch_ref = _opt_text(data.get("reference"), "", "reference", problems)
        if problems:
            raise AwardInputError(problems)
        data = data.get("awards")
    if not isinstance(data, list):
        raise AwardInputError([Problem("", "awards", "expected a list of awards")])
    lines: list[AwardLine] = []
    for i, item in enumerate(data):
        where = f"awards.{i}"
        if not isinstance(item, dict):
            problems.append(Problem(where, "award", "expected an object"))
            continue
        for key in sorted(set(item) - _KEYS):
            problems.append(Problem(where, key, "unknown key"))
        line = _line(item, where, rules, problems, csv_text=False)
        if line is not None:
            if line.reference is None and batch_ref is not None:
                line = dataclasses.replace(line, reference=batch_ref)
            lines.append(line)
    return _batch(lines, replace, problems)


def parse_csv_text(text: str | bytes, rules: Rules) -> AwardBatch:
    """A CSV file or upload; line numbers count the header as line 1."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise AwardInputError([Problem("", "file", f"is not UTF-8 text: {exc}")]) from None
    text = text.removeprefix("\ufeff")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header: list[str] | None = None
    problems: list[Problem] = []
    lines: list[AwardLine] = []
    for row in reader:
        n = reader.line_num
        if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue  # blank lines and comments
        if header is None:
            header = [h.strip().lower() for h in row]
            missing = [c for c in ("energy_mwh",) if c not in header]
            if "interval_start" not in header and not {"date", "hour"} <= set(header):
                missing.insert(0, "interval_start (or date and hour)")
            unknown = [h for h in header if h not in _KEYS]
            if missing or unknown:
                what = f"missing column {', '.join(missing)}" if missing else ""
                if unknown:
                    what += ("; " if what else "") + f"unknown column {', '.join(unknown)}"
                raise AwardInputError(
                    [Problem(f"line {n}", "header", f"{what} (expected {','.join(_COLUMNS)})")]
                )
            continue
        where = f"line {n}"
        if len(row) != len(header):
            problems.append(
                Problem(where, "row", f"has {len(row)} cells, the header has {len(header)}")
            )
            continue
        item = {h: cell.strip() for h, cell in zip(header, row, strict=True) if cell.strip()}
        if delimiter == ";" and "energy_mwh" in item:
            item["energy_mwh"] = item["energy_mwh"].replace(",", ".")
        line = _line(item, where, rules, problems, csv_text=True)
        if line is not None:
            lines.append(line)
    if header is None:
        raise AwardInputError([Problem("line 1", "header", "the file is empty")])
    return _batch(lines, False, problems)


# ---------------------------------------------------------------- one award


def _line(
    item: Mapping[str, object], where: str, rules: Rules, problems: list[Problem], *, csv_text: bool
) -> AwardLine | None:
    before = len(problems)
    energy_mwh = _number(item.get("energy_mwh"), where, "energy_mwh", problems, csv_text)
    interval_s = rules.interval_s
    raw_interval = item.get("interval_s")
    if raw_interval is not None:
        got = _number(raw_interval, where, "interval_s", problems, csv_text)
        if got is not None:
            if got < 60 or got > 86_400 or got != int(got) or 86_400 % int(got):
                problems.append(
                    Problem(where, "interval_s", "must divide a day in whole seconds (900, 3600)")
                )
            else:
                interval_s = got
    start_s = _start_of(item, where, rules.tz, interval_s, problems, csv_text)
    award_id = _opt_text(item.get("id"), where, "id", problems)
    reference = _opt_text(item.get("reference"), where, "reference", problems)
    if len(problems) > before or start_s is None or energy_mwh is None:
        return None
    if energy_mwh < 0:
        problems.append(Problem(where, "energy_mwh", "must not be negative"))
        return None
    mean_kw = energy_mwh * 1000.0 / (interval_s / 3600.0)
    if mean_kw > MAX_MEAN_KW:
        problems.append(
            Problem(
                where,
                "energy_mwh",
                f"{energy_mwh:g} MWh in {interval_s:g} s is a mean of {mean_kw / 1000:g} MW, "
                "above 10 GW: kWh sent as MWh?",
            )
        )
        return None
    if not is_boundary(start_s, interval_s, rules.tz):
        problems.append(
            Problem(
                where,
                "interval_start",
                f"{iso_local(start_s, rules.tz)} is not the start of a {interval_s:g} s interval "
                f"in {rules.tz.key} (intervals count from local midnight)",
            )
        )
        return None
    return AwardLine(
        start_s=start_s,
        end_s=start_s + interval_s,
        energy_kwh=energy_mwh * 1000.0,
        award_id=award_id,
        reference=reference,
        where=where,
    )


def _start_of(
    item: Mapping[str, object],
    where: str,
    tz: ZoneInfo,
    interval_s: float,
    problems: list[Problem],
    csv_text: bool,
) -> float | None:
    """interval_start, or the market's way: the local date and the interval's number in
    it, from 1 (hour 1..24 for hourly intervals; 23 or 25 on a DST day)."""
    start, day, number = item.get("interval_start"), item.get("date"), item.get("hour")
    if day is None and number is None:
        return _start(start, where, tz, problems)
    if start is not None:
        problems.append(
            Problem(where, "interval_start", "give interval_start, or date and hour, not both")
        )
        return None
    if not isinstance(day, str):
        problems.append(Problem(where, "date", "is required with hour (YYYY-MM-DD)"))
        return None
    try:
        local_day = date.fromisoformat(day.strip())
    except ValueError:
        problems.append(Problem(where, "date", f"{day[:40]!r} is not a date (YYYY-MM-DD)"))
        return None
    n = _number(number, where, "hour", problems, csv_text)
    if n is None:
        return None
    intervals = day_intervals(local_day, interval_s, tz)
    if n != int(n) or not 1 <= n <= len(intervals):
        problems.append(
            Problem(
                where,
                "hour",
                f"must be a whole number 1..{len(intervals)}: {local_day} has "
                f"{len(intervals)} intervals of {interval_s:g} s in {tz.key}",
            )
        )
        return None
    return intervals[int(n) - 1][0]


def _start(value: object, where: str, tz: ZoneInfo, problems: list[Problem]) -> float | None:
    field = "interval_start"
    if value is None or value == "":
        problems.append(Problem(where, field, "is required"))
        return None
    if not isinstance(value, str):
        problems.append(Problem(where, field, "must be an ISO 8601 time as text"))
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        problems.append(
            Problem(
                where, field, f"{value[:40]!r} is not an ISO 8601 time (2026-12-01T14:00+05:00)"
            )
        )
        return None
    if not _YEARS[0] <= dt.year <= _YEARS[1]:
        problems.append(Problem(where, field, f"year must be within {_YEARS[0]}..{_YEARS[1]}"))
        return None
    if dt.tzinfo is None:
        try:
            return local_to_s(dt, tz)
        except LocalTimeError as exc:
            problems.append(Problem(where, field, str(exc)))
            return None
    return dt.timestamp()


def _number(
    value: object, where: str, field: str, problems: list[Problem], from_text: bool
) -> float | None:
    if value is None or value == "":
        problems.append(Problem(where, field, "is required"))
        return None
    if isinstance(value, bool):
        problems.append(Problem(where, field, "must be a number"))
        return None
    if isinstance(value, str) and from_text:
        try:
            number = float(value)
        except ValueError:
            problems.append(Problem(where, field, f"{value[:40]!r} is not a number"))
            return None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        problems.append(Problem(where, field, "must be a number, not text"))
        return None
    if not math.isfinite(number):
        problems.append(Problem(where, field, "must be a finite number"))
        return None
    return number


def _opt_text(value: object, where: str, field: str, problems: list[Problem]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_TEXT:
        problems.append(Problem(where, field, f"must be text of 1..{_MAX_TEXT} characters"))
        return None
    return value


def _batch(lines: list[AwardLine], replace: bool, problems: list[Problem]) -> AwardBatch:
    if not problems and not lines:
        problems.append(Problem("", "awards", "no awards in the batch"))
    if len(lines) > MAX_AWARDS:
        problems.append(Problem("", "awards", f"at most {MAX_AWARDS} awards per batch"))
    ordered = sorted(lines, key=lambda a: a.start_s)
    for prev, cur in itertools.pairwise(ordered):
        if cur.start_s < prev.end_s:
            problems.append(
                Problem(cur.where, "interval_start", f"overlaps the interval of {prev.where}")
            )
    seen: dict[str, str] = {}
    for a in lines:
        if a.award_id is None:
            continue
        if a.award_id in seen:
            problems.append(Problem(a.where, "id", f"is also the id of {seen[a.award_id]}"))
        seen.setdefault(a.award_id, a.where)
    if problems:
        raise AwardInputError(sorted(problems, key=_order))
    return AwardBatch(tuple(lines), replace)


def _order(p: Problem) -> tuple[int, str]:
    """Problems in file order: line 10 after line 9, whatever the text sorts as."""
    digits = "".join(ch for ch in p.where if ch.isdigit())
    return (int(digits) if digits else -1, p.field)
