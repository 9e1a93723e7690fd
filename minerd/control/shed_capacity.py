"""What the site can shed, and how fast: the kW a grid authority may count on within 5 s,
60 s and 10 minutes of a command (issue 15 item 5).

A rig counts what it draws now minus the lowest power it can reach within the horizon:
- sleep power, when its family can sleep it within the horizon (the family's sleep time);
- else its lowest awake point (profile, preset or power-target minimum), when its family
  changes power within the horizon (power_change_s; a family without it, the slower of its
  sleep and wake times, as the cycle waits for a profile change);
- else nothing.
Only rigs minerd can command now count: a fresh HASHING reading, not in maintenance, not
unresponsive, a family with a command path. Asleep, offline, faulted or stale rigs count 0.
Times run from the command being sent. Rigs are summed per (family, model) class in one pass
with no object per rig, so 50,000 rigs cost a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from minerd.control.options import awake_points
from minerd.model import (
    ControlMode,
    RigModel,
    RigProtocol,
    RigState,
    RigStatus,
    ShedCapacity,
    ShedClass,
)

HORIZONS_S: tuple[float, ...] = (5.0, 60.0, 600.0)

_POWER_MODES = frozenset({ControlMode.PROFILES, ControlMode.POWER_TARGET})


def floor_w(model: RigModel, family: RigProtocol, horizon_s: float) -> float | None:
    """The lowest power `model` under `family` reaches within horizon_s of a command;
    None when it cannot move in time (or has no command path)."""
    r = model.reaction(family)
    if ControlMode.SLEEP_WAKE in r.modes and r.sleep_time_s <= horizon_s:
        return model.sleep_power_w
    if not r.modes & _POWER_MODES:
        return None
    change_s = r.power_change_s if r.power_change_s > 0 else max(r.sleep_time_s, r.wake_time_s)
    if change_s > horizon_s:
        return None
    lowest_w = awake_points(model)[0].power_w
    if r.power_steps_w:
        lowest_w = min(lowest_w, r.power_steps_w[0])
    return lowest_w


def _shed_w(powers: list[float], floor: float | None) -> float:
    if floor is None or not powers:
        return 0.0
    if min(powers) >= floor:
        return sum(powers) - floor * len(powers)
    return sum(p - floor for p in powers if p > floor)


def shed_capacity(
    rigs: Iterable[RigStatus],
    models: Mapping[str, RigModel],
    *,
    aux_fraction: float,
    horizons_s: tuple[float, ...] = HORIZONS_S,
) -> ShedCapacity:
    """`models` by rig id, as the family drives it (RigModel.for_family), like the cycle's.
    A rig without a model is left out."""
    hashing = RigState.HASHING
    # (family, model name) -> (a rig id for the model, powers drawn)
    groups: dict[tuple[RigProtocol, str], tuple[str, list[float]]] = {}
    for st in rigs:
        if not st.fresh or st.maintenance or st.unresponsive:
            continue
        rd = st.reading
        if rd.state is not hashing:
            continue
        key = (st.protocol, st.model)
        g = groups.get(key)
        if g is None:
            g = groups[key] = (st.rig_id, [])
        g[1].append(rd.power_w)
    classes: list[ShedClass] = []
    for (family, name), (rig_id, powers) in sorted(groups.items()):
        model = models.get(rig_id)
        if model is None:
            continue
        floors = [floor_w(model, family, h) for h in horizons_s]
        shed = tuple(_shed_w(powers, f) for f in floors)
        classes.append(ShedClass(family, name, len(powers), sum(powers), shed))
    return ShedCapacity(tuple(horizons_s), 1.0 + aux_fraction, tuple(classes))
