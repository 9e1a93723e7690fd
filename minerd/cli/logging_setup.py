"""Logs to stderr as logfmt or JSON lines; every command configures it once, at start.

    log = logging.getLogger("minerd.poller")
    log.info("meter read", extra={"device": "grid-main", "power_w": 1200.5})
    -> ts=2026-11-29T05:00:00.123Z level=info logger=minerd.poller msg="meter read"
       device=grid-main power_w=1200.5   (one line)

A condition that repeats every cycle is logged through minerd.repeated_log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Literal

LogFormat = Literal["logfmt", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("logfmt", "json")

# Attributes every LogRecord has; anything else came from extra={...} and is printed as key=value.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def _timestamp(record: logging.LogRecord) -> str:
    secs = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{secs}.{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "ts": _timestamp(record),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


def _logfmt_value(value: object) -> str:
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    if text == "" or any(c in text for c in ' ="\\') or not text.isprintable():
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


class LogfmtFormatter(logging.Formatter):
    """ts=... level=... logger=... msg="..." key=value (one line per record)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the same keys as logfmt."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str, ensure_ascii=False)


NOISY_LIBRARIES = ("pymodbus", "aiomqtt", "uvicorn.access", "httpx")


def configure_logging(
    log_format: LogFormat = "logfmt",
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
) -> None:
    """Route every log record to stderr (or stream) in the given format; idempotent."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_minerd", False):
            root.removeHandler(old)
    handler._minerd = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Libraries that narrate every connection at INFO; their problems still show as WARNING.
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
