"""Keeps the daemon's parts running: a part that fails is logged, counted and started
again with backoff; it never takes the process (and so the control loop) down with it.

Part of the composition root: only app.py uses it. The control loop is not supervised
here: if it fails the site is shed to its fail-safe limit and the process exits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from minerd.clock import Clock
from minerd.runtime.backoff import backoff_s

log = logging.getLogger("minerd.daemon.supervisor")

TaskFactory = Callable[[], Coroutine[Any, Any, None]]

RESTART_BASE_S = 1.0
RESTART_MAX_S = 60.0


class Supervisor:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.restarts: dict[str, int] = {}
        self.failing: dict[str, str] = {}  # part -> its last error, until it runs well again

    def counts(self) -> dict[str, int]:
        return dict(self.restarts)

    async def keep(self, name: str, factory: TaskFactory) -> None:
        """Run factory() until it returns; restart it whenever it raises."""
        attempt = 0
        while True:
            started = self._clock.monotonic_s()
            try:
                await factory()
            except Exception as exc:  # CancelledError (a deliberate stop) passes through
                if self._clock.monotonic_s() - started >= RESTART_MAX_S:
                    attempt = 0  # it had been running well: not the same failure
                attempt += 1
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.failing[name] = f"{type(exc).__name__}: {exc}"
                delay_s = backoff_s(attempt, RESTART_BASE_S, RESTART_MAX_S)
                if attempt == 1:
                    log.error(
                        "%s failed, restarting it (control goes on): %s", name, exc, exc_info=exc
                    )
                else:
                    log.debug(
                        "%s failed again (%d), restart in %.0fs: %s", name, attempt, delay_s, exc
                    )
                await self._clock.sleep(delay_s)
                continue
            self.failing.pop(name, None)
            log.info("%s finished", name)
            return
