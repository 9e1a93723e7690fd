"""What a split site can shed, and what it can command: the live shards' own figures summed.

Each shard computes its shed capacity as the single process does (control.shed_capacity,
rig W per family and model class for each horizon) and sends it in its aggregate; the
controller, which has no rig, adds them up class by class. The controller's caller passes
only live shards: a silent one's rigs cannot be commanded, so they cannot be shed either.
An aggregate without the figures (an older shard) counts 0.
"""

from __future__ import annotations

from collections.abc import Iterable

from minerd.cluster.messages import ShardAggregate
from minerd.model import RigProtocol, ShedCapacity, ShedClass
from minerd.runtime.commandable import Commandable


def sum_shed(
    aggregates: Iterable[ShardAggregate], horizons_s: tuple[float, ...], site_factor: float
) -> ShedCapacity:
    """The shards' classes merged by (family, model), at the controller's horizons and site
    factor (rig W carry no factor; a horizon a shard did not compute counts 0 for it)."""
    rows: dict[tuple[RigProtocol, str], tuple[int, float, list[float]]] = {}
    for a in aggregates:
        cap = a.shed
        if cap is None:
            continue
        at = {h: i for i, h in enumerate(cap.horizons_s)}
        for c in cap.classes:
            rigs, power_w, shed_w = rows.get((c.family, c.model), (0, 0.0, [0.0] * len(horizons_s)))
            for j, h in enumerate(horizons_s):
                i = at.get(h)
                if i is not None:
                    shed_w[j] += c.shed_w[i]
            rows[(c.family, c.model)] = (rigs + c.rigs, power_w + c.power_w, shed_w)
    classes = tuple(
        ShedClass(family, model, rigs, power_w, tuple(shed_w))
        for (family, model), (rigs, power_w, shed_w) in sorted(
            rows.items(), key=lambda kv: (kv[0][0].value, kv[0][1])
        )
    )
    return ShedCapacity(horizons_s, site_factor, classes)


def sum_commandable(aggregates: Iterable[ShardAggregate]) -> Commandable:
    """The shards' commandable draw and nominal power summed (an unknown one counts 0)."""
    power_w = nominal_w = fleet_w = 0.0
    for a in aggregates:
        k = a.commandable
        if k is None:
            continue
        power_w += k.power_w
        nominal_w += k.nominal_w
        fleet_w += k.fleet_nominal_w
    return Commandable(power_w, nominal_w, fleet_w)
