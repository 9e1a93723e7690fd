"""The regional limit over sites: split.py's fractional knapsack one level up. Pure.

Each site bids its rigs' upgrade curve shifted by what it imports beyond its rigs (margin,
auxiliary load), so the split is in grid-import watts; upgrades are bought best TH/s-per-W
first across all sites (split_budget). A site is never given more than its own limit (its
contract, quota or operator cap, which it reports): a site whose share came out above it is
pinned there and the rest re-split over the others (water-filling with upper bounds: with
concave curves the pinned site would want more at any lower marginal rate). What no curve
can use is shared by headroom, still within each site's limit; allocations sum to no more
than the limit.

stage_raises keeps the region under its limit while an allocation changes hands: a cut is
sent at once, a raise only from what the sites being cut have already confirmed (they
report the allocation they obey), so for one round the sum of what every site may draw
stays within the limit (make before break).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from minerd.cluster.curve import ShardCurve
from minerd.cluster.split import split_budget

_EPS_W = 1e-6


@dataclass(frozen=True)
class SiteBid:
    curve: ShardCurve  # rigs, in rig watts
    overhead_w: float  # import beyond the rigs (margin, auxiliary load)
    max_import_w: float  # the site's own limit


def import_curve(b: SiteBid) -> ShardCurve:
    return ShardCurve(b.curve.fixed_w + b.overhead_w, b.curve.release_w, b.curve.classes)


def split_region(limit_w: float, bids: Mapping[str, SiteBid]) -> dict[str, float]:
    """Each site's import allocation (W): best marginal TH/s per W first, each within its own
    limit, summing to at most limit_w."""
    limit_w = max(0.0, limit_w) if limit_w == limit_w else 0.0  # NaN: nothing
    curves = {s: import_curve(b) for s, b in bids.items()}
    pinned: dict[str, float] = {}
    shares: dict[str, float] = {}
    while True:
        free = {s: c for s, c in curves.items() if s not in pinned}
        if not free:
            break
        budget_w = max(0.0, limit_w - sum(pinned.values()))
        split = split_budget(budget_w, free)
        over = {s for s in free if split.shares[s].budget_w > bids[s].max_import_w + _EPS_W}
        if not over:
            shares = {s: split.shares[s].budget_w for s in free}
            break
        for s in over:
            pinned[s] = bids[s].max_import_w
    alloc = {**pinned, **shares}
    # split_budget hands what no curve can use to one site: cap each at what its curve can
    # draw (and its limit), then share the rest by headroom up to each site's limit.
    for s in alloc:
        alloc[s] = min(alloc[s], max(curves[s].max_w, 0.0), bids[s].max_import_w)
    left_w = limit_w - sum(alloc.values())
    room = {s: bids[s].max_import_w - alloc[s] for s in alloc}
    total_room = sum(r for r in room.values() if r > 0)
    if left_w > _EPS_W and total_room > _EPS_W:
        k = min(1.0, left_w / total_room)
        for s, r in room.items():
            if r > 0:
                alloc[s] += k * r
    total = sum(alloc.values())
    if total > limit_w > 0:  # rounding only
        alloc = {s: a * limit_w / total for s, a in alloc.items()}
    elif total > limit_w:
        alloc = dict.fromkeys(alloc, 0.0)
    return alloc


def stage_raises(
    target_w: Mapping[str, float], held_w: Mapping[str, float], limit_w: float
) -> dict[str, float]:
    """This round's allocations: cuts in full, raises scaled so that what every site may
    draw this round (a cut site may still hold its old allocation until it confirms)
    stays within limit_w. held_w: what each site obeys now (its report)."""
    out: dict[str, float] = {}
    committed_w = 0.0
    raises: dict[str, float] = {}
    for s, t in target_w.items():
        h = held_w.get(s, 0.0)
        if t <= h:
            out[s] = t
            committed_w += h  # until it confirms the cut, it may draw its old allocation
        else:
            raises[s] = t - h
            committed_w += h
    want_w = sum(raises.values())
    k = 1.0 if want_w <= _EPS_W else max(0.0, min(1.0, (limit_w - committed_w) / want_w))
    for s, up in raises.items():
        out[s] = held_w.get(s, 0.0) + k * up
    return out
