"""The loop gives back a correction larger than the meter allows while commands are in flight
(issue 19, "loss 1"), and never while a raise could still lift the meter or the site is over.

A cut teaches the loop a correction from its timing (here 64 kW where the load is 37 kW). On a
1,000-rig site a few commands are nearly always in flight, so the loop is almost never
"settled": it must give the excess back while rigs move, down to the most load the meter
allows (meter less the least rig power the site can be drawing). Sheds in flight only lower
the meter; raises in flight lower the least rig power by what they may still add.
Pure: table-driven over control.loop.step, several cycles per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from minerd.control.loop import LoopConfig, LoopInputs, LoopState, predicted_import_kw, step
from minerd.model import EffectiveLimit

# As the benchmark's daemon runs: kp 0.5, ki 0.05, a 10 kW margin.
CONFIG = LoopConfig(
    margin_kw=10.0,
    aux_base_kw=5.0,
    aux_fraction=0.05,
    ramp_up_kw_per_s=500.0,
    failsafe_limit_kw=500.0,
    kp=0.5,
    ki=0.05,
    deadband_kw=5.0,
)
LOAD_KW = 37.0  # unmodelled load the meter really shows
LEARNT_KW = 64.0  # the correction a cut's timing left behind
LIMIT_KW = 1008.7


@dataclass(frozen=True)
class Row:
    name: str
    reading_kw: float  # rig readings, now and the step before
    planned_kw: float  # what the last plan gave the same rigs
    on_meter_kw: float  # rig power the meter sees
    falling: bool  # no raise in flight worth more than the settle tolerance
    rising_kw: float  # what the raises in flight may still add
    cycles: int
    expect_kw: float  # integral after `cycles` steps
    limit_kw: float = LIMIT_KW


ROWS = [
    # Rigs at their plan, a few commands still in flight: back to the load the meter shows.
    Row("at plan, nothing rising", 860.0, 860.0, 860.0, True, 0.0, 80, LOAD_KW),
    # Only sheds in flight: 40 kW read but only half of it on the meter yet. The bound
    # counts the rigs at their plan, so the correction stops at what the meter allows then.
    Row(
        "sheds in flight",
        900.0,
        860.0,
        880.0,
        True,
        0.0,
        80,
        LOAD_KW + 20.0 * (1.0 + CONFIG.aux_fraction),
    ),
    # A few small raises in flight (8 kW in all): given back, but not what they may still
    # add to the meter.
    Row(
        "small raises in flight",
        860.0,
        860.0,
        860.0,
        True,
        8.0,
        80,
        LOAD_KW + 8.0 * (1.0 + CONFIG.aux_fraction),
    ),
    # Large raises in flight: what they may add exceeds the excess: nothing given back.
    Row("large raises in flight", 860.0, 860.0, 860.0, True, 200.0, 80, LEARNT_KW),
    # Raises in flight of unknown size: rising rigs may draw less than their readings.
    Row("unknown raises in flight", 860.0, 860.0, 860.0, False, 0.0, 80, LEARNT_KW),
    # The meter over the limit: never given back (the shed takes the whole error at once).
    Row("meter over the limit", 860.0, 860.0, 860.0, True, 0.0, 80, LEARNT_KW, limit_kw=930.0),
]


def _meter_kw(row: Row) -> float:
    return predicted_import_kw(row.on_meter_kw * 1000.0, CONFIG) + LOAD_KW


def _inputs(row: Row, t_s: float) -> LoopInputs:
    return LoopInputs(
        t_s=t_s,
        limit=EffectiveLimit(row.limit_kw, "quota", "q"),
        grid_fresh=True,
        grid_import_kw=_meter_kw(row),
        rig_power_w=row.reading_kw * 1000.0,
        worst_case_rig_power_w=1200_000.0,
        planned_rig_power_w=row.planned_kw * 1000.0,
        moving=True,  # on a large fleet a few commands are always in flight
        falling=row.falling,
        rising_w=row.rising_kw * 1000.0,
    )


def _run(row: Row) -> list[float]:
    budget_w = row.planned_kw * 1000.0
    state = LoopState(
        t_s=0.0, budget_w=budget_w, integral_kw=LEARNT_KW, rig_power_w=row.reading_kw * 1000.0
    )
    seen = []
    for k in range(1, row.cycles + 1):
        state, _ = step(state, _inputs(row, float(k)), CONFIG)
        seen.append(state.integral_kw)
    return seen


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_a_timing_correction_is_given_back_while_commands_are_in_flight(row: Row) -> None:
    seen = _run(row)
    assert seen[-1] == pytest.approx(row.expect_kw, abs=0.5), seen
    # Never below what the meter allows: the least rig power the site can draw is counted.
    assert min(seen) >= row.expect_kw - 1e-9


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_giving_back_never_plans_the_import_over_the_target(row: Row) -> None:
    # Every cycle, the budget the loop plans, drawn at the load the meter really shows, keeps
    # the import at or under the target (limit less margin), unless it is shedding.
    state = LoopState(
        t_s=0.0,
        budget_w=row.planned_kw * 1000.0,
        integral_kw=LEARNT_KW,
        rig_power_w=row.reading_kw * 1000.0,
    )
    for k in range(1, row.cycles + 1):
        state, d = step(state, _inputs(row, float(k)), CONFIG)
        import_kw = predicted_import_kw(d.rig_budget_w, CONFIG) + LOAD_KW
        assert d.shedding or import_kw <= d.target_import_kw + 1e-9, (k, import_kw)
