"""control.counting.NominalWatch: what the loop stops counting when rigs counted at nominal
answer again (LoopInputs.uncounted_w), cycle to cycle."""

from __future__ import annotations

import dataclasses

import pytest

from minerd.control.counting import NominalWatch
from minerd.control.planner import PlanRig
from minerd.model import RigState
from minerd.profiles.loader import load_rig_model

MODEL = load_rig_model("bitmain-s19jpro")


def rig(k: int, power_w: float, unresponsive: bool = False) -> PlanRig:
    return PlanRig(
        rig_id=f"rig-{k}",
        model=MODEL,
        awake=True,
        power_w=power_w,
        state=RigState.HASHING,
        unresponsive=unresponsive,
    )


def test_a_rig_answering_again_is_uncounted_by_nominal_less_its_reading() -> None:
    watch = NominalWatch()
    hung = [rig(0, 900.0, unresponsive=True), rig(1, 2000.0, unresponsive=True), rig(2, 2500.0)]
    first = watch.count(hung)
    nominal_w = MODEL.nominal_power_w
    assert first.counted_w == pytest.approx(2 * nominal_w + 2500.0)
    assert first.uncounted_w == 0.0  # nothing was counted at nominal before
    # rig-0 answers (at 900 W), rig-1 stays hung, rig-2 was never at nominal.
    back = [dataclasses.replace(hung[0], unresponsive=False), hung[1], hung[2]]
    second = watch.count(back)
    assert second.counted_w == pytest.approx(900.0 + nominal_w + 2500.0)
    assert second.uncounted_w == pytest.approx(nominal_w - 900.0)
    # Counted once: the next cycle has nothing more to take back.
    assert watch.count(back).uncounted_w == 0.0


def test_a_rig_reading_above_nominal_is_never_uncounted_below_zero() -> None:
    watch = NominalWatch()
    over = MODEL.nominal_power_w + 300.0
    watch.count([rig(0, over, unresponsive=True)])  # counted at its reading, above nominal
    assert watch.count([rig(0, over)]).uncounted_w == 0.0
    # A rig gone from the fleet is not uncounted (it is no longer counted at all).
    watch.count([rig(0, 0.0, unresponsive=True)])
    assert watch.count([]).uncounted_w == 0.0
