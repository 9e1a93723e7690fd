"""Re-giving, within an interval, the part of a silent site's award it provably cannot use. Pure.

A site's award part (region_award) is an energy budget it keeps and paces when it loses the
coordinator, so handing its energy to another site is safe only for what it cannot use
whatever it does. The bound, and why it holds:

- While a lease is valid the site imports at most its allocation (control/region_lease.py:
  the allocation caps the site's limit like a quota, the lower wins); once no lease is valid
  it is in fail-safe and imports at most its own fail-safe limit. Award pacing only lowers
  the limit (runtime/energy_tracker.py: the pace limit wins only when it is the lower one),
  so it never lets the site draw past either.
- A site takes a grant on receipt, which is after the coordinator issued it, and its lease
  ends at min(issued_at_s + lease_s, receipt + lease_s) on its own clock: in the
  coordinator's time, by issued_at_s + lease_s + slack_s at the latest, slack_s bounding the
  clock skew between the two. So at time t the site imports at most
      cap(t) = max(failsafe_w, every allocation a with a.issued_at_s <= t < a.end + slack_s),
  whichever of them it actually received and in whatever order (a lost or late grant only
  lowers what it obeys). After the last lease's end plus slack_s that is its fail-safe limit.
- So in [start_s, end_s) it uses at most U = the integral of cap(t) from start_s to the
  expiry (the allocations' energy: "allocations_kwh") + failsafe_w * (end_s - expiry)
  ("failsafe_kwh"), and never more than its part P (it paces the part). P - U, when positive,
  is energy it cannot use.

The history must hold every allocation any coordinator sent the site whose lease reaches
into the interval: the caller passes `history_from_s`, since when it has recorded every
allocation sent to the region's sites (the start of its own unbroken term of leadership),
and nothing is re-given unless that is at least `longest_lease_s + slack_s` before the
interval's start (an allocation sent by someone else before then cannot reach into it).
Nothing is re-given before the silent site's expiry either: until then the coordinator could
still reach it. The energy goes to the fresh sites as the split does (water-filling by power
target, each at most its own limit over the rest of the interval and over the interval), and
the silent site's part is lowered by exactly what was given from it, never below U: if it
comes back within the interval its part is the lowered one. Parts only move between sites, so
their sum never grows; it stays at most the regional award.

A site that gave and comes back may store its lowered part late (an allocation is taken at
once, the part written off the loop, or not at all on a disk fault): so the coordinator
allocates it at most its fail-safe limit until the interval ends. Its lowered part is at
least U, which counts its fail-safe limit from its expiry to the end, so what it used while
silent plus its fail-safe limit to the end stays within it whatever part it paces. The
history's lease bound assumes the region's coordinators share lease_s.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from minerd.cluster.region_award import S_PER_H, Share, water_fill

_EPS_KWH = 1e-9


@dataclass(frozen=True)
class SentAllocation:
    """One allocation sent to a site: its import limit and the time it was granted for."""

    issued_at_s: float
    lease_s: float
    allocation_w: float

    @property
    def ends_at_s(self) -> float:
        return self.issued_at_s + self.lease_s


@dataclass(frozen=True)
class SilentSite:
    failsafe_w: float  # from its last offer
    sent: tuple[SentAllocation, ...]  # every allocation sent to it since history_from_s


@dataclass(frozen=True)
class UseBound:
    """The most energy a silent site can use in the interval, and its terms."""

    part_kwh: float
    failsafe_w: float  # the fail-safe limit counted after the expiry
    expiry_s: float  # its last lease's end + slack_s: on its fail-safe limit from then
    allocations_kwh: float  # [start_s, expiry_s) at cap(t)
    failsafe_kwh: float  # failsafe_w * (end_s - expiry_s)

    @property
    def bound_kwh(self) -> float:
        return self.allocations_kwh + self.failsafe_kwh

    @property
    def unusable_kwh(self) -> float:
        return max(0.0, self.part_kwh - self.bound_kwh)


@dataclass(frozen=True)
class Gift:
    from_site: str
    to_site: str
    kwh: float


@dataclass(frozen=True)
class Regive:
    parts_kwh: dict[str, float]  # the revised parts (the unchanged ones too)
    gifts: tuple[Gift, ...]  # sorted by (from_site, to_site)
    bounds: dict[str, UseBound]  # of the silent sites that gave

    def audit_detail(self) -> dict[str, object]:
        return {
            "sites_kwh": dict(self.parts_kwh),
            "gifts": [{"from": g.from_site, "to": g.to_site, "kwh": g.kwh} for g in self.gifts],
            "bounds": {
                s: {
                    "part_kwh": b.part_kwh,
                    "failsafe_w": b.failsafe_w,
                    "expiry_s": b.expiry_s,
                    "allocations_kwh": b.allocations_kwh,
                    "failsafe_kwh": b.failsafe_kwh,
                    "bound_kwh": b.bound_kwh,
                }
                for s, b in self.bounds.items()
            },
        }


def use_bound(
    start_s: float, end_s: float, part_kwh: float, site: SilentSite, slack_s: float
) -> UseBound:
    """U for a site silent in [start_s, end_s), from the allocations sent to it."""
    slack_s = max(0.0, slack_s)
    failsafe_w = max(0.0, site.failsafe_w)
    spans = [
        (a.issued_at_s, a.ends_at_s + slack_s, max(0.0, a.allocation_w))
        for a in site.sent
        if a.ends_at_s + slack_s > start_s and a.issued_at_s < end_s
    ]
    expiry_s = max([start_s, *(e for _, e, _ in spans)])
    expiry_s = min(expiry_s, end_s)
    edges = sorted({start_s, expiry_s, *(t for b, e, _ in spans for t in (b, e))})
    edges = [t for t in edges if start_s <= t <= expiry_s]
    wh = 0.0
    for t0, t1 in itertools.pairwise(edges):
        w = max([failsafe_w, *(a for b, e, a in spans if b <= t0 and t0 < e)])
        wh += w * (t1 - t0) / S_PER_H
    failsafe_kwh = failsafe_w * (end_s - expiry_s) / S_PER_H / 1000.0
    return UseBound(max(0.0, part_kwh), failsafe_w, expiry_s, wh / 1000.0, failsafe_kwh)


def merge_donors(*donors: Mapping[str, float]) -> dict[str, float]:
    """Sites that gave, each with the lowest fail-safe limit a bound counted for it: the most
    it may be allocated if it comes back while the interval runs."""
    out: dict[str, float] = {}
    for d in donors:
        for s, w in d.items():
            out[s] = min(w, out.get(s, w))
    return out


def regive(
    start_s: float,
    end_s: float,
    now_s: float,
    parts_kwh: Mapping[str, float],
    silent: Mapping[str, SilentSite],
    fresh_targets_w: Mapping[str, float],
    fresh_max_import_w: Mapping[str, float],
    *,
    slack_s: float,
    history_from_s: float,
    longest_lease_s: float,
) -> Regive:
    """The parts after re-giving what the silent sites provably cannot use to the fresh
    ones; the same parts and no gift when nothing can be (see the module's docstring)."""
    parts = {s: max(0.0, kwh) for s, kwh in parts_kwh.items()}
    none = Regive(parts, (), {})
    if not start_s <= now_s < end_s or not all(map(math.isfinite, parts.values())):
        return none
    if history_from_s > start_s - max(0.0, longest_lease_s) - max(0.0, slack_s):
        return none  # an allocation it did not see may reach into the interval
    bounds: dict[str, UseBound] = {}
    for s in sorted(silent):
        if s not in parts or s in fresh_targets_w:
            continue
        b = use_bound(start_s, end_s, parts[s], silent[s], slack_s)
        if now_s >= b.expiry_s and b.unusable_kwh > _EPS_KWH:
            bounds[s] = b
    freed_kwh = sum(b.unusable_kwh for b in bounds.values())
    if freed_kwh <= _EPS_KWH:
        return none
    left_h = (end_s - now_s) / S_PER_H
    interval_h = (end_s - start_s) / S_PER_H
    shares = {}
    for s, target_w in sorted(fresh_targets_w.items()):
        if s not in parts or s in bounds:
            continue
        max_w = max(0.0, fresh_max_import_w.get(s, 0.0))
        room_kwh = min(max_w * left_h / 1000.0, max_w * interval_h / 1000.0 - parts[s])
        shares[s] = Share(max(0.0, target_w), max(0.0, room_kwh))
    gains = {s: kwh for s, kwh in water_fill(freed_kwh, shares).items() if kwh > _EPS_KWH}
    given_kwh = sum(gains.values())
    if given_kwh <= _EPS_KWH:
        return none
    k = min(1.0, given_kwh / freed_kwh)
    out = dict(parts)
    gifts: list[Gift] = []
    for d, b in bounds.items():
        out[d] = parts[d] - b.unusable_kwh * k
        for f in sorted(gains):
            gifts.append(Gift(d, f, gains[f] * b.unusable_kwh / freed_kwh))
    for f, kwh in gains.items():
        out[f] = parts[f] + kwh
    excess = sum(out.values()) - sum(parts.values())
    if excess > 0:  # rounding: the sum must never grow
        top = max(gains, key=lambda f: (gains[f], f))
        out[top] -= excess
    return Regive(out, tuple(gifts), bounds)
