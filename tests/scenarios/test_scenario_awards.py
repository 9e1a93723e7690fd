"""Acceptance (issue 15 item 2): each interval ends on its energy award.

100 LuxOS S19j Pro rigs at 20x, 10 % faulted (5 % offline still drawing, 5 % ignoring
commands). SHORTENED: six intervals of 120 sim s with uneven awards (35-80 % of full load)
instead of 24 hours (benchmarks/bench_awards_day.py runs the day). Judged by the simulator's
truth: every interval the fleet could draw ends at 99-100.2 % of its award; the one with an
immediate power limit from its middle ends under its award and the daemon counts the
shortfall. A daemon killed in the middle of an interval (of 240 sim s) and started again
10 s later restores the energy so far and the interval still ends on its award.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from awards_kit import AwardsPlan, check, run_awards

# Judged over two-minute intervals at 20x: a stall of the machine is 20 times longer in sim
# time (a 9.8 s cycle beside another scenario was 196 sim s, more than the interval), so
# these run after the other scenarios with nothing beside them (`make test`, marker alone).
pytestmark = pytest.mark.alone


@pytest.mark.asyncio
async def test_six_uneven_awards_with_a_power_limit_and_faults_end_on_their_awards(
    tmp_path: Path,
) -> None:
    result = await run_awards(AwardsPlan(base_octet=161), tmp_path, log=print)
    print(f"\nfull load {result.full_kw:.1f} kW\n{result.table()}")
    assert sorted(set(result.faulted.values())) == ["ignores_commands", "offline"]
    assert check(result) == []


@pytest.mark.asyncio
async def test_restart_mid_interval_restores_the_energy_so_far(tmp_path: Path) -> None:
    # Four-minute intervals here: a restart costs fixed seconds (warm-up until the rigs are
    # read, a round of readings before anything rises, the rigs' own reaction), about a
    # tenth of a two-minute interval, which ended 98.8 % in 1 of 8 runs (the daemon counted
    # it so too). An hourly interval spreads the same seconds thirty times thinner.
    plan = AwardsPlan(
        interval_s=240.0,
        shares=(0.55, 0.70, 0.40),
        limited_interval=None,
        restart_interval=1,
        base_octet=162,
    )
    result = await run_awards(plan, tmp_path, log=print)
    print(f"\nfull load {result.full_kw:.1f} kW, restored {result.restored_kwh} kWh")
    print(result.table())
    restarted = result.intervals[1]
    assert result.restored_kwh is not None
    # Half the interval had passed: what was counted by the last save before the kill (at
    # most 5 sim s old) is restored, never more than the meter counted by the kill, and the
    # time down is then settled from the meter's register.
    drawn = result.drawn_at_kill_kwh
    assert drawn is not None
    assert 0.25 * restarted.award_kwh <= result.restored_kwh <= drawn + 0.01
    assert check(result) == []
