"""The site over its limit by the grid meter: each shard's part of the excess.

The controller knows the meter, the shards know their rigs. When the site is over and a
shard cannot plan down to its budget (its least plan, min_w, is above it: rigs counted at
nominal that it may not move), the excess must come from such rigs (control.overload),
and only the shards that have them can shed it. So the excess is shared among them in
proportion to how far each is above its budget; a shard that can meet its budget gets 0.

A late shard (its aggregate not heard this cycle: it may be dead) is not counted on: it is
still asked for its part, but when any shard heard this cycle is above its budget, those
share the whole excess among them. Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from minerd.cluster.curve import ShardCurve


def overload_shares_w(
    over_w: float,
    curves: Mapping[str, ShardCurve],
    budgets_w: Mapping[str, float],
    late: Collection[str] = (),
) -> dict[str, float]:
    """shard -> rig W it should shed past its plan (absent: 0)."""
    parts = _by_excess(over_w, curves, budgets_w)
    if not parts or not late:
        return parts
    heard = {s: w for s, w in budgets_w.items() if s not in late}
    return {**parts, **_by_excess(over_w, curves, heard)}


def _by_excess(
    over_w: float, curves: Mapping[str, ShardCurve], budgets_w: Mapping[str, float]
) -> dict[str, float]:
    if over_w <= 0.0:
        return {}
    above = {s: curves[s].min_w - budgets_w[s] for s in budgets_w if s in curves}
    above = {s: w for s, w in above.items() if w > 0.0}
    total_w = sum(above.values())
    if total_w <= 0.0:
        return {}
    return {s: over_w * w / total_w for s, w in sorted(above.items())}
