"""Split a site's rig budget over shards for the most site hashrate.

The shards' upgrade chains are merged and bought best TH/s-per-W first, exactly the
fractional knapsack plan() runs over one fleet; each shard's budget is its floor plus what
was bought for it. Below the sum of floors, min-on is overridden pro rata and, below the
minimum, each shard gets a share of the budget by its minimum (it then plans its minimum
and reports the shortfall). Pure and deterministic: ties go by shard id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from minerd.cluster.curve import ShardCurve

_EPS_W = 1e-6


@dataclass(frozen=True)
class ShardShare:
    budget_w: float
    hashrate_ths: float  # what the split bought for the shard (its plan may differ by rounding)
    wakes: int | None  # rigs it may wake this cycle (None: no limit)


@dataclass(frozen=True)
class Split:
    budget_w: float
    shares: dict[str, ShardShare]
    hashrate_ths: float
    shortfall_w: float  # > 0 when the budget is below every shard's minimum


def split_budget(
    budget_w: float, curves: Mapping[str, ShardCurve], max_wakes: int | None = None
) -> Split:
    """Each shard's budget; the budgets sum to budget_w (or to the minimum, if that is more)."""
    if not budget_w >= 0.0:  # NaN or negative: the minimum
        budget_w = 0.0
    ids = sorted(curves)
    floors = {s: curves[s].floor_w for s in ids}
    total_floor = sum(floors.values())
    if budget_w < total_floor - _EPS_W:
        return _below_floor(budget_w, curves, ids, floors, total_floor)

    spend = dict(floors)
    gained = {s: sum(c.count * c.base_ths for c in curves[s].classes) for s in ids}
    wakes = dict.fromkeys(ids, 0)
    # Best slope first; ties: awake rigs before sleepers (as plan()), then stable.
    segs: list[tuple[float, bool, int, int, int]] = []
    for si, s in enumerate(ids):
        for ci, c in enumerate(curves[s].classes):
            segs.extend((-u.slope_ths_per_w, c.asleep, si, ci, k) for k, u in enumerate(c.upgrades))
    segs.sort()
    taken: dict[tuple[int, int], list[float]] = {}
    remaining_w = budget_w - total_floor
    tokens = math.inf if max_wakes is None else float(max(0, max_wakes))
    skipped: str | None = None  # the first shard that could not afford a whole step
    for _, _, si, ci, k in segs:
        if remaining_w <= _EPS_W:
            break
        s = ids[si]
        c = curves[s].classes[ci]
        row = taken.setdefault((si, ci), [0.0] * len(c.upgrades))
        avail = float(c.count) if k == 0 else float(math.floor(row[k - 1] + 1e-9))
        if avail <= 0:
            continue
        u = c.upgrades[k]
        if u.continuous:
            units = min(avail, remaining_w / u.dp_w)
        else:
            units = float(min(avail, math.floor(remaining_w / u.dp_w + 1e-9)))
            if units < avail and skipped is None:
                skipped = s
        waking = c.asleep and k == 0
        if waking and units > tokens:
            units = float(math.floor(tokens))
        if units <= 0:
            continue
        row[k] = units
        spend[s] += units * u.dp_w
        gained[s] += units * u.dh_ths
        remaining_w -= units * u.dp_w
        if waking:
            tokens -= units
            wakes[s] += math.ceil(units - 1e-9)
    if remaining_w > _EPS_W and ids:
        # Less than a whole step is left: the shard that ran short may spend it on a
        # single-rig fix-up, as plan() does with what its greedy leaves.
        spend[skipped if skipped is not None else ids[0]] += remaining_w
    shares = {
        s: ShardShare(spend[s], gained[s], None if max_wakes is None else wakes[s]) for s in ids
    }
    if max_wakes is not None and tokens >= 1 and ids:
        # Wake tokens not used by the split (fix-ups may use them) go to the first shard.
        first = shares[ids[0]]
        shares[ids[0]] = ShardShare(
            first.budget_w, first.hashrate_ths, (first.wakes or 0) + int(tokens)
        )
    return Split(budget_w, shares, sum(gained.values()), 0.0)


def _below_floor(
    budget_w: float,
    curves: Mapping[str, ShardCurve],
    ids: list[str],
    floors: dict[str, float],
    total_floor: float,
) -> Split:
    """Shedding: min-on released pro rata; below every minimum, shares by minimum."""
    mins = {s: curves[s].min_w for s in ids}
    total_min = sum(mins.values())
    base = {s: sum(c.count * c.base_ths for c in curves[s].classes) for s in ids}
    if budget_w >= total_min and total_floor > total_min:
        frac = (budget_w - total_min) / (total_floor - total_min)
        budgets = {s: mins[s] + frac * (floors[s] - mins[s]) for s in ids}
        shortfall = 0.0
    else:
        budgets = {s: (budget_w * mins[s] / total_min if total_min > 0 else 0.0) for s in ids}
        shortfall = max(0.0, total_min - budget_w)
    # Released rigs sleep: the hashrate is a bound, the shards' plans say what they keep.
    shares = {s: ShardShare(budgets[s], base[s], 0) for s in ids}
    return Split(budget_w, shares, sum(base.values()), shortfall)
