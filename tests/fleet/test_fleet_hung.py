"""Acceptance: with 5 % of the rigs hung, every other rig is still polled on time.

200 LuxOS rigs at a 1 s interval, 10 of them hung (accept, never answer). A hung read holds
one worker for at most its 0.5 s timeout, then the rig backs off; the healthy rigs' polls
must start within a fraction of a second of their due time (PollStats per-rig lateness).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fleet_kit import polled_site

from minerd.model import RigState
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

RIGS = 200
HUNG = [f"c001-r{n:03d}" for n in range(1, RIGS + 1, 20)]  # 10 rigs, spread out
RUN_S = 6.0


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_hung_rigs_do_not_delay_the_others(tmp_path: Path) -> None:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", RIGS),),
        rigs_per_container=RIGS,
        rig_port=0,
        base_octet=154,
        workers=1,
        feeder_meters=False,
    )

    async def hang(site: SimSite) -> None:
        for rig_id in HUNG:
            await site.inject(rig_id, "hung")

    async with polled_site(
        spec,
        tmp_path,
        rig_interval_s=1.0,
        rig_timeout_s=0.5,
        concurrency=32,
        track_per_rig=True,
        before_poll=hang,
    ) as run:
        start_s = run.site.clock.now_s()
        await asyncio.sleep(RUN_S)
        snap = run.snapshot()
        stats = run.poller.stats
        errors = dict(run.fleet.poll_errors_by_reason)

    assert len(HUNG) == RIGS // 20
    healthy = [r for r in snap.rigs if r.rig_id not in HUNG]
    late = {rig: stats.lateness_by_rig_s[rig] for rig in (r.rig_id for r in healthy)}
    worst = max(late.values())
    assert worst < 1.0, sorted(late.items(), key=lambda kv: -kv[1])[:5]
    mean_late_s = stats.lateness_sum_s / max(1, stats.rig_polls)
    assert mean_late_s < 0.1, mean_late_s
    # every healthy rig was read in the last interval (plus scheduling slack) and is fresh
    for r in healthy:
        assert r.fresh and r.reading.state is RigState.HASHING, r.rig_id
        assert r.reading.taken_at_s > start_s + RUN_S - 1.5, r.rig_id
    # about one poll per healthy rig per second: none skipped, none doubled
    healthy_polls = stats.rig_polls - errors.get("timeout", 0)
    expected = len(healthy) * RUN_S
    assert 0.8 * expected <= healthy_polls <= 1.1 * expected, (healthy_polls, expected)
    # the hung rigs were tried, timed out, and are backing off
    for rig_id in HUNG:
        st = next(r for r in snap.rigs if r.rig_id == rig_id)
        assert st.reading.reason.startswith("hung: "), st.reading.reason
    assert len(HUNG) <= errors["timeout"] <= len(HUNG) * 6, errors
    print(
        f"healthy rigs: max lateness {worst * 1000:.0f} ms, mean {mean_late_s * 1000:.1f} ms; "
        f"{stats.rig_polls} polls, {errors.get('timeout', 0)} timeouts in {RUN_S:g} s"
    )
