"""Logs to stderr as logfmt or JSON lines, and the 'warn once, then DEBUG' helper.

    log = logging.getLogger("minerd.poller")
    log.info("meter read", extra={"device": "grid-main", "power_w": 1200.5})
    -> ts=2026-11-29T05:00:00.123Z level=info logger=minerd.poller msg="meter read"
       device=grid-main power_w=1200.5   (one line)

A condition that repeats every cycle (a rig offline, a sink down) is logged once at WARNING,
then at DEBUG while it persists, and once at INFO when it clears:

    repeats = RepeatedLog(log)
    repeats.warning(f"rig:{rig_id}", "rig unreachable", extra={"rig": rig_id, "error": str(e)})
    ...
    repeats.clear(f"rig:{rig_id}", "rig reachable again", extra={"rig": rig_id})
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import IO, Any, Literal

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


class RepeatedLog:
    """Logs a persisting condition once at WARNING, then at DEBUG until clear(key).

    A key names one condition ("rig:10.0.0.5", "sink:influx"). If the kind of the problem
    changes (e.g. timeout -> refused), pass a different kind to warn again at WARNING.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._active: dict[str, str] = {}  # key -> kind
        self._counts: dict[str, int] = {}

    def warning(
        self,
        key: str,
        msg: str,
        *args: object,
        kind: str = "",
        extra: Mapping[str, object] | None = None,
        exc_info: Any = None,
    ) -> bool:
        """Log msg; returns True if it went out at WARNING (first time or new kind)."""
        first = self._active.get(key) != kind
        self._active[key] = kind
        self._counts[key] = 1 if first else self._counts.get(key, 0) + 1
        level = logging.WARNING if first else logging.DEBUG
        fields = {**(extra or {}), "repeat": self._counts[key]}
        self.logger.log(level, msg, *args, extra=fields, exc_info=exc_info)
        return first

    def clear(
        self, key: str, msg: str = "", *args: object, extra: Mapping[str, object] | None = None
    ) -> bool:
        """The condition went away: log msg at INFO if it was active. Returns whether it was."""
        if key not in self._active:
            return False
        del self._active[key]
        count = self._counts.pop(key, 0)
        if msg:
            self.logger.info(msg, *args, extra={**(extra or {}), "repeats": count})
        return True

    def active(self, key: str) -> bool:
        return key in self._active

    def active_keys(self) -> list[str]:
        return list(self._active)


_shared: dict[str, RepeatedLog] = {}


def _for(logger: logging.Logger) -> RepeatedLog:
    return _shared.setdefault(logger.name, RepeatedLog(logger))


def warn_once(
    logger: logging.Logger,
    key: str,
    msg: str,
    *args: object,
    kind: str = "",
    extra: Mapping[str, object] | None = None,
) -> bool:
    """Module-level form of RepeatedLog.warning, one registry per logger name."""
    return _for(logger).warning(key, msg, *args, kind=kind, extra=extra)


def clear(
    logger: logging.Logger,
    key: str,
    msg: str = "",
    *args: object,
    extra: Mapping[str, object] | None = None,
) -> bool:
    """Module-level form of RepeatedLog.clear."""
    return _for(logger).clear(key, msg, *args, extra=extra)
