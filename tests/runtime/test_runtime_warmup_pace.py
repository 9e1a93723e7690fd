"""Warm-up and the award's pace: over a power limit a (re)started daemon sheds at once, but
over only the energy pace it waits until it has read its rigs. In warm-up the unread rigs
count at nominal, and a plan made on that slept every rig it could read (seen after a
restart mid-interval: 11 of 100 rigs slept for a 1 kW excess over the pace, then woken
again at a higher profile). The real ControlCycle on a small plant (tests/cycle_plant.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cycle_plant import TEST_RIG, CyclePlant

from minerd.control.energy_pace import PaceConfig
from minerd.model import EnergyAward, QuotaSource, RigAction
from minerd.runtime.energy_tracker import ORIGIN_AWARD, EnergyTracker, ListAwards

INTERVAL_S = 3600.0
READ_BEFORE = 5  # rigs read before the cycle: 5 of 20, far from warm


def plant_with_award(tmp_path: Path, pace_share: float) -> CyclePlant:
    """Every rig at full load, an award paced at pace_share of it, in warm-up: the meter
    read, 5 rigs read."""
    p = CyclePlant(tmp_path, TEST_RIG, n=20, min_on_s=0.0, min_off_s=0.0)
    now = p.clock.now_s()
    award_kwh = pace_share * p.full_kw * INTERVAL_S / 3600.0
    start_s = now - 1.0
    award = EnergyAward(
        "a1", start_s, start_s + INTERVAL_S, award_kwh, QuotaSource.API, 0.0, "grid"
    )
    pace = PaceConfig(max_kw=2.0 * p.full_kw, margin_kw=p.margin_kw)
    p.cycle.energy = EnergyTracker(ListAwards([award]), pace)
    p.clock.advance(1.0)
    p.read_meter()
    for rig_id in list(p.rigs)[:READ_BEFORE]:
        p.read(rig_id)
    return p


def commands_but_wakes(p: CyclePlant) -> list[str]:
    return [c.rig_id for _, c in p.executor.sent if c.action is not RigAction.WAKE]


@pytest.mark.asyncio
async def test_over_only_the_pace_in_warm_up_nothing_is_shed(tmp_path: Path) -> None:
    p = plant_with_award(tmp_path, pace_share=0.8)
    result = p.cycle.run_once()
    assert result.decision.limit.origin == ORIGIN_AWARD
    assert result.decision.shedding, "the meter is over the pace: the loop cuts its budget"
    assert result.plan is None, "planned in warm-up on a pace excess"
    assert commands_but_wakes(p) == []
    # Once read (warm), the excess over the pace is cut as usual.
    for rig_id in p.rigs:
        p.read(rig_id)
    p.clock.advance(1.0)
    p.read_meter()
    assert p.cycle.run_once().plan is not None
    assert commands_but_wakes(p), "warm and over the pace: nothing was cut"


@pytest.mark.asyncio
async def test_over_a_power_limit_in_warm_up_the_shed_goes_out_at_once(tmp_path: Path) -> None:
    p = plant_with_award(tmp_path, pace_share=0.8)
    p.set_limit(round(0.9 * p.full_kw, 1))  # between the pace and the import
    result = p.cycle.run_once()
    assert result.decision.limit.origin == ORIGIN_AWARD  # the pace is lower: it is steered to
    assert result.plan is not None, "over a power limit, the shed waited for warm-up"
    assert commands_but_wakes(p)
