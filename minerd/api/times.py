"""Times on the wire: ISO 8601 with an explicit offset in, UTC out; unix seconds inside."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

# Far enough for any schedule, near enough that arithmetic never overflows.
_MIN_YEAR = 1970
_MAX_YEAR = 9000


_EXPECTED = "must be an ISO 8601 time with an offset, e.g. 2026-05-01T12:00Z"


def _parse_iso(value: object) -> datetime:
    # Parsed here, not by pydantic, which would read "0.5" or "1700000000" as unix seconds.
    if not isinstance(value, str):
        raise ValueError(_EXPECTED)
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{_EXPECTED}, not {value[:40]!r}") from None


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "must carry a UTC offset (e.g. 2026-05-01T12:00:00+05:00 or ...Z); "
            "local times without an offset are ambiguous"
        )
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not _MIN_YEAR <= utc.year <= _MAX_YEAR:
        raise ValueError(f"year must be within {_MIN_YEAR}..{_MAX_YEAR}")
    return utc


# A request time: ISO 8601 text with an offset, converted to UTC.
IsoTime = Annotated[datetime, BeforeValidator(_parse_iso), AfterValidator(_aware_utc)]


def to_s(value: datetime) -> float:
    """Unix seconds of an aware datetime."""
    return value.timestamp()


def to_dt(t_s: float) -> datetime:
    """The UTC datetime of unix seconds (what responses carry)."""
    return datetime.fromtimestamp(t_s, tz=UTC)


def opt_dt(t_s: float | None) -> datetime | None:
    return None if t_s is None else to_dt(t_s)


def iso(t_s: float) -> str:
    """ISO 8601 UTC text with a Z, for CSV cells and MQTT answers."""
    return to_dt(t_s).isoformat().replace("+00:00", "Z")
