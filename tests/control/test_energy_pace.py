"""Energy pace inside a settlement interval (issue 15 item 2): table-driven, pure."""

from __future__ import annotations

import pytest

from minerd.control.energy_pace import (
    FAULT_BACKWARDS,
    FAULT_DRIFT,
    FAULT_JUMP,
    EnergyCount,
    MeterSample,
    PaceConfig,
    count,
    follow,
    pace,
    start_count,
)
from minerd.control.utilization import REASON_AWARD, gap

CFG = PaceConfig(
    max_kw=500.0,
    margin_kw=2.0,
    target_fraction=0.997,
    no_catchup_fraction=0.1,
    agree_floor_s=1.0,  # 0.14 kWh at 500 kW
)
# A 3600 s interval with 360 kWh awarded: 360 kW on average, 358.92 kW at the 99.7 % target.
AWARD_KWH = 360.0
START_S, END_S = 0.0, 3600.0


@pytest.mark.parametrize(
    ("case", "energy_kwh", "now_s", "expected_kw"),
    [
        ("start", 0.0, 0.0, 0.997 * 360.0 + 2.0),
        ("middle on pace", 0.997 * 180.0, 1800.0, 0.997 * 360.0 + 2.0),
        # Behind by 30 kWh at half time: the rest of the target over the rest of the hour.
        ("behind", 0.997 * 180.0 - 30.0, 1800.0, (0.997 * 180.0 + 30.0) * 2.0 + 2.0),
        ("ahead", 0.997 * 180.0 + 30.0, 1800.0, (0.997 * 180.0 - 30.0) * 2.0 + 2.0),
        # Far behind: no more than the site may draw.
        ("far behind", 0.0, 3000.0, CFG.max_kw),
        ("target reached", 0.997 * 360.0, 3000.0, 0.0),
        ("over", 361.0, 3000.0, 0.0),
        ("interval over", 300.0, 3600.0, 0.0),
    ],
)
def test_pace_spreads_the_rest_of_the_target_over_the_rest_of_the_interval(
    case: str, energy_kwh: float, now_s: float, expected_kw: float
) -> None:
    p = pace(AWARD_KWH, energy_kwh, now_s, START_S, END_S, None, CFG)
    assert p.limit_kw == pytest.approx(expected_kw, rel=1e-9, abs=1e-9), case
    assert p.limit_kw <= CFG.max_kw


def test_no_catch_up_in_the_last_part_the_pace_only_falls() -> None:
    # Enter the last 10 % (360 s) behind: the cap is what the rest may draw at that moment.
    behind_kwh = 0.997 * 324.0 - 10.0
    entry = pace(AWARD_KWH, behind_kwh, 3240.0, START_S, END_S, None, CFG)
    assert entry.frozen_kw == pytest.approx(entry.limit_kw)
    frozen = entry.frozen_kw
    # Still behind later (the fleet could not follow): the figure would rise, the cap holds.
    later = pace(AWARD_KWH, behind_kwh + 5.0, 3500.0, START_S, END_S, frozen, CFG)
    unfrozen = pace(AWARD_KWH, behind_kwh + 5.0, 3500.0, START_S, END_S, None, CFG)
    assert unfrozen.limit_kw > frozen  # what a catch-up would ask for
    assert later.limit_kw == pytest.approx(frozen)
    # Ahead: it falls, and the lower figure becomes the cap.
    ahead = pace(AWARD_KWH, 0.997 * 355.0, 3500.0, START_S, END_S, frozen, CFG)
    assert ahead.limit_kw < frozen
    assert ahead.frozen_kw == pytest.approx(ahead.limit_kw)
    # Before the last part nothing is frozen: a site behind may catch up (power limits apply).
    assert pace(AWARD_KWH, 100.0, 1800.0, START_S, END_S, None, CFG).frozen_kw is None


def test_running_at_the_pace_to_the_end_lands_on_the_target() -> None:
    """A site that draws exactly the pace less the loop's margin ends at the target."""
    energy, frozen, dt = 0.0, None, 1.0
    t = START_S
    while t < END_S:
        p = pace(AWARD_KWH, energy, t, START_S, END_S, frozen, CFG)
        frozen = p.frozen_kw
        energy += max(0.0, p.limit_kw - CFG.margin_kw) * dt / 3600.0
        t += dt
    assert energy == pytest.approx(0.997 * AWARD_KWH, rel=1e-6)


def fresh(t_s: float, power_kw: float, energy_kwh: float | None) -> MeterSample:
    return MeterSample(t_s, power_kw, energy_kwh, fresh=True)


def stale(t_s: float) -> MeterSample:
    return MeterSample(t_s, 0.0, None, fresh=False)


def run(samples: list[tuple[float, MeterSample]], worst_kw: float = 400.0) -> EnergyCount:
    (_, first), *rest = samples
    c = start_count(START_S, first.taken_at_s, 0.0, first)
    for now_s, s in rest:
        c = count(c, s, now_s, worst_kw, CFG)
    return c


def test_register_used_while_it_agrees_with_the_integral() -> None:
    # 360 kW for 10 s: 1.0 kWh. The register says 1.01 (within 2 %): the register wins.
    c = run([(0.0, fresh(0.0, 360.0, 1000.0)), (10.0, fresh(10.0, 360.0, 1001.01))])
    assert c.integral_kwh == pytest.approx(1.0)
    assert c.register_kwh == pytest.approx(1.01)
    assert c.energy_kwh == pytest.approx(1.01)
    assert c.fault == ""


def test_meter_without_register_integrates_power_trapezoid() -> None:
    c = run([(0.0, fresh(0.0, 300.0, None)), (1.0, fresh(1.0, 420.0, None))])
    assert c.energy_kwh == pytest.approx(360.0 / 3600.0)
    assert c.register_kwh is None


@pytest.mark.parametrize(
    ("case", "second_register_kwh", "fault"),
    [
        ("backwards", 999.0, FAULT_BACKWARDS),
        # 500 kW max for 10 s (+10 s slack) is 2.78 kWh: 50 kWh cannot have been drawn.
        ("jump", 1050.0, FAULT_JUMP),
        # Plausible step, but 1.5 kWh against 1 kWh integrated: not believed.
        ("drift", 1001.5, FAULT_DRIFT),
    ],
)
def test_register_fault_falls_back_to_the_integral(
    case: str, second_register_kwh: float, fault: str
) -> None:
    c = run(
        [
            (0.0, fresh(0.0, 360.0, 1000.0)),
            (10.0, fresh(10.0, 360.0, second_register_kwh)),
            (20.0, fresh(20.0, 360.0, second_register_kwh + 1.0)),
        ]
    )
    assert c.fault == fault, case
    assert c.register_kwh is None
    assert c.energy_kwh == pytest.approx(2.0)  # the integral, 360 kW for 20 s


def test_a_register_read_late_is_no_jump_and_the_steps_sum_to_the_truth() -> None:
    # At full load (500 kW) the reading stamped 10 s was read 4 s late (a stalled loop):
    # its step holds 14 s of energy, more than 500 kW can draw in 10 s + 1 s. The next
    # reading is on time, so the register over both steps is the truth: 20 s at 500 kW.
    # The defaults: the register agrees with the integral within 10 s at max_kw.
    cfg = PaceConfig(max_kw=500.0)
    per_s = 500.0 / 3600.0
    c = start_count(START_S, 0.0, 0.0, fresh(0.0, 500.0, 1000.0))
    c = count(c, fresh(10.0, 500.0, 1000.0 + 14.0 * per_s), 10.0, 500.0, cfg)
    assert c.fault == ""
    c = count(c, fresh(20.0, 500.0, 1000.0 + 20.0 * per_s), 20.0, 500.0, cfg)
    assert c.fault == ""
    assert c.register_kwh == pytest.approx(20.0 * per_s)
    assert c.energy_kwh == pytest.approx(20.0 * per_s)


def test_stale_meter_counts_the_worst_case_until_fresh_without_register() -> None:
    c = run(
        [
            (0.0, fresh(0.0, 360.0, None)),
            (10.0, fresh(10.0, 360.0, None)),
            (15.0, stale(10.0)),
            (20.0, stale(10.0)),
        ],
        worst_kw=720.0,
    )
    # 1.0 kWh counted, then 10 s blind at 720 kW: 2.0 kWh more, pending.
    assert c.pending_kwh == pytest.approx(2.0)
    assert c.energy_kwh == pytest.approx(3.0)
    c = count(c, fresh(21.0, 360.0, None), 21.0, 720.0, CFG)
    # Back: the worst case stands, the last second at the fresh power.
    assert c.energy_kwh == pytest.approx(3.0 + 0.1)
    assert c.pending_kwh == 0.0


def test_stale_gap_settled_by_the_register_when_it_has_one() -> None:
    c = run(
        [
            (0.0, fresh(0.0, 360.0, 1000.0)),
            (10.0, fresh(10.0, 360.0, 1001.0)),
            (20.0, stale(10.0)),
        ],
        worst_kw=720.0,
    )
    assert c.energy_kwh == pytest.approx(3.0)  # 1 kWh + 10 s at 720 kW (pending)
    c = count(c, fresh(30.0, 360.0, 1003.0), 30.0, 720.0, CFG)
    assert c.energy_kwh == pytest.approx(3.0)  # register: 2 kWh over the 20 s gap
    assert c.pending_kwh == 0.0
    assert c.fault == ""


def test_same_reading_twice_counts_once() -> None:
    c = run([(0.0, fresh(0.0, 360.0, 1000.0)), (10.0, fresh(10.0, 360.0, 1001.0))])
    again = count(c, fresh(10.0, 360.0, 1001.0), 11.0, 400.0, CFG)
    assert again == c


@pytest.mark.parametrize(
    ("case", "bias_kw", "asked_kw", "drawn_kw", "dt_s", "expected_kw"),
    [
        # The site settles 10 kW under what is asked: 5 % of that per second is learnt.
        ("under", 0.0, 200.0, 190.0, 1.0, 0.5),
        ("over", 0.0, 200.0, 210.0, 2.0, -1.0),
        ("on pace", 3.0, 200.0, 200.0, 1.0, 3.0),
        # Bounded at 10 % of max_kw (50 kW) either way: a fleet that cannot draw more
        # does not wind it up without end.
        ("bounded up", 49.9, 200.0, 0.0, 1.0, 50.0),
        ("bounded down", -49.9, 0.0, 400.0, 1.0, -50.0),
        ("long gap counts as one whole step at most", 0.0, 200.0, 190.0, 100.0, 10.0),
    ],
)
def test_follow_learns_the_shortfall_bounded(
    case: str, bias_kw: float, asked_kw: float, drawn_kw: float, dt_s: float, expected_kw: float
) -> None:
    cfg = PaceConfig(max_kw=500.0, bias_per_s=0.05, bias_max_fraction=0.1)
    assert follow(bias_kw, asked_kw, drawn_kw, dt_s, cfg) == pytest.approx(expected_kw), case


def test_bias_is_added_to_the_pace_and_frozen_with_it() -> None:
    plain = pace(AWARD_KWH, 0.0, 0.0, START_S, END_S, None, CFG)
    biased = pace(AWARD_KWH, 0.0, 0.0, START_S, END_S, None, CFG, bias_kw=5.0)
    assert biased.limit_kw == pytest.approx(plain.limit_kw + 5.0)
    assert biased.asked_kw == pytest.approx(plain.asked_kw)  # what the site should draw


def test_energy_carried_to_now_at_the_last_power_read() -> None:
    c = run([(0.0, fresh(0.0, 360.0, 1000.0)), (10.0, fresh(10.0, 360.0, 1001.0))])
    assert c.energy_at_kwh(10.0) == pytest.approx(1.0)
    assert c.energy_at_kwh(12.0) == pytest.approx(1.2)  # 2 s at 360 kW more
    assert c.energy_at_kwh(5.0) == pytest.approx(1.0)  # never before the reading


def test_under_the_power_limit_for_the_award_is_named_so() -> None:
    """Utilization (issue 19) judges the import against the power limit: an interval paced
    by its award is under it on purpose, and its reason says so, not "the next cut"."""
    g = gap(
        limit_kw=60.0,  # the award's pace
        limit_now_kw=100.0,  # the power limit in force
        import_kw=59.0,
        target_kw=59.0,
        correction_kw=0.0,
        aux_base_kw=0.0,
        aux_fraction=0.0,
        wanted_unclipped_w=59_000.0,
        wanted_w=59_000.0,
        budget_w=59_000.0,
        planned_w=59_000.0,
        min_off_w=0.0,
        unresponsive_w=0.0,
        award=True,
    )
    assert g.award_kw == pytest.approx(40.0)
    assert g.ahead_kw == 0.0
    assert g.reason() == REASON_AWARD


def edge_count(last_s: float, last_kw: float, last_reg: float) -> EnergyCount:
    """A new interval starting at 100 s, its last reading before the edge."""
    return EnergyCount(
        start_s=100.0,
        register_kwh=0.0,
        last_s=last_s,
        last_power_kw=last_kw,
        last_register_kwh=last_reg,
        edge_s=100.0,
    )


@pytest.mark.parametrize(
    ("case", "last", "reading", "expected_kwh"),
    [
        # 1 s before and 1 s after at 360 kW: half of the 0.2 kWh is the new interval's.
        ("short gap", (99.0, 360.0, 1000.0), (101.0, 360.0, 1000.2), 0.1),
        # Power fell across the edge: split by time all the same (readings 2 s apart).
        ("falling", (99.0, 720.0, 1000.0), (101.0, 360.0, 1000.3), 0.15),
        # Blind for 60 s across the edge (6 kWh): only what 500 kW cannot have drawn in the
        # 30 s after it is taken off, so the new interval counts 4.17 kWh, not 3 by time.
        ("blind", (70.0, 360.0, 1000.0), (130.0, 360.0, 1006.0), 500.0 * 30.0 / 3600.0),
        # A reading still before the edge: all of its step is the last interval's.
        ("still before", (98.0, 360.0, 1000.0), (99.5, 360.0, 1000.15), 0.0),
    ],
)
def test_the_step_across_an_edge_is_split_counting_the_new_interval_high(
    case: str,
    last: tuple[float, float, float],
    reading: tuple[float, float, float],
    expected_kwh: float,
) -> None:
    c = count(edge_count(*last), fresh(*reading), reading[0], 400.0, CFG)
    assert c.energy_kwh == pytest.approx(expected_kwh, abs=1e-6), case
    assert (c.edge_s is None) == (reading[0] > 100.0)


def held(t_s: float, power_kw: float, energy_kwh: float, window_s: float) -> MeterSample:
    """A reading stamped halfway through a read that took window_s (a busy loop or link):
    the meter sampled its register somewhere in that window."""
    return MeterSample(
        t_s,
        power_kw,
        energy_kwh,
        fresh=True,
        earliest_s=t_s - window_s / 2.0,
        latest_s=t_s + window_s / 2.0,
    )


@pytest.mark.parametrize(
    ("case", "last", "reading", "window_s", "true_after_kwh"),
    [
        # Blind 60 s across the edge at 450 kW, and the read answered 10 s after its stamp
        # with the register of that moment: 70 s of energy (8.75 kWh), 5 kWh of it after the
        # edge. Taken at its stamp, 500 kW for 30 s (4.17 kWh) would count it low; taken at
        # the latest the register may have been sampled (140 s), 500 kW for 40 s.
        ("blind, read held", (70.0, 450.0, 1000.0), (130.0, 450.0, 1008.75), 20.0, 5.0),
        # Readings 2 s apart by their stamps, the second's register sampled 1 s later: 3 s
        # of 360 kW in its step, 2 s of it after the edge; split on the latest moments.
        ("short, read held", (99.0, 360.0, 1000.0), (101.0, 360.0, 1000.3), 2.0, 0.2),
    ],
)
def test_a_held_read_across_an_edge_counts_the_new_interval_high(
    case: str,
    last: tuple[float, float, float],
    reading: tuple[float, float, float],
    window_s: float,
    true_after_kwh: float,
) -> None:
    c = count(edge_count(*last), held(*reading, window_s), reading[0], 400.0, CFG)
    assert c.energy_kwh >= true_after_kwh - 1e-9, case
    # And not by more than the read's window at the most the site may draw.
    assert c.energy_kwh <= true_after_kwh + CFG.max_kw * window_s / 3600.0, case
    assert c.edge_s is None


def test_a_read_stamped_before_the_edge_but_held_past_it_is_split_there() -> None:
    """Stamped before the edge, but it may have sampled the register after it: its step is
    not all the last interval's."""
    c = count(edge_count(97.0, 360.0, 1000.0), held(99.5, 360.0, 1000.25, 2.0), 99.5, 400.0, CFG)
    assert c.edge_s is None  # latest 100.5 s: past the edge, so this step was split
    assert c.energy_kwh > 0.0  # part of it counted in the new interval


def test_energy_is_carried_on_from_the_earliest_moment_of_a_held_read() -> None:
    """The register may have been sampled when the read was asked: carrying on from its
    stamp would leave the time between uncounted (the pace would draw it again)."""
    c = run([(0.0, fresh(0.0, 360.0, 1000.0)), (10.0, held(10.0, 360.0, 1001.0, 4.0))])
    assert c.energy_kwh == pytest.approx(1.0)
    assert c.energy_at_kwh(12.0) == pytest.approx(1.0 + 360.0 * 4.0 / 3600.0)
    assert c.energy_at_kwh(8.0) == pytest.approx(1.0)  # never before the earliest moment
