"""control.overload: which unresponsive rigs are told to sleep when the plan cannot fit."""

from __future__ import annotations

from dataclasses import replace

from cycle_plant import TEST_RIG

from minerd.control.overload import overload_sheds, sheddable_w
from minerd.control.planner import PlanRig
from minerd.model import ControlMode, RigState

NOW_S = 1_000.0


def rig(rig_id: str, power_w: float = 3000.0, **kw: object) -> PlanRig:
    base = PlanRig(rig_id, TEST_RIG, awake=True, power_w=power_w, unresponsive=True)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_only_unresponsive_awake_rigs_that_can_sleep_count() -> None:
    # Counted at nominal (3000 W) even when the last reading was lower: 2980 W freed.
    assert sheddable_w(rig("a", power_w=1000.0)) == 3000.0 - TEST_RIG.sleep_power_w
    assert sheddable_w(rig("b", unresponsive=False)) == 0.0  # the planner moves it
    assert sheddable_w(rig("c", maintenance=True)) == 0.0  # pinned by an operator
    assert sheddable_w(rig("d", state=RigState.OFFLINE)) == 0.0
    assert sheddable_w(rig("e", state=RigState.SLEEPING, awake=False)) == 0.0
    no_sleep = replace(TEST_RIG, modes=frozenset({ControlMode.POWER_TARGET}))
    assert sheddable_w(rig("f", model=no_sleep)) == 0.0


def test_largest_first_until_the_need_is_covered() -> None:
    rigs = [rig("a", 3000.0), rig("b", 3500.0), rig("c", 3000.0), rig("d", 3200.0)]
    # b frees 3480 W, d 3180 W: 6,000 W needs both, 7,000 W a third (a, by name).
    assert overload_sheds(rigs, 6_000.0, {}, NOW_S, 120.0, 2.0) == ["b", "d"]
    assert overload_sheds(rigs, 7_000.0, {}, NOW_S, 120.0, 2.0) == ["b", "d", "a"]
    assert overload_sheds(rigs, 0.0, {}, NOW_S, 120.0, 2.0) == []


def test_a_rig_still_landing_counts_as_on_its_way() -> None:
    rigs = [rig("a"), rig("b"), rig("c")]
    # a was told 5 s ago: its sleep (5 s) plus 2 s of landing is not over, so its 2980 W
    # count against the need; 5,000 W needs one more rig, never a again.
    assert overload_sheds(rigs, 5_000.0, {"a": NOW_S - 5.0}, NOW_S, 120.0, 2.0) == ["b"]


def test_once_landed_the_meter_has_the_last_word_and_untold_rigs_go() -> None:
    rigs = [rig("a", 3500.0), rig("b"), rig("c")]
    told = {"a": NOW_S - 10.0}  # landed: if the site is still over, a did not do it all
    # 5,000 W still needed: from b and c, not a again (biggest, but told already).
    assert overload_sheds(rigs, 5_000.0, told, NOW_S, 120.0, 2.0) == ["b", "c"]
    # More than they free (a limit under the site's auxiliary load): still not a, which
    # is asleep or being retried by the executor: no sleep to it every cycle.
    assert overload_sheds(rigs, 9_000.0, told, NOW_S, 120.0, 2.0) == ["b", "c"]
    # resend_s after it was told, a is a rig like any other again.
    assert overload_sheds(rigs, 3_000.0, told, NOW_S + 115.0, 120.0, 2.0) == ["a"]
