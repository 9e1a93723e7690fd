"""Energy awards in the daemon (issue 15): the settlement keeper on the control cycle, the
award board the API shows, the intake rules the HTTP and MQTT inputs share, and the
watched inbox folder when [awards] inbox_dir is set."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from minerd.clock import Clock
from minerd.model import SettlementRecord
from minerd.runtime.award_inbox import AwardInbox
from minerd.runtime.award_input import Rules
from minerd.runtime.settlement import AwardBoard, SettlementKeeper
from minerd.runtime.site import Site
from minerd.settings import Settings
from minerd.storage import Stores

log = logging.getLogger("minerd.awards")

TaskFactory = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class AwardParts:
    keeper: SettlementKeeper
    board: AwardBoard
    rules: Rules
    tasks: list[tuple[str, TaskFactory]] = field(default_factory=list)


def _pace_kw(site: Site) -> Callable[[], float | None]:
    def pace() -> float | None:
        tracker = site.cycle.energy
        status = tracker.status() if tracker is not None else None
        return None if status is None else status.pace.limit_kw

    return pace


def build_awards(
    settings: Settings,
    site: Site,
    stores: Stores,
    clock: Clock,
    on_closed: Callable[[SettlementRecord], None] | None = None,
) -> AwardParts:
    tz = ZoneInfo(settings.site.timezone)
    a = settings.awards
    keeper = SettlementKeeper(stores, a.interval_s, tz)
    keeper.restore(clock.now_s())
    if on_closed is not None:
        keeper.on_closed.append(on_closed)
    site.cycle.listeners.append(keeper)
    parts = AwardParts(keeper, AwardBoard(keeper, _pace_kw(site)), Rules(tz, a.interval_s))
    if a.inbox_dir is not None:
        try:
            a.inbox_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # control starts anyway; the inbox says so at every poll
            log.warning("award inbox %s cannot be created: %s", a.inbox_dir, exc)
        inbox = AwardInbox(site, a.inbox_dir, parts.rules, clock, poll_s=a.inbox_poll_s)
        parts.tasks.append(("award-inbox", inbox.run))
    return parts
