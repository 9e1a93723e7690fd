"""Settlement intervals in the site's time zone: the market's hours, not UTC's.

Shared kernel, like clock and model (imports nothing of minerd): control paces and settles
by these intervals, the intake checks awards against them, the API shows them.

An interval of a delivery day starts at local midnight plus a whole number of interval
lengths, counted in real seconds: a day with a DST change has 23 or 25 hourly intervals,
as a day-ahead market counts them. Offsets come from tzdata (zoneinfo), never a fixed
number: Kazakhstan moved to one zone (UTC+5) on 2024-03-01, and tzdata knows it.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_S = 86_400.0


class LocalTimeError(ValueError):
    """A local wall-clock time that does not exist or exists twice in the zone."""


def local_midnight_s(day: date, tz: ZoneInfo) -> float:
    """Unix seconds of 00:00 local on `day` (if midnight is skipped by DST, the first
    instant of the day)."""
    naive = datetime.combine(day, time(0, 0))
    t_s = naive.replace(tzinfo=tz).timestamp()
    # A skipped midnight maps past the day's start; step back to where the day begins.
    if datetime.fromtimestamp(t_s, tz).date() != day:
        t_s = naive.replace(tzinfo=tz, fold=1).timestamp()
    return t_s


def interval_start_s(t_s: float, interval_s: float, tz: ZoneInfo) -> float:
    """Start of the interval that contains t_s."""
    day = datetime.fromtimestamp(t_s, tz).date()
    midnight_s = local_midnight_s(day, tz)
    if t_s < midnight_s:  # only when midnight was skipped and t_s is before the day began
        midnight_s = local_midnight_s(day - timedelta(days=1), tz)
    return midnight_s + math.floor((t_s - midnight_s) / interval_s) * interval_s


def interval_bounds(t_s: float, interval_s: float, tz: ZoneInfo) -> tuple[float, float]:
    """[start, end) of the interval containing t_s; the last one of a day ends at the next
    local midnight, whatever its length, so intervals never cross a day."""
    start_s = interval_start_s(t_s, interval_s, tz)
    day = datetime.fromtimestamp(start_s, tz).date()
    next_midnight_s = local_midnight_s(day + timedelta(days=1), tz)
    return start_s, min(start_s + interval_s, next_midnight_s)


def is_boundary(t_s: float, interval_s: float, tz: ZoneInfo) -> bool:
    return interval_start_s(t_s, interval_s, tz) == t_s


def day_intervals(day: date, interval_s: float, tz: ZoneInfo) -> list[tuple[float, float]]:
    """Every interval of a local delivery day, in order."""
    start_s = local_midnight_s(day, tz)
    end_s = local_midnight_s(day + timedelta(days=1), tz)
    out: list[tuple[float, float]] = []
    t = start_s
    while t < end_s:
        out.append((t, min(t + interval_s, end_s)))
        t += interval_s
    return out


def local_to_s(naive: datetime, tz: ZoneInfo) -> float:
    """Unix seconds of a local wall-clock time without offset; refuses one that DST skips
    or repeats (the sender must then give the offset)."""
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        back = datetime.fromtimestamp(first.timestamp(), tz).replace(tzinfo=None)
        if back != naive:
            raise LocalTimeError(f"{naive.isoformat()} does not exist in {tz.key} (DST gap)")
        raise LocalTimeError(
            f"{naive.isoformat()} occurs twice in {tz.key} (DST change): give its UTC offset"
        )
    return first.timestamp()


def iso_local(t_s: float, tz: ZoneInfo) -> str:
    """ISO 8601 with the zone's offset at t_s, for people reading local times."""
    return datetime.fromtimestamp(t_s, tz).isoformat()


def iso_utc(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).isoformat().replace("+00:00", "Z")
