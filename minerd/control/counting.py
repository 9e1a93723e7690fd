"""How the planner treats a rig it is handed: may it move it, and at what power is it counted.

One rule, used by the planner (control.planner) and by the control cycle (runtime.cycle), so
the closed loop's model of the rig power is the plan's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from minerd.model import RigModel, RigState


class PlanRig(Protocol):
    """What the rule reads of a control.planner.PlanRig (the planner imports this module)."""

    @property
    def rig_id(self) -> str: ...
    @property
    def model(self) -> RigModel: ...
    @property
    def power_w(self) -> float: ...
    @property
    def state(self) -> RigState: ...
    @property
    def maintenance(self) -> bool: ...
    @property
    def unresponsive(self) -> bool: ...
    @property
    def dispatchable(self) -> bool: ...


def dispatched(r: PlanRig) -> bool:
    """The planner may move the rig: not pinned, not unresponsive, dispatchable, not offline."""
    return not (
        r.maintenance or r.unresponsive or not r.dispatchable or r.state is RigState.OFFLINE
    )


def counted_power_w(r: PlanRig) -> float:
    """The power the planner counts a rig at when it does not move it (for a rig it moves:
    its measured draw). Unresponsive rigs are counted at nominal, never below their reading."""
    if r.maintenance:
        return r.power_w
    if r.unresponsive:
        return max(r.power_w, r.model.nominal_power_w)
    if r.state is RigState.OFFLINE:
        return 0.0
    return r.power_w


@dataclass(frozen=True)
class Counted:
    """One cycle's rigs as the closed loop counts them."""

    counted_w: float  # sum of counted_power_w
    uncounted_w: float  # counted at nominal last cycle, counted lower now (LoopInputs)


@dataclass
class NominalWatch:
    """Which rigs were counted at nominal last cycle, so that the power a rig stops being
    counted at when it answers again is known at once (LoopInputs.uncounted_w): the meter
    drew the rig's real power all along, and the loop gave the difference away."""

    at_nominal_w: dict[str, float] = field(default_factory=dict)

    def count(self, rigs: Iterable[PlanRig]) -> Counted:
        counted_w = uncounted_w = 0.0
        was = self.at_nominal_w
        now: dict[str, float] = {}
        for r in rigs:
            w = counted_power_w(r)
            counted_w += w
            if r.unresponsive:
                now[r.rig_id] = w
            elif r.rig_id in was:
                uncounted_w += max(0.0, was[r.rig_id] - w)
        self.at_nominal_w = now
        return Counted(counted_w, uncounted_w)
