"""From a snapshot's RigStatus to what the planner and the loop need, with the safety rules.

A rig is dispatched only on a fresh reading that says hashing or sleeping. A rig that ignores
commands, or whose state is not known (stale reading, not known to be asleep), is counted at
its nominal power; an offline rig at 0 W; a faulted one at what it last drew.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from minerd.control.planner import PlanRig
from minerd.model import RigModel, RigSetpoint, RigState, RigStatus


def plan_rig(
    status: RigStatus,
    model: RigModel,
    *,
    since_switch_s: float = math.inf,
    setpoint: RigSetpoint | None = None,
) -> PlanRig:
    reading = status.reading
    state = reading.state
    known = status.fresh and state in (RigState.HASHING, RigState.SLEEPING)
    # Stale and not known asleep: assume the worst (nominal), like a rig ignoring commands.
    unknown_awake = not status.fresh and state not in (RigState.SLEEPING, RigState.OFFLINE)
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
