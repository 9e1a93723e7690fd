"""Energy awards given to a region, split over its sites. Pure.

A regional award is energy (kWh) the region should import in one interval. The coordinator
splits it once per interval, at its first round in that interval, in the proportion of that
round's power split (the targets of region_split: marginal TH/s per W, each site within its
own limit), and sends each site its own award with its allocation. The split is then fixed
for the interval: a site's award is an energy budget it owns (it keeps pacing it when it
loses the coordinator), so the coordinator moves energy away from a site only where it can
prove the site cannot use it: a silent site's part beyond what its allocations and then its
fail-safe limit let it import (region_regive.py, once its lease has expired). A revision of
the award for the same interval rescales the same shares (the region's total follows the
revision, no share is moved between sites).

Silent sites (no fresh offer) are given first what they may draw over the whole interval
(their largest of allocation, held cap and fail-safe limit): they cannot be told to pace,
so their energy is set aside; they get that share if they come back within the interval.
The rest goes to the fresh sites by their power targets, each at most its own limit times
the interval (water-filling: what a capped site cannot import goes to the others). Energy
no site can take is not handed out, so the site awards sum to at most the regional award.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from minerd.errors import QuotaError

S_PER_H = 3600.0
MAX_AWARDS = 5000
MAX_INTERVAL_S = 86_400.0  # a day: catches milliseconds sent as seconds
MAX_MEAN_KW = 10_000_000.0  # 10 GW: catches Wh sent as kWh
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_MAX_TEXT = 200
_EPS_KWH = 1e-9


@dataclass(frozen=True)
class RegionalAward:
    award_id: str
    start_s: float
    end_s: float
    energy_kwh: float
    issued_by: str
    received_at_s: float = 0.0  # coordinator time

    @property
    def interval_h(self) -> float:
        return (self.end_s - self.start_s) / S_PER_H

    def covers(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s

    def same_content(self, other: RegionalAward) -> bool:
        return (self.start_s, self.end_s, self.energy_kwh) == (
            other.start_s,
            other.end_s,
            other.energy_kwh,
        )


@dataclass(frozen=True)
class SiteAward:
    """One site's part of a regional award, as the allocation message carries it."""

    award_id: str  # the site's award id (site_award_id)
    regional_award_id: str
    start_s: float
    end_s: float
    energy_kwh: float
    regional_energy_kwh: float
    issued_by: str  # who issued the regional award


@dataclass(frozen=True)
class Share:
    """What the split weighs a site by: its power target (W) and its cap (kWh)."""

    weight: float
    cap_kwh: float


def site_award_id(
    regional_award_id: str, site: str, start_s: float, end_s: float, kwh: float
) -> str:
    """Same content, same id (a re-send is a replay at the site); other energy, another id
    (a revision, which the site's store lets supersede instead of refusing as a conflict)."""
    digest = hashlib.sha256(f"{start_s!r}|{end_s!r}|{kwh!r}".encode()).hexdigest()[:8]
    return f"{regional_award_id}.{site}.{digest}"


def water_fill(energy_kwh: float, shares: Mapping[str, Share]) -> dict[str, float]:
    """energy_kwh over the sites in proportion to their weights, each at most its cap; what
    a capped site cannot take goes to the others; what none can take is left out."""
    out = dict.fromkeys(shares, 0.0)
    free = {s for s, sh in shares.items() if sh.weight > 0 and sh.cap_kwh > 0}
    left = max(0.0, energy_kwh) if math.isfinite(energy_kwh) else 0.0
    while free and left > _EPS_KWH:
        total = sum(shares[s].weight for s in free)
        pinned = {s for s in free if left * shares[s].weight / total >= shares[s].cap_kwh}
        if not pinned:
            for s in free:
                out[s] = left * shares[s].weight / total
            break
        for s in pinned:
            out[s] = shares[s].cap_kwh
            left -= shares[s].cap_kwh
        free -= pinned
    return out


def split_award(
    energy_kwh: float,
    interval_h: float,
    targets_w: Mapping[str, float],
    max_import_w: Mapping[str, float],
    silent_max_w: Mapping[str, float],
) -> dict[str, float]:
    """Each site's kWh of a regional award: silent sites first, at what they may draw over
    the interval (scaled down together if that is more than the award), then the fresh
    sites by their power targets, each within max_import_w over the interval."""
    energy_kwh = max(0.0, energy_kwh) if math.isfinite(energy_kwh) else 0.0
    reserve = {s: max(0.0, w) * interval_h / 1000.0 for s, w in silent_max_w.items()}
    total_reserve = sum(reserve.values())
    k = 1.0 if total_reserve <= energy_kwh else energy_kwh / total_reserve
    out = {s: kwh * k for s, kwh in reserve.items()}
    left = energy_kwh - sum(out.values())
    fresh = {
        s: Share(max(0.0, t), max(0.0, max_import_w.get(s, 0.0)) * interval_h / 1000.0)
        for s, t in targets_w.items()
        if s not in reserve
    }
    out.update(water_fill(left, fresh))
    return out


def rescale(old: Mapping[str, float], old_kwh: float, new_kwh: float) -> dict[str, float]:
    """A revision of the same interval: the same proportions, summing to the new energy."""
    if old_kwh <= 0 or sum(old.values()) <= 0:
        return dict.fromkeys(old, 0.0)
    return {s: kwh * new_kwh / old_kwh for s, kwh in old.items()}


# ---------------------------------------------------------------- the request's awards


def read_awards(
    body: Mapping[str, object], default_issuer: str, now_s: float
) -> list[RegionalAward]:
    """The "awards" list of a request, every item checked; QuotaError naming the field
    ("awards.2.end_s") and what is wrong. A whole batch is refused for one bad item."""
    items = body.get("awards")
    if not isinstance(items, list) or not items:
        raise QuotaError("awards", "must be a non-empty list")
    if len(items) > MAX_AWARDS:
        raise QuotaError("awards", f"at most {MAX_AWARDS} in one request")
    out: list[RegionalAward] = []
    for i, item in enumerate(items):
        out.append(_read_one(item, f"awards.{i}", default_issuer, now_s))
    seen: dict[str, int] = {}
    spans = sorted(range(len(out)), key=lambda j: out[j].start_s)
    for i, a in enumerate(out):
        if a.award_id in seen:
            raise QuotaError(f"awards.{i}.id", f"repeats awards.{seen[a.award_id]}.id")
        seen[a.award_id] = i
    for j, k in itertools.pairwise(spans):
        if out[k].start_s < out[j].end_s:
            raise QuotaError(f"awards.{k}", f"overlaps awards.{j} in the same request")
    return out


def _read_one(item: object, where: str, default_issuer: str, now_s: float) -> RegionalAward:
    if not isinstance(item, dict):
        raise QuotaError(where, "must be an object")
    award_id = item.get("id")
    if not isinstance(award_id, str) or not _ID.match(award_id):
        raise QuotaError(f"{where}.id", "must be 1-100 of A-Z a-z 0-9 _ . : -")
    start_s = _number(item.get("start_s"), f"{where}.start_s")
    end_s = _number(item.get("end_s"), f"{where}.end_s")
    energy_kwh = _number(item.get("energy_kwh"), f"{where}.energy_kwh")
    if energy_kwh < 0:
        raise QuotaError(f"{where}.energy_kwh", "must be >= 0")
    if end_s <= start_s:
        raise QuotaError(f"{where}.end_s", "must be after start_s")
    if end_s - start_s > MAX_INTERVAL_S:
        raise QuotaError(f"{where}.end_s", f"interval longer than {MAX_INTERVAL_S:g} s")
    if end_s <= now_s:
        raise QuotaError(f"{where}.end_s", "the interval is over")
    mean_kw = energy_kwh / ((end_s - start_s) / S_PER_H)
    if mean_kw > MAX_MEAN_KW:
        raise QuotaError(f"{where}.energy_kwh", f"a mean of {mean_kw:.0f} kW: is this Wh?")
    issued_by = item.get("issued_by", default_issuer)
    if not isinstance(issued_by, str) or not issued_by or len(issued_by) > _MAX_TEXT:
        raise QuotaError(f"{where}.issued_by", f"must be a non-empty string of <= {_MAX_TEXT}")
    return RegionalAward(award_id, start_s, end_s, energy_kwh, issued_by, now_s)


def _number(v: object, field: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise QuotaError(field, "must be a finite number")
    return float(v)
