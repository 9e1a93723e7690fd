"""The daemon's outward-facing parts, built from settings: HTTP API, telemetry sinks, alerts.

They hang off the control cycle as listeners that never block it, and run as tasks in the
daemon's TaskGroup. Kept apart from app.py so the composition root stays readable.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from minerd.clock import Clock
from minerd.runtime.site import Site
from minerd.settings import Settings
from minerd.storage import Stores

log = logging.getLogger("minerd.components")


@dataclass
class Components:
    _tasks: list[tuple[str, Coroutine[Any, Any, None]]] = field(default_factory=list)

    def tasks(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        tasks, self._tasks = self._tasks, []
        return tasks

    async def aclose(self) -> None:
        return None


def build_components(settings: Settings, site: Site, stores: Stores, clock: Clock) -> Components:
    return Components()
