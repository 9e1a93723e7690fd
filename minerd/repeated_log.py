"""Log a persisting condition once at WARNING, then at DEBUG while it lasts, INFO when it clears.

A condition that repeats every cycle (a rig offline, a sink down) would flood the log:

    repeats = RepeatedLog(log)
    repeats.warning(f"rig:{rig_id}", "rig unreachable", extra={"rig": rig_id, "error": str(e)})
    ...
    repeats.clear(f"rig:{rig_id}", "rig reachable again", extra={"rig": rig_id})

Shared kernel (stdlib only): any layer may use it, as it may use minerd.errors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any


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
