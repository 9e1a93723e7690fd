"""The cycle tells the loop what the raises still in flight may add to the meter (rising_w),
and nothing for sheds in flight, which only lower it (issue 19, "loss 1"): the loop then gives
a correction the meter does not show back while a large fleet always has commands in flight,
never by what a raise may still bring. The real ControlCycle on the in-process plant."""

from __future__ import annotations

from pathlib import Path

import pytest
from cycle_plant import TEST_RIG, CyclePlant

import minerd.runtime.cycle as cycle_module
from minerd.control.loop import LoopConfig, LoopDecision, LoopInputs, LoopState
from minerd.model import RigAction

WAKE_REACTION_S = 1.5 * TEST_RIG.wake_time_s + 1.0  # a woken rig may still be ramping


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[LoopInputs]:
    """The loop's inputs, cycle by cycle."""
    seen: list[LoopInputs] = []
    real_step = cycle_module.step

    def spy(
        state: LoopState, inputs: LoopInputs, config: LoopConfig
    ) -> tuple[LoopState, LoopDecision]:
        seen.append(inputs)
        return real_step(state, inputs, config)

    monkeypatch.setattr(cycle_module, "step", spy)
    return seen


def test_raises_in_flight_are_counted_until_they_land_and_sheds_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _spy(monkeypatch)
    p = CyclePlant(tmp_path, TEST_RIG, n=20, ramp_up_kw_per_s=100.0)
    p.run(10)
    p.set_limit(0.5 * p.full_kw)  # a cut: sheds only
    cut_at = len(seen)
    p.run(30)
    sheds = [c for _, c in p.executor.sent if c.action is RigAction.SLEEP]
    assert sheds, "the cut shed no rig"
    assert all(i.rising_w == 0.0 and i.falling for i in seen[cut_at:])

    p.set_limit(p.full_kw + 10.0)  # room again: the sleeping rigs are woken
    t_raise_s = p.clock.now_s()
    p.run(40)
    wakes = [(t, c) for t, c in p.executor.sent if c.action is RigAction.WAKE and t > t_raise_s]
    assert wakes, "no rig was woken"
    first_s = wakes[0][0]
    first = [c for t, c in wakes if t == first_s]
    # The next cycle counts every rig that dispatch woke at what it may still add.
    after = next(i for i in seen if i.t_s == first_s + 1.0)
    expected_w = len(first) * (TEST_RIG.nominal_power_w - TEST_RIG.sleep_power_w)
    assert after.rising_w == pytest.approx(expected_w, rel=0.01)
    # Once the last raise has had its reaction time, nothing is rising any more.
    last_s = max(t for t, _ in wakes)
    landed = [i for i in seen if i.t_s > last_s + WAKE_REACTION_S]
    assert landed, "the run ended before the raises landed"
    assert all(i.rising_w == 0.0 for i in landed)


def test_raises_held_for_landing_sheds_are_not_counted_as_planned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raise held while sheds land is in the plan, not on the rigs: counted as planned,
    the readings never matched the plan, and the loop bounded the meter's error by power
    no rig drew (a 1,000-rig site learnt none of an 80 kW error and went 40 kW over)."""
    seen = _spy(monkeypatch)
    p = CyclePlant(tmp_path, TEST_RIG, n=20, ramp_up_kw_per_s=100.0, min_off_s=0.0)
    p.run(10)
    p.set_limit(0.5 * p.full_kw)  # a cut: sheds...
    p.step()
    p.set_limit(p.full_kw + 10.0)  # ...and room again while they land: raises held
    p.run(20)
    rises = [r.dispatch.held_rise_w for r in p.results[10:] if r.dispatch.held]
    assert rises and max(rises) >= TEST_RIG.nominal_power_w - TEST_RIG.sleep_power_w
    by_t = {i.t_s: i for i in seen}
    for before, after in zip(p.results, p.results[1:], strict=False):
        if before.plan is None or after.snapshot.taken_at_s not in by_t:
            continue
        told_w = before.plan.planned_power_w - before.dispatch.held_rise_w
        assert by_t[after.snapshot.taken_at_s].planned_rig_power_w == pytest.approx(told_w)
