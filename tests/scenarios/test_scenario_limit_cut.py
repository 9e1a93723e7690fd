"""Acceptance: a limit cut from full load to 30 % is met within sleep time plus two cycles,
and a raised limit is followed at the ramp rate up to at least 97 % of it.

Both run the real daemon on a simulated site of 20 LuxOS S19j Pro rigs (sleep 5 s, wake
10 s) at 10x speed (the raise at 5x): rigs polled every 2 s, meter every 1 s, one control
cycle per second (all sim seconds). The import judged is the simulator's truth, not the
daemon's reading.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_kit import MODEL, Tuning, running_site, site_spec

from minerd.profiles import load_rig_model

SPEED = 10.0
RIGS = 20
CYCLE_S = 1.0
SLEEP_S = load_rig_model(MODEL).sleep_time_s


@pytest.mark.asyncio
async def test_limit_cut_to_30_percent_met_within_sleep_time_plus_two_cycles(
    tmp_path: Path,
) -> None:
    async with running_site(site_spec(RIGS, base_octet=201, speed=SPEED), tmp_path) as run:
        await run.sleep_sim(5.0)
        full_kw = await run.truth_kw()
        assert full_kw > 0.9 * RIGS * 3.068, "the site is not at full load before the cut"
        limit_kw = round(0.3 * full_kw, 1)
        t_cut = run.post_quota(limit_kw).issued_at_s
        await run.sleep_sim(40.0)

        under_s = run.recorder.first_under(limit_kw, t_cut) - t_cut
        after = run.recorder.between(t_cut + under_s)
        worst_kw = max(s.power_kw for s in after)
        final_kw = run.recorder.mean_kw(t_cut + 30.0, t_cut + 40.0)
        print(
            f"\ncut {full_kw:.1f} -> {limit_kw} kW: under the limit after {under_s:.2f} s "
            f"(bound {SLEEP_S + 2 * CYCLE_S:.0f} s), worst afterwards {worst_kw:.2f} kW, "
            f"last 10 s {final_kw:.2f} kW = {100 * final_kw / limit_kw:.1f} % of the limit"
        )
        assert under_s <= SLEEP_S + 2 * CYCLE_S, run.trace(t_cut - 1, t_cut + 10)
        assert worst_kw <= limit_kw, run.trace(t_cut - 1)


RAMP_KW_PER_S = 1.0
RAMP_SPEED = 5.0


# A planner that reshuffled on a rising budget (lowered some rigs to wake others) made the
# loop hold its raises until those cuts landed, and each dip's recovery ate the ramp: 97-106 s
# to 97 % of the raised limit, once 91.0 % after 120 s. Since the planner lowers no awake rig
# while the ramp holds the budget: 42-58 s and 97.8-98.7 % in 9 runs, 5 of them at a load
# average of 5. Once, in a fresh-clone `make test` beside other scenarios, the daemon stalled
# 3.6 s mid-raise and a cut and its recovery climbed 2.87 kW/s over 5 s. Since: 7 runs with a
# stall of 3.6-15 sim s injected mid-raise and 3 beside 3 CPU-bound processes climbed at most
# 0.89-1.07 kW/s, 42-58 s to 97 %. Run alone: at 10x a 0.4 s stall of the machine is 4 sim s.
# Alone at 10x it still failed once: a stall hung the rigs' reads (3 sim s is 0.3 s), asleep
# rigs were counted at nominal, awake ones shed and woken again at 2.66 kW/s. At RAMP_SPEED the
# same stall is half as long in sim time; the run takes 15 s more.
@pytest.mark.alone
@pytest.mark.asyncio
async def test_raised_limit_followed_at_ramp_rate_to_97_percent(tmp_path: Path) -> None:
    tuning = Tuning(ramp_up_kw_per_s=RAMP_KW_PER_S)
    spec = site_spec(RIGS, base_octet=202, speed=RAMP_SPEED)
    async with running_site(spec, tmp_path, tuning) as run:
        await run.sleep_sim(3.0)
        full_kw = await run.truth_kw()
        low_kw = round(0.3 * full_kw, 1)
        run.post_quota(low_kw)
        await run.sleep_sim(30.0)
        start_kw = run.recorder.mean_kw(run.now_s() - 5.0, run.now_s())
        limit_kw = round(0.7 * full_kw, 1)
        t_raise = run.post_quota(limit_kw).issued_at_s
        await run.sleep_sim(120.0)

        samples = run.recorder.between(t_raise)
        worst_kw = max(s.power_kw for s in samples)
        # Fastest climb over any 5 s window, against the configured ramp.
        window_s = 5.0
        fastest = 0.0
        j = 0
        for s in samples:
            while samples[j].t_s < s.t_s - window_s:
                j += 1
            fastest = max(fastest, (s.power_kw - samples[j].power_kw) / window_s)
        settled_at = next((s.t_s for s in samples if s.power_kw >= 0.97 * limit_kw), float("inf"))
        final_kw = run.recorder.mean_kw(t_raise + 110.0, t_raise + 120.0)
        print(
            f"\nraise {low_kw} -> {limit_kw} kW from {start_kw:.1f} kW: fastest climb "
            f"{fastest:.2f} kW/s over {window_s:.0f} s (ramp {RAMP_KW_PER_S} kW/s), worst "
            f"{worst_kw:.2f} kW, first at 97 % after {settled_at - t_raise:.0f} s, "
            f"last 10 s {final_kw:.2f} kW = {100 * final_kw / limit_kw:.1f} % of the limit"
        )
        assert worst_kw <= limit_kw, run.trace(t_raise - 1)
        # One rig waking lands 3 kW over its 10 s wake time: allow that on top of the ramp.
        assert fastest <= RAMP_KW_PER_S * 1.25, run.trace(t_raise - 1)
        assert final_kw >= 0.97 * limit_kw, run.trace(t_raise + 60)
        # The ramp alone takes 29 s and a woken rig draws 10 s after its command; a planner
        # that reshuffles on the way up took 97-106 s.
        assert settled_at - t_raise <= 80.0, run.trace(t_raise - 1)
