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

Revisions count only within one JetStream store: a wiped store starts them at 1 again. So
every grant names its store's epoch (a random id kept in the coordinator's lease bucket), and
the lease keeps the epoch of its newest revision. A grant of another epoch is refused while
the site's lease is valid and taken once it has expired (the site is on its fail-safe limit
by then: a re-join, not a takeover); its revision then becomes the newest. An epoch of ""
(an older coordinator, or state saved before epochs) is unknown: revisions alone decide.

Across a restart the lease is saved (SavedLease.to_state, written by the daemon) and taken
back (restore): in force until its saved end, or already over and so fail-safe with the
expiry reason, as if the site had never stopped; its revision and epoch go on fencing.

Why a new epoch only after expiry never lets two coordinators' allocations be obeyed at once:
between stores no revision order exists, so the site orders them in time instead. It takes
another epoch's grant only when it obeys none (no lease, or its lease over: fail-safe), so it
never passes from one coordinator's allocation to another's directly; in between it is on its
own fail-safe limit, the state every coordinator already assumes for a site whose lease has
ended. A lease lasts at most lease_s after receipt, and a coordinator that still reaches the
site renews it every round, so only a coordinator silent towards this site for a whole lease
is displaced (a wiped store's coordinator cannot renew its leadership and falls silent). After
the switch, the old epoch is another epoch again: a late or replayed message of it is refused
while the new lease runs, and one arriving after that has to pass the stale check like any.
Within one epoch, revision fencing stays as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from minerd.model import EffectiveLimit

ORIGIN_REGION = "region"
_ORIGIN_FAILSAFE = "failsafe"  # control.quota.ORIGIN_FAILSAFE (kept import-free of quota)

# The site's state key of the saved lease (daemon.region_role writes it, `minerd region
# forget` deletes it): {"region", "site", **SavedLease.to_state()}.
STATE_KEY = "region.allocation"

REASON_NONE_YET = "no regional allocation yet"
REASON_EXPIRED = "regional allocation lease expired"
EPOCH_UNKNOWN = ""  # an older coordinator's grant, or a lease saved before epochs


@dataclass(frozen=True)
class RegionalGrant:
    coordinator_id: str
    lease_revision: int
    seq: int
    issued_at_s: float
    lease_s: float
    allocation_kw: float
    store_epoch: str = EPOCH_UNKNOWN  # the coordinator's JetStream store (its revisions' scope)


@dataclass(frozen=True)
class SavedLease:
    """What a restart needs of the lease: the last grant taken and when it ends (site time)."""

    grant: RegionalGrant
    expires_at_s: float

    def to_state(self) -> dict[str, float | int | str]:
        g = self.grant
        return {
            "coordinator_id": g.coordinator_id,
            "lease_revision": g.lease_revision,
            "seq": g.seq,
            "issued_at_s": g.issued_at_s,
            "lease_s": g.lease_s,
            "allocation_kw": g.allocation_kw,
            "store_epoch": g.store_epoch,
            "expires_at_s": self.expires_at_s,
        }

    @classmethod
    def from_state(cls, value: object) -> SavedLease:
        """Read back what to_state wrote (other keys ignored); ValueError naming what is wrong."""
        if not isinstance(value, dict):
            raise ValueError(f"saved regional lease is not a table: {value!r}")
        coordinator_id = value.get("coordinator_id")
        if not isinstance(coordinator_id, str) or not coordinator_id:
            raise ValueError(f"saved regional lease: coordinator_id is {coordinator_id!r}")
        revision, seq = _count(value, "lease_revision"), _count(value, "seq")
        issued_at_s, lease_s = _number(value, "issued_at_s"), _number(value, "lease_s")
        allocation_kw, expires_at_s = (
            _number(value, "allocation_kw"),
            _number(value, "expires_at_s"),
        )
        store_epoch = value.get("store_epoch", EPOCH_UNKNOWN)  # absent: saved before epochs
        if not isinstance(store_epoch, str):
            raise ValueError(f"saved regional lease: store_epoch is {store_epoch!r}")
        if lease_s <= 0.0 or allocation_kw < 0.0:
            raise ValueError(f"saved regional lease: lease_s {lease_s}, allocation {allocation_kw}")
        if expires_at_s > issued_at_s + lease_s:  # accept() never ends a lease later
            raise ValueError(
                f"saved regional lease ends at {expires_at_s}, after its grant's "
                f"{issued_at_s} + {lease_s} s"
            )
        grant = RegionalGrant(
            coordinator_id, revision, seq, issued_at_s, lease_s, allocation_kw, store_epoch
        )
        return cls(grant, expires_at_s)


def _count(value: dict[object, object], key: str) -> int:
    v = value.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"saved regional lease: {key} is {v!r}")
    return v


def _number(value: dict[object, object], key: str) -> float:
    v = value.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"saved regional lease: {key} is {v!r}")
    return float(v)


class RegionalLease:
    def __init__(self) -> None:
        self.newest_revision = 0
        self.newest_epoch = EPOCH_UNKNOWN  # the store epoch of newest_revision
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
        self.newest_revision = g.lease_revision  # a new epoch's revision starts the count anew
        self.newest_epoch = g.store_epoch
        self.last = g
        self.expires_at_s = min(g.issued_at_s + g.lease_s, now_s + g.lease_s)
        self.accepted += 1
        return ""

    def other_epoch(self, g: RegionalGrant) -> bool:
        """The grant comes from another store than the newest revision's (both known)."""
        return (
            self.last is not None
            and g.store_epoch != EPOCH_UNKNOWN
            and self.newest_epoch != EPOCH_UNKNOWN
            and g.store_epoch != self.newest_epoch
        )

    def _refusal(self, g: RegionalGrant, now_s: float) -> str:
        if self.other_epoch(g):
            if self.valid(now_s):
                return (
                    f"another store epoch: {g.store_epoch} (revision {g.lease_revision}), not "
                    f"{self.newest_epoch} (revision {self.newest_revision}): taken once the "
                    f"current lease has expired, in {self.expires_at_s - now_s:.1f}s"
                )
            return self._stale(g, now_s)  # a re-join: its revisions are counted anew
        if g.lease_revision < self.newest_revision:
            if EPOCH_UNKNOWN in (g.store_epoch, self.newest_epoch):  # no epoch to tell a wipe
                hint = "if this persists, the coordinator's store was wiped: `minerd region forget`"
            else:
                hint = f"a former leader in store epoch {g.store_epoch}"
            return (
                f"fenced: revision {g.lease_revision} is older than {self.newest_revision} ({hint})"
            )
        last = self.last
        if (
            last is not None
            and g.lease_revision == last.lease_revision
            and g.coordinator_id == last.coordinator_id
            and g.seq <= last.seq
        ):
            return f"replayed: seq {g.seq} not after {last.seq}"
        return self._stale(g, now_s)

    @staticmethod
    def _stale(g: RegionalGrant, now_s: float) -> str:
        if g.issued_at_s + g.lease_s <= now_s:
            return f"stale: its lease ended {now_s - g.issued_at_s - g.lease_s:.1f}s ago"
        return ""

    def saved(self) -> SavedLease | None:
        """The lease to save (None: no grant taken yet)."""
        return None if self.last is None else SavedLease(self.last, self.expires_at_s)

    def restore(self, saved: SavedLease, now_s: float) -> None:
        """Take back the lease saved before a restart, into an empty lease only (a grant
        taken since is newer). Its end stays as saved, but never more than lease_s from now
        (a wall clock set back while the site was down must not stretch it). An ended one
        is kept too: the site is in fail-safe with the expiry reason, and its revision
        fences older coordinators, exactly as if it had ended while the site ran."""
        if self.last is not None:
            return
        g = saved.grant
        self.newest_revision = g.lease_revision
        self.newest_epoch = g.store_epoch
        self.last = g
        self.expires_at_s = min(saved.expires_at_s, now_s + g.lease_s)

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
