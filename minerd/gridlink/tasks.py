"""The grid protocols the config turns on, as (name, task factory) for the supervisor.

c104 and openleadr are imported here only when their section is enabled, so the daemon
starts without them otherwise; the loader already refused an enabled section whose
package is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minerd.runtime.service import SiteService
from minerd.settings import Settings

if TYPE_CHECKING:
    from minerd.gridlink.iec104_server import Iec104Outstation
    from minerd.gridlink.openadr_ven import OpenAdrVen

TaskFactory = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class GridLinks:
    iec104: Iec104Outstation | None = None
    openadr: OpenAdrVen | None = None
    tasks: list[tuple[str, TaskFactory]] = field(default_factory=list)


def build_grid_links(settings: Settings, service: SiteService) -> GridLinks:
    links = GridLinks()
    contracted_kw = settings.grid.contracted_limit_kw
    if settings.iec104.enabled:
        from minerd.gridlink.iec104_server import Iec104Outstation

        links.iec104 = Iec104Outstation(settings.iec104, service, contracted_kw)
        links.tasks.append(("iec104", links.iec104.run))
    if settings.openadr.enabled:
        from minerd.gridlink.openadr_ven import OpenAdrVen

        links.openadr = OpenAdrVen(settings.openadr, service, contracted_kw)
        links.tasks.append(("openadr", links.openadr.run))
    return links
