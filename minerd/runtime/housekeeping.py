"""Keep the SQLite file from growing without bound.

The command journal gets a row per command (a 50,000-rig site sends many a day) and the
alert outbox a row per notification. Old rows are deleted; each rig's newest intent stays,
because a restart needs it however old it is. Quotas, the audit log and compliance records
are evidence for the grid authority and are never pruned here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from minerd.clock import Clock
from minerd.errors import StorageError
from minerd.storage import Stores

log = logging.getLogger("minerd.housekeeping")

DAY_S = 86_400.0


@dataclass(frozen=True)
class Retention:
    journal_s: float = 7 * DAY_S
    outbox_sent_s: float = 7 * DAY_S
    every_s: float = 3600.0


def prune_once(stores: Stores, now_s: float, keep: Retention) -> tuple[int, int]:
    """(journal rows, outbox rows) deleted."""
    journal = stores.journal.prune(now_s - keep.journal_s)
    outbox = stores.alerts.prune_sent(now_s - keep.outbox_sent_s)
    return journal, outbox


async def run_housekeeping(stores: Stores, clock: Clock, keep: Retention = Retention()) -> None:
    while True:
        # The deletes scan their tables: off the event loop, so control never waits on them.
        try:
            journal, outbox = await asyncio.to_thread(prune_once, stores, clock.now_s(), keep)
        except StorageError as exc:
            # Counted by storage health (alert, metric); pruning waits for the next round.
            log.debug("pruning skipped: %s", exc)
        else:
            if journal or outbox:
                log.info("pruned %d journal rows and %d sent alert notifications", journal, outbox)
        await clock.sleep(keep.every_s)
