"""Where the power under the limit goes, per cycle: the gap between the limit and the
measured import, split into terms the controller can name.

    limit - measured = ahead    a lower limit coming within the look-ahead, met early
                     + margin   limit - target, by configuration
                     + fleet    the budget clipped at what the fleet can draw
                     + ramp     raising held by the ramp, deadband or wake stagger
                     + plan     budget the plan did not spend (profile granularity, min-off
                                hold, max wakes)
                     + loop     model + correction above the meter: what the closed loop has
                                not (yet) given back
Pure: every figure comes from the loop's decision and the plan of the same cycle.
The reason for an interval under its target is the largest of these, named for an operator.
"""

from __future__ import annotations

from dataclasses import dataclass

REASON_FLEET = "fleet could not"
REASON_UNRESPONSIVE = "rigs unresponsive"
REASON_MIN_OFF = "min-off hold"
REASON_MARGIN = "margin"
REASON_RAMP = "following a raised limit"
REASON_LOOP = "closed loop settling"
REASON_AHEAD = "meeting the next cut"
REASON_AWARD = "pacing the energy award"

# Utilization an interval should reach when the fleet can draw it (issue 19).
TARGET_UTILIZATION = 0.97


@dataclass(frozen=True)
class Gap:
    """One cycle's split of limit - measured import, kW (positive: unused)."""

    limit_kw: float
    import_kw: float
    margin_kw: float
    fleet_kw: float
    ramp_kw: float
    plan_kw: float
    loop_kw: float
    ahead_kw: float = 0.0
    award_kw: float = 0.0  # under the power limit because the energy award's pace is lower
    min_off_kw: float = 0.0  # of plan_kw: held asleep by min-off while the budget had room
    unresponsive_kw: float = 0.0  # counted at nominal above their last reading (diagnostic)

    def terms_kw(self) -> dict[str, float]:
        return {
            "ahead": self.ahead_kw,
            "award": self.award_kw,
            "margin": self.margin_kw,
            "fleet": self.fleet_kw,
            "ramp": self.ramp_kw,
            "plan": self.plan_kw,
            "min_off": self.min_off_kw,
            "loop": self.loop_kw,
            "nominal_overcount": self.unresponsive_kw,
        }

    def reason(self) -> str:
        """What an operator should read when the import is under target (largest term)."""
        return reason_of(self.terms_kw())


def reason_of(terms_kw: dict[str, float]) -> str:
    """The largest term of a (summed or averaged) breakdown, by its operator's name."""
    plan_rest = terms_kw.get("plan", 0.0) - terms_kw.get("min_off", 0.0)
    named = {
        REASON_AHEAD: terms_kw.get("ahead", 0.0),
        REASON_AWARD: terms_kw.get("award", 0.0),
        REASON_MARGIN: terms_kw.get("margin", 0.0),
        REASON_FLEET: terms_kw.get("fleet", 0.0) + max(0.0, plan_rest),
        REASON_RAMP: terms_kw.get("ramp", 0.0),
        REASON_MIN_OFF: terms_kw.get("min_off", 0.0),
        # Rigs counted at nominal that the loop has not given back yet.
        REASON_UNRESPONSIVE: min(terms_kw.get("loop", 0.0), terms_kw.get("nominal_overcount", 0.0)),
        REASON_LOOP: terms_kw.get("loop", 0.0) - terms_kw.get("nominal_overcount", 0.0),
    }
    return max(named, key=lambda k: named[k])


def gap(
    *,
    limit_kw: float,
    limit_now_kw: float,
    import_kw: float,
    target_kw: float,
    correction_kw: float,
    aux_base_kw: float,
    aux_fraction: float,
    wanted_unclipped_w: float,
    wanted_w: float,
    budget_w: float,
    planned_w: float,
    min_off_w: float,
    unresponsive_w: float,
    award: bool = False,
) -> Gap:
    """limit_kw: the limit the loop used; limit_now_kw: the one in force (higher while a
    coming cut is met early); wanted_unclipped_w: the budget the target asks for; wanted_w:
    the same clipped at the fleet's maximum; budget_w: what the loop granted; planned_w:
    what the plan spent; min_off_w: power rigs held asleep by min-off could have taken;
    award: the loop's limit was the energy award's pace (limit_now_kw - limit_kw is then
    the award's, not a coming cut's)."""
    f = 1.0 + aux_fraction

    def imp(rig_w: float) -> float:
        return rig_w / 1000.0 * f + aux_base_kw

    fleet = max(0.0, imp(wanted_unclipped_w) - imp(wanted_w))
    ramp = max(0.0, imp(wanted_w) - imp(budget_w))
    plan = (budget_w - planned_w) / 1000.0 * f
    margin = limit_kw - target_kw
    loop = (limit_kw - import_kw) - margin - fleet - ramp - plan
    below_kw = max(0.0, limit_now_kw - limit_kw)
    return Gap(
        limit_kw=limit_now_kw,
        ahead_kw=0.0 if award else below_kw,
        award_kw=below_kw if award else 0.0,
        import_kw=import_kw,
        margin_kw=margin,
        fleet_kw=fleet,
        ramp_kw=ramp,
        plan_kw=plan,
        loop_kw=loop,
        min_off_kw=min(max(0.0, plan), min_off_w / 1000.0 * f),
        unresponsive_kw=unresponsive_w / 1000.0 * f,
    )
