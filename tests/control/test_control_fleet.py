"""Snapshot rigs to planner rigs: the safety rules for stale, unresponsive and offline rigs."""

from __future__ import annotations

from control_models import PROFILE_RIG

from minerd.control.fleet import plan_rig, worst_case_rig_power_w
from minerd.control.planner import PlanConstraints, plan
from minerd.model import RigProtocol, RigReading, RigSetpoint, RigState, RigStatus

MODELS = {PROFILE_RIG.name: PROFILE_RIG}


def status(
    rid: str,
    state: RigState,
    power_w: float,
    *,
    fresh: bool = True,
    maintenance: bool = False,
    unresponsive: bool = False,
) -> RigStatus:
    reading = RigReading(rid, 0.0, state, "", power_w=power_w, chip_temp_max_c=70.0)
    return RigStatus(
        rig_id=rid,
        model=PROFILE_RIG.name,
        container="c1",
        host="127.0.0.1",
        port=4028,
        protocol=RigProtocol.LUXOS,
        reading=reading,
        fresh=fresh,
        maintenance=maintenance,
        unresponsive=unresponsive,
    )


def test_safety_rules() -> None:
    fleet = [
        status("a-ok", RigState.HASHING, 2600.0),
        status("b-asleep", RigState.SLEEPING, 20.0),
        status("c-stale", RigState.HASHING, 2000.0, fresh=False),
        status("d-stale-asleep", RigState.SLEEPING, 20.0, fresh=False),
        status("e-offline", RigState.OFFLINE, 0.0),
        status("f-ignores", RigState.HASHING, 1500.0, unresponsive=True),
        status("g-pinned", RigState.HASHING, 2900.0, maintenance=True),
    ]
    rigs = [plan_rig(s, PROFILE_RIG) for s in fleet]
    p = plan(0.0, rigs, PlanConstraints())
    sp = {s.rig_id: s for s in p.setpoints}
    assert sp["c-stale"].power_w == PROFILE_RIG.nominal_power_w  # unknown: nominal
    assert sp["f-ignores"].power_w == PROFILE_RIG.nominal_power_w
    assert sp["g-pinned"].power_w == 2900.0
    assert sp["e-offline"].power_w == 0.0
    assert not sp["a-ok"].awake and not sp["b-asleep"].awake
    assert (
        sp["d-stale-asleep"].power_w == 20.0 and "not dispatchable" in sp["d-stale-asleep"].reason
    )
    # Worst case: nominal for all but the rig known (fresh) to be asleep.
    expected = 20.0 + 6 * PROFILE_RIG.nominal_power_w
    assert worst_case_rig_power_w(fleet, MODELS) == expected


def test_last_setpoint_is_carried() -> None:
    sp = RigSetpoint("a", True, 2600.0, "p2600", "run: p2600")
    r = plan_rig(status("a", RigState.HASHING, 2590.0), PROFILE_RIG, setpoint=sp)
    assert (r.setpoint_power_w, r.setpoint_profile, r.setpoint) == (2600.0, "p2600", sp)
    again = plan(2600.0, [r], PlanConstraints())
    assert again.setpoints[0] is sp  # unchanged: the same object comes back


def test_a_late_hashing_rig_may_be_counted_at_its_last_reading() -> None:
    late = status("c-late", RigState.HASHING, 2000.0, fresh=False)
    as_read = plan_rig(late, PROFILE_RIG, late_as_read=True)
    # Counted at what it last drew, and not moved on a reading that old.
    assert not as_read.unresponsive and not as_read.dispatchable
    sp = plan(0.0, [as_read], PlanConstraints()).setpoints[0]
    assert (sp.awake, sp.power_w) == (True, 2000.0)
    assert "not dispatchable" in sp.reason
    # Not allowed by the caller (no fresh grid meter, or too old): nominal, as before.
    assert plan(0.0, [plan_rig(late, PROFILE_RIG)], PlanConstraints()).setpoints[0].power_w == (
        PROFILE_RIG.nominal_power_w
    )


def test_only_late_hashing_rigs_are_counted_as_read() -> None:
    # A failed read leaves the state unknown; a rig that ignores commands keeps its rule.
    for st in (
        status("u", RigState.UNKNOWN, 2000.0, fresh=False),
        status("i", RigState.HASHING, 2000.0, fresh=False, unresponsive=True),
        status("f", RigState.FAULT, 2000.0, fresh=False),
    ):
        r = plan_rig(st, PROFILE_RIG, late_as_read=True)
        assert r.unresponsive, st.rig_id
        counted_w = plan(0.0, [r], PlanConstraints()).setpoints[0].power_w
        assert counted_w == PROFILE_RIG.nominal_power_w, st.rig_id
    # Fresh: the planner moves it as always.
    assert plan_rig(
        status("h", RigState.HASHING, 2000.0), PROFILE_RIG, late_as_read=True
    ).dispatchable
