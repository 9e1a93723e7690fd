"""A site's regional allocation: one more limit, held as a lease. Pure; no clock read here.

The regional coordinator grants a site an import limit valid until issued_at_s + lease_s
(and never longer than lease_s after the site took it, whatever the coordinator's clock
says). While valid it caps the site's limit like a quota (the lower wins: an allocation
never raises a site above its own contract, quota or operator cap), origin "region". With
no valid lease the site is in fail-safe (the cycle's fail-safe reason says why), so it
falls to its own fail-safe limit, the existing mechanism.

A grant is refused (and counted) when it is fenced (an older coordinator revision than the
newest accepted), a replay (same coordinator and revision, seq not rising), or stale (its
lease already over when it arrives).
"""

from __future__ import annotations

from dataclasses import dataclass

from minerd.model import EffectiveLimit

ORIGIN_REGION = "region"
_ORIGIN_FAILSAFE = "failsafe"  # control.quota.ORIGIN_FAILSAFE (kept import-free of quota)

REASON_NONE_YET = "no regional allocation yet"
REASON_EXPIRED = "regional allocation lease expired"


@dataclass(frozen=True)
class RegionalGrant:
    coordinator_id: str
    lease_revision: int
    seq: int
    issued_at_s: float
    lease_s: float
    allocation_kw: float


class RegionalLease:
    def __init__(self) -> None:
        self.newest_revision = 0
        self.last: RegionalGrant | None = None
        self.expires_at_s = float("-inf")
        self.accepted = 0
        self.refused = 0

    def accept(self, g: RegionalGrant, now_s: float) -> str:
        """Take a grant off the wire: "" when accepted, else why not (and counted)."""
        why = self._refusal(g, now_s)
        if why:
            self.refused += 1
            return why
        self.newest_revision = g.lease_revision
        self.last = g
        self.expires_at_s = min(g.issued_at_s + g.lease_s, now_s + g.lease_s)
        self.accepted += 1
        return ""

    def _refusal(self, g: RegionalGrant, now_s: float) -> str:
        if g.lease_revision < self.newest_revision:
            return f"fenced: revision {g.lease_revision} is older than {self.newest_revision}"
        last = self.last
        if (
            last is not None
            and g.lease_revision == last.lease_revision
            and g.coordinator_id == last.coordinator_id
            and g.seq <= last.seq
        ):
            return f"replayed: seq {g.seq} not after {last.seq}"
        if g.issued_at_s + g.lease_s <= now_s:
            return f"stale: its lease ended {now_s - g.issued_at_s - g.lease_s:.1f}s ago"
        return ""

    def valid(self, now_s: float) -> bool:
        return self.last is not None and now_s < self.expires_at_s

    def allocation_kw(self, now_s: float) -> float | None:
        """The allocation in force (None: no valid lease)."""
        return self.last.allocation_kw if self.last is not None and self.valid(now_s) else None

    def failsafe_reason(self, now_s: float) -> str:
        if self.valid(now_s):
            return ""
        last = self.last
        if last is None:
            return REASON_NONE_YET
        return (
            f"{REASON_EXPIRED} (coordinator {last.coordinator_id}, revision "
            f"{last.lease_revision}, seq {last.seq})"
        )

    def cap(self, limit: EffectiveLimit, now_s: float) -> EffectiveLimit:
        """The lower of `limit` and the allocation; a fail-safe limit stays fail-safe."""
        alloc = self.allocation_kw(now_s)
        if alloc is None or alloc >= limit.limit_kw:
            return limit
        if limit.origin == _ORIGIN_FAILSAFE:
            return EffectiveLimit(alloc, _ORIGIN_FAILSAFE, limit.quota_id)
        return EffectiveLimit(alloc, ORIGIN_REGION)
