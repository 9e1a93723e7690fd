"""The site over its limit with only unresponsive rigs left to shed (control.overload).

A starved controller cannot read most rigs (their reads time out) while the rigs
themselves obey commands. The planner counts them at nominal and moves only the rest; a
cut deeper than the rest can carry left the site over its limit for as long as the reads
failed. Now they are told to sleep, enough to cover the shortfall, and the site gets under.
Real ControlCycle, IntentBook and planner on tests/cycle_plant.py, on a manual clock."""

from __future__ import annotations

from pathlib import Path

from cycle_plant import TEST_RIG, CyclePlant

from minerd.control.overload import REASON
from minerd.model import RigAction

HUNG = {f"r{i:03d}" for i in range(1, 13)}  # 12 of 20 rigs cannot be read


def _overload_sleeps(plant: CyclePlant) -> list[str]:
    return [
        c.rig_id
        for _, c in plant.executor.sent
        if c.action is RigAction.SLEEP and c.reason == REASON
    ]


def _plant(tmp_path: Path) -> CyclePlant:
    plant = CyclePlant(tmp_path, TEST_RIG, n=20, read_every_s=2)
    plant.run(30)  # measured and settled at full load (no cut: the limit is twice that)
    plant.hung.update(HUNG)
    plant.run(5)  # their readings go stale: unknown, counted at nominal
    return plant


def test_a_cut_the_readable_rigs_cannot_carry_sleeps_unresponsive_ones(tmp_path: Path) -> None:
    plant = _plant(tmp_path)
    limit_kw = 0.4 * plant.full_kw  # 27.2 kW: 12 rigs at 3 kW alone import 42.8 kW
    assert plant.import_kw_for(len(HUNG) * TEST_RIG.nominal_power_w) > limit_kw
    plant.set_limit(limit_kw)
    plant.run(40)

    told = _overload_sleeps(plant)
    assert told, "no unresponsive rig was told to sleep"
    assert set(told) <= HUNG
    # Enough to cover the shortfall, not the whole hung set: 6 of the 12 fit the budget.
    asleep_hung = [r for r in HUNG if not plant.rigs[r].awake]
    assert 4 <= len(asleep_hung) < len(HUNG), asleep_hung
    assert len(told) == len(set(told))  # not re-sent within overload_resend_s
    # Under the limit once the sleeps landed (sleep time 5 s), and it stays there.
    cut_at = plant.history[-40][0]
    late = [(t, kw) for t, kw, lim in plant.history if t >= cut_at + 15]
    assert all(kw <= limit_kw for _, kw in late), max(kw for _, kw in late)


def test_unresponsive_rigs_are_left_alone_while_the_rest_can_carry_the_cut(
    tmp_path: Path,
) -> None:
    plant = _plant(tmp_path)
    # 12 hung rigs import 42.8 kW; the 8 others can carry a cut to 50 kW.
    limit_kw = 50.0
    plant.set_limit(limit_kw)
    plant.run(40)
    assert _overload_sleeps(plant) == []
    assert all(plant.rigs[r].awake for r in HUNG)
    late = [kw for t, kw, lim in plant.history[-20:]]
    assert max(late) <= limit_kw


def test_rigs_slept_past_the_plan_are_woken_once_they_can_be_read(tmp_path: Path) -> None:
    plant = _plant(tmp_path)
    plant.set_limit(0.4 * plant.full_kw)
    plant.run(40)
    assert _overload_sleeps(plant)
    plant.hung.clear()
    plant.set_limit(2.0 * plant.full_kw)
    plant.run(120)
    assert all(r.awake for r in plant.rigs.values())
    assert plant.history[-1][1] >= 0.97 * plant.full_kw


def test_a_deeper_cut_sleeps_more_unread_rigs_not_the_same_again(tmp_path: Path) -> None:
    # The first cut sleeps 6 of the 12 unread rigs; they stay unread (counted at nominal).
    # A deeper cut 20 s later needs more: the meter says over, so rigs not told yet go,
    # not the 6 already asleep (telling those again would change nothing, and crediting
    # them as "on their way" long after they landed would leave the site over).
    plant = _plant(tmp_path)
    plant.set_limit(0.4 * plant.full_kw)
    plant.run(20)
    first = set(_overload_sleeps(plant))
    assert first
    limit_kw = 0.2 * plant.full_kw  # 13.6 kW: at most 2 of the 12 awake
    plant.set_limit(limit_kw)
    plant.run(40)
    second = _overload_sleeps(plant)[len(first) :]
    assert second and not set(second) & first, (first, second)
    cut_at = plant.history[-40][0]
    late = [kw for t, kw, _ in plant.history if t >= cut_at + 15]
    assert max(late) <= limit_kw
