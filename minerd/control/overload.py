"""Shedding past the plan: the site over its limit with nothing left the planner may move.

The planner moves only rigs it trusts (a fresh reading, obeying commands). Rigs it cannot
read or that have not obeyed are counted at nominal power and left alone, which is right
while the rest can carry the cut. When they cannot (the plan's floor is over the budget:
Plan.shortfall_w > 0) and a fresh grid meter says over, those rigs are the only
power left to shed, and many of them would obey: on a starved controller (a loaded host,
a flooded network) it is our reads that time out, not their firmware. So they are told to
sleep anyway, the most power first, enough to cover the excess.

A rig told is on its way down for its sleep time plus landing_s (readings and the meter
lag a cycle or two): meanwhile its power counts against the excess, so the next cycles do
not tell more rigs for the same excess. After that the meter shows what it did, and an
excess still there is covered by rigs not told yet. A rig told (probably asleep; the
executor retries a command that failed) is told again only resend_s after, so a limit
below what the site can reach (its auxiliary load) does not send a sleep every cycle.
Pure: the cycle passes the rigs, the shortfall, and when each rig was last told.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from minerd.control.counting import counted_power_w
from minerd.control.planner import PlanRig
from minerd.model import ControlMode, RigState

REASON = "site over its limit with only unresponsive rigs left to shed: told to sleep"


def meter_excess_w(import_kw: float, target_kw: float, aux_fraction: float) -> float:
    """The rig power a meter reading over the target asks to shed: the excess import less
    the auxiliary load that falls with rig power (0 when not over)."""
    return max(0.0, import_kw - target_kw) * 1000.0 / (1.0 + aux_fraction)


def sheddable_w(r: PlanRig) -> float:
    """What sleeping an unresponsive rig would free, as it is counted (0: not such a rig:
    moved by the planner, pinned by an operator, counted off, or unable to sleep)."""
    if not r.unresponsive or r.maintenance:
        return 0.0
    if r.state in (RigState.OFFLINE, RigState.SLEEPING):
        return 0.0
    if ControlMode.SLEEP_WAKE not in r.model.modes:
        return 0.0
    return max(0.0, counted_power_w(r) - r.model.sleep_power_w)


def overload_sheds(
    rigs: Sequence[PlanRig],
    need_w: float,
    told_at_s: Mapping[str, float],
    now_s: float,
    resend_s: float,
    landing_s: float,
) -> list[str]:
    """The rigs to tell to sleep now for need_w, most power first: after what the rigs
    still landing free, from rigs not told within resend_s."""
    if need_w <= 0.0:
        return []
    on_the_way_w = 0.0
    free: list[tuple[float, str]] = []
    for r in rigs:
        w = sheddable_w(r)
        if w <= 0.0:
            continue
        told = told_at_s.get(r.rig_id)
        if told is None or now_s - told >= resend_s:
            free.append((-w, r.rig_id))
        elif now_s - told < r.model.sleep_time_s + landing_s:
            on_the_way_w += w
    left_w = need_w - on_the_way_w
    out: list[str] = []
    for neg_w, rig_id in sorted(free):
        if left_w <= 0.0:
            break
        out.append(rig_id)
        left_w += neg_w
    return out
