"""poll_now (the executor's "verify this rig now") reads at once and leaves the schedule as
it was: repeated calls never add standing entries that would multiply a rig's poll rate.
The simulator counts the replies it sends, so the rate is measured at the rig."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fleet_kit import polled_site

from minerd.model import RigState
from minerd.sim import RigGroupSpec, SiteSpec

INTERVAL_S = 3.0
RIG = "c001-r001"


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_poll_now_reads_at_once_without_extra_polls(tmp_path: Path) -> None:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", 1),),
        rig_port=0,
        base_octet=155,
        workers=1,
        feeder_meters=False,
    )
    async with polled_site(spec, tmp_path, rig_interval_s=INTERVAL_S, rig_timeout_s=1.0) as run:
        await run.wait_for(lambda s: s.rigs[0].reading.taken_at_s > 0, 6.0, "the first read")
        replies = run.site.fleet.listeners
        before = run.rig(RIG).reading.taken_at_s
        asked = replies.replies
        run.poller.poll_now(RIG)
        await run.wait_for(
            lambda s: s.rigs[0].reading.taken_at_s > before, 0.5, "the read poll_now asked for"
        )
        assert replies.replies == asked + 1
        # a burst of requests, some while the rig is being read: each is served, none stays
        for _ in range(10):
            run.poller.poll_now(RIG)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        burst = replies.replies - asked - 1
        assert 1 <= burst <= 10, burst
        start = replies.replies
        await asyncio.sleep(INTERVAL_S + 0.2)
        steady = replies.replies - start
        assert run.rig(RIG).reading.state is RigState.HASHING
    # back on the schedule: one read per interval (a stray entry per call would make it ~12)
    assert 1 <= steady <= 2, steady
    assert run.poller.stats.rig_failures == 0
