"""What every sink offers the hub, and the figures it reports about itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from minerd.sinks.events import TelemetryEvent


@dataclass(frozen=True)
class SinkStats:
    name: str
    healthy: bool  # last delivery worked (or nothing was tried yet)
    queued: int  # events waiting in the sink's queue
    dropped_events: int  # events lost because the queue was full (not spooled)
    points_written: int = 0
    points_rejected: int = 0  # refused by the server as malformed: dropped
    write_errors: int = 0
    spool_points: int = 0
    spool_fill_ratio: float = 0.0
    spool_dropped_points: int = 0  # dropped from a full spool
    last_error: str = ""
    kind: str = ""  # "tsdb", "mqtt", "prometheus"


class Sink(Protocol):
    name: str

    def offer(self, event: TelemetryEvent) -> None:
        """Hand over an event without waiting; a full queue drops (or spools), never blocks."""

    async def run(self) -> None:
        """Deliver until cancelled; reconnects and retries by itself."""

    def stats(self) -> SinkStats: ...


class ErrorLog:
    """Log a failure once at WARNING, then at DEBUG while it persists; log the recovery."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log = logger
        self._what = what
        self.failing = False
        self.last_error = ""

    def failed(self, message: str) -> None:
        self.last_error = message
        if self.failing:
            self._log.debug("%s still failing: %s", self._what, message)
        else:
            self.failing = True
            self._log.warning("%s failed: %s", self._what, message)

    def ok(self) -> None:
        if self.failing:
            self.failing = False
            self._log.info("%s recovered", self._what)
