"""Restarts are seamless (issue 18): switch times survive a restart, so min on/off times
hold, and nothing wakes until the restarted loop has measured the site against its limit.
The real ControlCycle on a small plant (tests/cycle_plant.py) and a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cycle_plant import TEST_RIG, CyclePlant

MIN_OFF_S = 120.0


@pytest.mark.asyncio
@pytest.mark.parametrize("acknowledged", [True, False], ids=["acked", "killed-before-outcome"])
async def test_restart_restores_switch_times_so_min_off_holds(
    tmp_path: Path, acknowledged: bool
) -> None:
    first = CyclePlant(tmp_path, TEST_RIG, n=10, min_on_s=0.0, min_off_s=MIN_OFF_S)
    first.executor.journal_outcomes = acknowledged
    first.run(10)
    first.set_limit(round(0.5 * first.full_kw, 1))
    first.run(10)
    slept = {r for r, rig in first.rigs.items() if not rig.awake}
    sleep_at_s = max(t for t, r in ((t, c.rig_id) for t, c in first.executor.sent) if r in slept)
    assert slept, "the cut put no rig to sleep"

    # kill -9, restart on the same database; the grid then lifts the cut: room for all.
    second = CyclePlant(
        tmp_path,
        TEST_RIG,
        n=10,
        min_on_s=0.0,
        min_off_s=MIN_OFF_S,
        asleep=tuple(slept),
        start_s=first.clock.now_s() + 2.0,
        restore=True,
    )
    second.run(int(sleep_at_s + MIN_OFF_S - second.clock.now_s()) - 2)
    assert not second.woken(), "a rig was woken inside its min-off time after a restart"
    second.run(10)
    assert {r for _, r in second.woken()} == slept  # and after it, they may wake


@pytest.mark.asyncio
async def test_nothing_wakes_until_the_restarted_loop_has_measured_the_site(
    tmp_path: Path,
) -> None:
    asleep = ("r017", "r018", "r019", "r020")
    p = CyclePlant(tmp_path, TEST_RIG, n=20, min_off_s=0.0, asleep=asleep)
    p.set_limit(p.full_kw + 5.0)  # room for every rig: only the measurement holds them
    p.clock.advance(1.0)
    p.read_meter()
    for rig_id in list(p.rigs)[:19]:  # 95 % of the rigs read: warm-up is over
        p.read(rig_id)
    first = p.cycle.run_once()
    assert first.plan is not None, "the cycle did not dispatch after warm-up"
    assert not p.woken(), "woke rigs before one full round of rig readings"
    p.clock.advance(1.0)
    p.read_meter()
    p.read("r020")  # every rig read since start, and a fresh meter reading
    p.cycle.run_once()
    assert not p.woken(), "woke rigs in the cycle that first measured the site"
    p.run(3)
    assert {r for _, r in p.woken()} == set(asleep)  # measured: now they may
