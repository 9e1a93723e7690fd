"""From a snapshot's RigStatus to what the planner and the loop need, with the safety rules.

A rig is dispatched only on a fresh reading that says hashing or sleeping. A rig that ignores
commands, or whose state is not known (stale reading, not known to be asleep), is counted at
its nominal power; an offline rig at 0 W; a faulted one at what it last drew.

A rig whose last read worked and said hashing, and whose next read is only late (the poller
fell behind: a stalled host, a long cycle), is not unknown: the caller may have it counted at
that reading, not moved, while a fresh grid meter watches the site (`late_as_read`). Counted
at nominal, a stall of a few seconds on a 1,000-rig site made 160 late rigs look 540 kW
heavier than they were and shed 641 healthy rigs (measured); a late rig that did rise is
load the meter shows, and the closed loop takes it off the budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from minerd.control.planner import PlanRig
from minerd.model import RigModel, RigReading, RigSetpoint, RigState, RigStatus


def plan_rig(
    status: RigStatus,
    model: RigModel,
    *,
    since_switch_s: float = math.inf,
    setpoint: RigSetpoint | None = None,
    late_as_read: bool = False,
) -> PlanRig:
    reading = status.reading
    state = reading.state
    known = status.fresh and state in (RigState.HASHING, RigState.SLEEPING)
    # Stale and not known asleep: assume the worst (nominal), like a rig ignoring commands;
    # unless only late (see the module's note) and the caller allows it.
    unknown_awake = (
        not status.fresh
        and state not in (RigState.SLEEPING, RigState.OFFLINE)
        and not (late_as_read and late_hashing(status))
    )
    return PlanRig(
        rig_id=status.rig_id,
        model=model,
        awake=state is not RigState.SLEEPING,
        power_w=reading.power_w,
        state=state,
        chip_temp_c=reading.chip_temp_max_c,
        since_switch_s=since_switch_s,
        maintenance=status.maintenance,
        unresponsive=status.unresponsive or unknown_awake,
        dispatchable=known,
        setpoint_power_w=setpoint.power_w if setpoint is not None and setpoint.awake else None,
        setpoint_profile=setpoint.profile if setpoint is not None else reading.profile,
        setpoint=setpoint,
    )


def late_hashing(status: RigStatus) -> bool:
    """Stale only because the next read is late: the last read worked (a failed read leaves
    offline or unknown, never hashing) and said hashing, and the rig obeys."""
    return (
        not status.fresh
        and status.reading.state is RigState.HASHING
        and not status.unresponsive
        and not status.maintenance
    )


def show_time_s(model: RigModel) -> float:
    """How soon a rig told to shed should visibly have begun to: a fifth of its sleep time."""
    return max(0.5, 0.2 * model.sleep_time_s)


def seen_to_change(from_w: float, to_w: float, reading: RigReading, *, told_to_sleep: bool) -> bool:
    """A reading shows a shed command taking effect: asleep, or moved a good part of the way
    from from_w to to_w. Until then the rig is not counted on if the grid meter says over."""
    if told_to_sleep and reading.state in (RigState.SLEEPING, RigState.OFFLINE):
        return True
    return reading.power_w <= from_w - 0.15 * max(0.0, from_w - to_w)


def distrusted_w(status: RigStatus, model: RigModel) -> float:
    """A rig not yet seen to obey: its measured or nominal power, whichever is higher."""
    return max(status.reading.power_w, model.nominal_power_w)


def worst_case_rig_power_w(statuses: Iterable[RigStatus], models: Mapping[str, RigModel]) -> float:
    """Nominal power for every rig not known to be asleep (fresh SLEEPING reading)."""
    total = 0.0
    for s in statuses:
        m = models[s.model]
        asleep = s.fresh and s.reading.state is RigState.SLEEPING
        total += m.sleep_power_w if asleep else m.nominal_power_w
    return total


def max_rig_power_w(statuses: Iterable[RigStatus], models: Mapping[str, RigModel]) -> float:
    """The most the fleet could draw: the highest point of every rig's model."""
    tops = {
        name: max([p.power_w for p in m.profiles] + [m.max_power_w, m.nominal_power_w])
        for name, m in models.items()
    }
    return sum(tops[s.model] for s in statuses)
