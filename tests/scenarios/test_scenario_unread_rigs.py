"""A cut the rigs minerd can read cannot carry: the rest are told to sleep (control.overload).

The real daemon on a simulated site of 20 LuxOS S19j Pro rigs at 10x speed. Twelve rigs
get the simulator's "reads_hang" fault: their read commands never answer while sessions
and control commands (curtail, profileset) answer and act. So their readings time out
(state unknown, counted at nominal, never planned) while they obey whatever they are
told: what a starved controller sees, not broken rigs. The cut to 30 % of full load
is below what those 12 draw on their own. Before overload sheds the site stayed over its
limit for as long as the reads failed; now it must get under and stay there. The
import judged is the simulator's truth.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_kit import Tuning, running_site, site_spec

SPEED = 10.0
RIGS = 20
UNREAD = [f"c001-r{i:03d}" for i in range(1, 13)]


@pytest.mark.asyncio
async def test_a_cut_only_unread_rigs_can_carry_is_met(tmp_path: Path) -> None:
    spec = site_spec(RIGS, base_octet=214, speed=SPEED)
    async with running_site(spec, tmp_path, Tuning()) as run:
        await run.sleep_sim(5.0)
        full_kw = await run.truth_kw()
        assert full_kw > 0.9 * RIGS * 3.068, "the site is not at full load before the cut"
        for rig_id in UNREAD:
            await run.sim.inject(rig_id, "reads_hang")
        # Their readings go stale (stale_after_s) and they are counted at nominal.
        await run.sleep_sim(15.0)
        unread_kw = sum(run.sim.fleet.rig(r).view(run.now_s()).power_w for r in UNREAD) / 1000.0
        limit_kw = round(0.3 * full_kw, 1)
        assert unread_kw > limit_kw, "the unread rigs alone must be over the cut"
        t_cut = run.post_quota(limit_kw).issued_at_s
        await run.sleep_sim(60.0)

        under_s = run.recorder.first_under(limit_kw, t_cut) - t_cut
        last_kw = run.recorder.mean_kw(t_cut + 45.0, t_cut + 60.0)
        asleep = [r for r in UNREAD if not run.sim.fleet.rig(r).view(run.now_s()).awake]
        print(
            f"\ncut {full_kw:.1f} -> {limit_kw} kW with {len(UNREAD)} rigs unread "
            f"({unread_kw:.1f} kW): under after {under_s:.1f} s, last 15 s {last_kw:.2f} kW, "
            f"{len(asleep)} unread rigs asleep"
        )
        assert asleep, "no unread rig was told to sleep"
        assert len(asleep) < len(UNREAD), "every unread rig slept: more than the cut needed"
        # Under well within the minute and never over again once under (the cut itself
        # first waits for the readable rigs' sheds and the meter to show the excess).
        assert under_s <= 30.0, run.trace(t_cut - 1, t_cut + 40)
        after = run.recorder.between(t_cut + under_s + 5.0)
        assert max(s.power_kw for s in after) <= limit_kw, run.trace(t_cut + under_s)
