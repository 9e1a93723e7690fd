"""poll_now (the executor's "verify this rig now") reads the rig, over real sockets: the
simulator counts the replies it sends. The interval is ten minutes, so any read after the
first one is poll_now's; a burst of calls is served by at most one read each. The timing
(read at once, then still one read per interval: no standing entries) is checked on virtual
time in test_fleet_schedule.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fleet_kit import polled_site
from waiting import wait_until

from minerd.model import RigState
from minerd.sim import RigGroupSpec, SiteSpec

INTERVAL_S = 600.0
RIG = "c001-r001"


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_poll_now_reads_at_once_without_extra_polls(tmp_path: Path) -> None:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", 1),),
        rig_port=0,
        base_octet=155,
        workers=1,
        feeder_meters=False,
    )
    async with polled_site(spec, tmp_path, rig_interval_s=INTERVAL_S, rig_timeout_s=10.0) as run:
        await run.wait_for(lambda s: s.rigs[0].reading.taken_at_s > 0, 60.0, "the first read")
        replies = run.site.fleet.listeners
        before = run.rig(RIG).reading.taken_at_s
        asked = replies.replies
        run.poller.poll_now(RIG)
        await run.wait_for(
            lambda s: s.rigs[0].reading.taken_at_s > before, 60.0, "the read poll_now asked for"
        )
        assert replies.replies == asked + 1
        # a burst of requests, some while the rig is being read: each is served, none stays
        for _ in range(10):
            run.poller.poll_now(RIG)
            await asyncio.sleep(0.01)
        await wait_until(lambda: replies.replies > asked + 1, 60.0, "a read for the burst")
        await asyncio.sleep(0.5)  # a read owed to a call made during a read, if any
        burst = replies.replies - asked - 1
        assert 1 <= burst <= 10, burst  # never more reads than calls
        assert run.rig(RIG).reading.state is RigState.HASHING
    assert run.poller.stats.rig_failures == 0
