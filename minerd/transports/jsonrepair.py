"""Lenient JSON for cgminer-style firmware replies.

Real firmware sends broken JSON now and then: trailing commas (`,}` `,]`), two objects glued
together (`}{`), bare `inf`/`nan`/`-inf`, raw control characters, a trailing NUL. These are
repaired; a truncated reply cannot be, and is rejected with JsonRepairError saying so.

The fast path is one C-scanner decode; the repair pass runs only when that fails.
Non-finite numbers (bare or as NaN/Infinity) become None: a reading with no value,
never a float that poisons sums.
"""

from __future__ import annotations

import json
import re

__all__ = ["JsonRepairError", "loads_lenient", "repair"]


class JsonRepairError(ValueError):
    """The text is not JSON and could not be repaired (truncated, garbage)."""

    def __init__(self, message: str, truncated: bool = False) -> None:
        self.truncated = truncated
        super().__init__(message)


def _none(_token: str) -> None:
    return None


# strict=False lets raw control characters through inside strings (firmware puts tabs and
# newlines in Description fields); parse_constant maps NaN/Infinity/-Infinity to None.
_DECODER = json.JSONDecoder(strict=False, parse_constant=_none)

# One pass over the text: a string literal is matched (and kept) as a whole so that a
# repair never touches text inside quotes.
_REPAIR_RE = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # a string: keep
    r"|(,)(?=\s*[}\]])"  # trailing comma before a closer: group 1
    r"|\}(\s*)\{"  # glued objects: group 2
    r"|(-?(?:inf(?:inity)?|nan))\b",  # bare non-finite number: group 3
    re.IGNORECASE | re.DOTALL,
)
# Control characters outside whitespace are noise on this wire.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _fix(match: re.Match[str]) -> str:
    text = match.group(0)
    if text[0] == '"':
        return text
    if match.group(1) is not None:
        return ""
    if match.group(2) is not None:
        return "},{"
    return "null"


def repair(text: str) -> str:
    """Return text with the known firmware breakages fixed (may still be invalid)."""
    text = _CONTROL_RE.sub("", text)
    return _REPAIR_RE.sub(_fix, text).strip()


def _decode_sequence(text: str) -> object:
    """Decode top-level values glued as `{..},{..}`: merge objects, first key wins."""
    merged: dict[str, object] = {}
    pos, end = 0, len(text)
    while pos < end:
        value, pos = _DECODER.raw_decode(text, pos)
        if not isinstance(value, dict):
            raise JsonRepairError(f"top-level value is {type(value).__name__}, not an object")
        for key, item in value.items():
            merged.setdefault(key, item)
        while pos < end and text[pos] in " \t\r\n,":
            pos += 1
    return merged


def _describe(err: json.JSONDecodeError, text: str) -> JsonRepairError:
    # A whole reply ends with its closer; one cut inside a number ("0.") fails before the end.
    cut = not text.rstrip().endswith(("}", "]"))
    if cut or err.pos >= len(text.rstrip()) or "Unterminated string" in err.msg:
        return JsonRepairError(f"truncated reply ({len(text)} chars): {err.msg}", truncated=True)
    lo = max(0, err.pos - 20)
    snippet = text[lo : err.pos + 20]
    return JsonRepairError(f"invalid JSON at char {err.pos}: {err.msg} near {snippet!r}")


def loads_lenient(data: bytes | str) -> object:
    """Decode one firmware reply; repair known breakages; raise JsonRepairError otherwise.

    A trailing NUL (the cgminer end marker) and surrounding whitespace are ignored.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip("\x00 \t\r\n")
    if not text:
        raise JsonRepairError("empty reply", truncated=True)
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError:
        pass
    fixed = repair(text)
    if not fixed:
        raise JsonRepairError("empty reply", truncated=True)
    try:
        return _DECODER.decode(fixed)
    except json.JSONDecodeError as err:
        if err.msg != "Extra data":
            raise _describe(err, fixed) from None
    try:
        return _decode_sequence(fixed)
    except json.JSONDecodeError as err:
        raise _describe(err, fixed) from None
