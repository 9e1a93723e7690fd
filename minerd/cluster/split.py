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
    # Best slope first; ties by shard id, then (within a shard, as plan()) awake rigs before
    # sleepers. Never awake-first across shards: the curves are a cycle or two old, so a tie
    # decided by which rigs are awake makes the split follow the shards' last moves and swap
    # a rig between two shards every cycle at a constant budget (issue 16).
    segs: list[tuple[float, int, bool, int, int]] = []
    for si, s in enumerate(ids):
        for ci, c in enumerate(curves[s].classes):
            segs.extend((-u.slope_ths_per_w, si, c.asleep, ci, k) for k, u in enumerate(c.upgrades))
    segs.sort()
    taken: dict[tuple[int, int], list[float]] = {}
    remaining_w = budget_w - total_floor
    tokens = math.inf if max_wakes is None else float(max(0, max_wakes))
    skipped: str | None = None  # the first shard that could not afford a whole step
    for _, si, _, ci, k in segs:
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


# A site budget that moved by less than this is the same budget (float noise).
_STEADY_W = 1e-3
# The held split may buy this much less hashrate (relative) than the new one: float noise.
_STEADY_THS_REL = 1e-9


def steady_split(prev: Split | None, new: Split, curves: Mapping[str, ShardCurve]) -> Split:
    """`new`, or `prev` again when the site budget is the same and `prev` still buys as much
    hashrate with the shards' curves as they are now.

    The curves are a cycle or two old and change as the shards carry out their plans (a rig
    woken enters min-on, one put to sleep min-off; windows expire): at a tie the split can
    move budget between shards that would only swap rigs of equal worth. Holding the last
    split then keeps a steady budget's split steady. Never held: a budget that moved (a cut
    is split anew at once), a different set of shards, a split below the floors, a share
    below its shard's floor now (it could not plan to it), or a change in the wake limit."""
    if prev is None or abs(new.budget_w - prev.budget_w) > _STEADY_W:
        return new
    if set(prev.shares) != set(new.shares) or new.shortfall_w > 0.0 or prev.shortfall_w > 0.0:
        return new
    if _wake_total(prev) != _wake_total(new):
        return new
    if any(prev.shares[s].budget_w < curves[s].floor_w - _EPS_W for s in prev.shares):
        return new
    shares = {
        s: ShardShare(
            sh.budget_w,
            split_budget(sh.budget_w, {s: curves[s]}, sh.wakes).hashrate_ths,
            sh.wakes,
        )
        for s, sh in prev.shares.items()
    }
    ths = sum(sh.hashrate_ths for sh in shares.values())
    if ths < new.hashrate_ths * (1.0 - _STEADY_THS_REL) - _EPS_W:
        return new
    return Split(new.budget_w, shares, ths, 0.0)


def _wake_total(split: Split) -> int | None:
    wakes = [sh.wakes for sh in split.shares.values()]
    return None if any(w is None for w in wakes) else sum(w for w in wakes if w is not None)
