"""Which limit is in force: grid quotas, the operator cap, the contract, the fail-safe.

Pure functions of the quotas and a time passed in; nothing here reads a clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from minerd.model import EffectiveLimit, Quota, QuotaSource

# Quotas from these sources are orders of the grid authority; CONFIG ones are not.
GRID_SOURCES: frozenset[QuotaSource] = frozenset(
    {
        QuotaSource.API,
        QuotaSource.MQTT,
        QuotaSource.SCHEDULE,
        QuotaSource.IEC104,
        QuotaSource.OPENADR,
    }
)

ORIGIN_QUOTA = "quota"
ORIGIN_OPERATOR_CAP = "operator-cap"
ORIGIN_CONTRACTED = "contracted"
ORIGIN_FAILSAFE = "failsafe"


def _newer(a: Quota, b: Quota) -> bool:
    """True when a was issued after b (tie: larger quota_id, so the choice is deterministic)."""
    return (a.issued_at_s, a.quota_id) > (b.issued_at_s, b.quota_id)


def winning_quota(quotas: Iterable[Quota], t_s: float) -> Quota | None:
    """The grid quota in force at t_s: among those covering t_s, the most recently issued."""
    best: Quota | None = None
    for q in quotas:
        if q.source in GRID_SOURCES and q.covers(t_s) and (best is None or _newer(q, best)):
            best = q
    return best


def combine_limit(
    quota: Quota | None,
    *,
    contracted_limit_kw: float,
    operator_cap_kw: float | None = None,
    failsafe: bool = False,
    failsafe_limit_kw: float | None = None,
) -> EffectiveLimit:
    """min(quota, operator cap, contract); on ties the grid's order names the origin.

    failsafe=True (grid meter stale or quota source silent) further caps the result at
    failsafe_limit_kw and reports origin "failsafe" (quota_id kept for the record).
    """
    limit = EffectiveLimit(contracted_limit_kw, ORIGIN_CONTRACTED, None)
    if operator_cap_kw is not None and operator_cap_kw <= limit.limit_kw:
        limit = EffectiveLimit(operator_cap_kw, ORIGIN_OPERATOR_CAP, None)
    if quota is not None and quota.limit_kw <= limit.limit_kw:
        limit = EffectiveLimit(quota.limit_kw, ORIGIN_QUOTA, quota.quota_id, quota.source)
    if failsafe:
        qid = quota.quota_id if quota is not None else None
        cap_kw = limit.limit_kw if failsafe_limit_kw is None else failsafe_limit_kw
        limit = EffectiveLimit(min(limit.limit_kw, cap_kw), ORIGIN_FAILSAFE, qid)
    return limit


def effective_limit(
    quotas: Iterable[Quota],
    t_s: float,
    *,
    contracted_limit_kw: float,
    operator_cap_kw: float | None = None,
    failsafe: bool = False,
    failsafe_limit_kw: float | None = None,
) -> EffectiveLimit:
    """The limit in force at t_s. No grid quota in force means the contract, never unlimited."""
    return combine_limit(
        winning_quota(quotas, t_s),
        contracted_limit_kw=contracted_limit_kw,
        operator_cap_kw=operator_cap_kw,
        failsafe=failsafe,
        failsafe_limit_kw=failsafe_limit_kw,
    )


def limit_timeline(
    quotas: Sequence[Quota],
    from_s: float,
    to_s: float,
    *,
    contracted_limit_kw: float,
    operator_cap_kw: float | None = None,
) -> list[tuple[float, float, EffectiveLimit]]:
    """Steps (start_s, end_s, limit) covering [from_s, to_s); equal neighbours are merged.

    Quota.covers changes only at start_s, end_s and withdrawn_at_s, and is constant on the
    half-open spans between them, so evaluating each span at its start is exact.
    """
    if to_s <= from_s:
        return []
    grid = [q for q in quotas if q.source in GRID_SOURCES]
    edges = {from_s, to_s}
    for q in grid:
        for e in (q.start_s, q.end_s, q.withdrawn_at_s):
            if e is not None and from_s < e < to_s:
                edges.add(e)
    points = sorted(edges)
    steps: list[tuple[float, float, EffectiveLimit]] = []
    for start_s, end_s in itertools.pairwise(points):
        lim = effective_limit(
            grid, start_s, contracted_limit_kw=contracted_limit_kw, operator_cap_kw=operator_cap_kw
        )
        if steps and steps[-1][2] == lim:
            steps[-1] = (steps[-1][0], end_s, lim)
        else:
            steps.append((start_s, end_s, lim))
    return steps
