"""How much of the fleet minerd can throttle: rigs with a command path (a driver that can
sleep them or set their power) against read-only rigs (plain cgminer), which stay at whatever
they draw whatever the quota says."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from minerd.model import RigModel, RigStatus


@dataclass(frozen=True)
class Commandable:
    power_w: float  # what the commandable rigs draw now
    nominal_w: float  # their nominal power
    fleet_nominal_w: float  # every rig's nominal power, read-only ones included

    @property
    def share(self) -> float:
        """Commandable share of the fleet's nominal power (1.0 for an empty fleet)."""
        return self.nominal_w / self.fleet_nominal_w if self.fleet_nominal_w > 0 else 1.0


def commandable(statuses: Iterable[RigStatus], models: Mapping[str, RigModel]) -> Commandable:
    """`models` by rig id, as the family drives the model (RigModel.for_family): a model
    without control modes is read only. Rigs in maintenance still count: an operator's pin
    is not a missing command path."""
    power_w = nominal_w = fleet_w = 0.0
    for s in statuses:
        m = models.get(s.rig_id)
        if m is None:
            continue
        fleet_w += m.nominal_power_w
        if m.modes:
            nominal_w += m.nominal_power_w
            power_w += s.reading.power_w
    return Commandable(power_w, nominal_w, fleet_w)
