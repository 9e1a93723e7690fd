"""A small, fast InfluxDB line-protocol encoder.

Building a batch in Python costs about as much as the server's ingest, so this module works
on plain strings: callers cache escaped tag prefixes and join field strings themselves; the
helpers here only escape and format single values. No per-point objects.

Line protocol: `measurement,tag=v,tag=v field=v,field=v timestamp`
- measurement: escape comma and space;
- tag keys, tag values, field keys: escape comma, equals sign and space;
- string field values: double-quoted, escape double quote and backslash;
- integers end in `i`, booleans are `true`/`false`, floats must be finite.
A newline would end the line, so newlines and tabs inside names or strings become `\\n`, `\\t`.
A backslash in a name is kept as is: InfluxDB reads it literally unless an escapable
character follows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

_KEY_ESCAPES = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
)
_MEASUREMENT_ESCAPES = str.maketrans(
    {",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
)
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n", "\r": r"\r"})
_KEY_SPECIALS = frozenset(",= \n\r\t")
_STRING_SPECIALS = frozenset('"\\\n\r')


def escape_key(value: str) -> str:
    """Escape a tag key, tag value or field key."""
    if _KEY_SPECIALS.isdisjoint(value):
        return value
    return value.translate(_KEY_ESCAPES)


def escape_measurement(value: str) -> str:
    if _KEY_SPECIALS.isdisjoint(value):
        return value
    return value.translate(_MEASUREMENT_ESCAPES)


def quote_string(value: str) -> str:
    """A string field value, quoted."""
    if _STRING_SPECIALS.isdisjoint(value):
        return f'"{value}"'
    return f'"{value.translate(_STRING_ESCAPES)}"'


def series_key(measurement: str, tags: Iterable[tuple[str, str]]) -> str:
    """`measurement,k=v,...` with tags sorted by key (the order InfluxDB stores them in).

    Empty tag values are left out: line protocol has no empty tag value."""
    parts = [escape_measurement(measurement)]
    for key, value in sorted(tags):
        if value:
            parts.append(f"{escape_key(key)}={escape_key(value)}")
    return ",".join(parts)


def float_field(key: str, value: float | None) -> str | None:
    """`key=value` for a finite float, None when the value is missing, NaN or infinite."""
    if value is None or not math.isfinite(value):
        return None
    return f"{key}={float(value)!r}"


def bool_field(key: str, value: bool) -> str:
    return f"{key}={'true' if value else 'false'}"


def str_field(key: str, value: str | None) -> str | None:
    if value is None:
        return None
    return f"{key}={quote_string(value)}"


def line(series: str, fields: Iterable[str | None], timestamp: int) -> str | None:
    """One line from a pre-escaped series key and pre-formatted fields (None ones skipped).

    A point with no field at all is not valid line protocol: None is returned for it."""
    body = ",".join(f for f in fields if f is not None)
    if not body:
        return None
    return f"{series} {body} {timestamp}"
