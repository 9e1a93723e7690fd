"""Creating quotas and schedules: the one code path behind POST /quotas, PUT
/quotas/schedule and the MQTT quota input.

Idempotency: a request that repeats an Idempotency-Key (HTTP header) or a reference
already stored returns the stored quota (created=False) as long as it asks for the same
limit and times; reusing one for a different quota is a QuotaConflict (HTTP 409). The
quota and its audit entry are written in one transaction.

Durability: a quota is accepted only once it is on disk. While the database refuses writes
(full, read-only) a new quota or schedule is refused with QuotaNotDurable (a StorageError:
HTTP 503 with Retry-After); quotas accepted before stay in force, control goes on.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from dataclasses import dataclass

from minerd.api.problems import QuotaConflict
from minerd.api.schemas import QuotaRequest, ScheduleRequest
from minerd.api.times import iso, to_s
from minerd.errors import QuotaError, StorageError
from minerd.model import Quota, QuotaSource
from minerd.runtime.service import SiteService
from minerd.storage import NotFoundError, ScheduleReplaced, Stores

log = logging.getLogger(__name__)


class QuotaNotDurable(StorageError):
    """A quota could not be made durable, so it was not accepted."""

    def __init__(self, what: str, cause: StorageError) -> None:
        super().__init__(
            f"{what} not accepted: it cannot be stored durably ({cause}); quotas accepted "
            "before stay in force; send it again once storage works"
        )


@dataclass(frozen=True)
class QuotaOutcome:
    quota: Quota
    created: bool  # False: a replay, answered with the quota stored the first time

    @property
    def effective_at_s(self) -> float:
        return max(self.quota.start_s, self.quota.issued_at_s)


_seq = itertools.count()


def new_quota_id(issued_at_s: float) -> str:
    """Ids that sort in issue order (milliseconds, then a per-process sequence): control
    breaks a tie between quotas issued in the same instant by the larger id, so the one
    accepted last wins, as it should."""
    ms = max(0, int(issued_at_s * 1000))
    return f"q-{ms:012x}-{next(_seq) % 0x1000000:06x}-{secrets.token_hex(4)}"


def _find_by_reference(stores: Stores, reference: str) -> Quota | None:
    # QuotaStore offers find_by_key but not by reference; one indexed lookup here.
    row = stores.db.query_one(
        "SELECT quota_id FROM quota WHERE reference = ? ORDER BY rowid LIMIT 1",
        (reference,),
        what="find quota by reference",
    )
    return None if row is None else stores.quotas.get(str(row[0]))


def _replay(stores: Stores, req: QuotaRequest, key: str | None) -> tuple[Quota, str, str] | None:
    if key is not None:
        found = stores.quotas.find_by_key(key)
        if found is not None:
            return found, "Idempotency-Key", key
    if req.reference is not None:
        found = _find_by_reference(stores, req.reference)
        if found is not None:
            return found, "reference", req.reference
    return None


def _check_same(stored: Quota, req: QuotaRequest, field: str, value: str) -> None:
    asked: list[tuple[str, object, object]] = [
        ("limit_kw", req.limit_kw, stored.limit_kw),
        ("end", None if req.end is None else to_s(req.end), stored.end_s),
    ]
    if req.start is not None:
        asked.append(("start", to_s(req.start), stored.start_s))
    else:  # "now": the stored one must have been immediate too
        asked.append(("start", "now", "now" if stored.start_s <= stored.issued_at_s else "later"))
    for name, want, have in asked:
        if want != have:
            raise QuotaConflict(
                field,
                f"{value!r} was already used for quota {stored.quota_id} with a different "
                f"{name}; send a new {field} for a new quota",
            )


def submit_quota(
    service: SiteService,
    req: QuotaRequest,
    *,
    actor: str,
    source: QuotaSource,
    idempotency_key: str | None = None,
) -> QuotaOutcome:
    """Validate, store (once), audit and announce one quota. Raises QuotaError naming the
    field for a request that cannot take effect, QuotaConflict for a reused key."""
    stores = service.stores
    replay = _replay(stores, req, idempotency_key)
    if replay is not None:
        stored, field, value = replay
        _check_same(stored, req, field, value)
        return QuotaOutcome(stored, created=False)
    now_s = service.clock.now_s()
    end_s = None if req.end is None else to_s(req.end)
    if end_s is not None and end_s <= now_s:
        raise QuotaError("end", f"{iso(end_s)} is already past (now {iso(now_s)})")
    quota = Quota(
        quota_id=new_quota_id(now_s),
        limit_kw=req.limit_kw,
        start_s=now_s if req.start is None else to_s(req.start),
        end_s=end_s,
        source=source,
        issued_at_s=now_s,
        issued_by=actor,
        reference=req.reference,
    )
    detail = {
        "limit_kw": quota.limit_kw,
        "start": iso(quota.start_s),
        "end": None if end_s is None else iso(end_s),
        "source": source.value,
        "reference": req.reference,
    }
    try:
        with stores.db.transaction("create quota"):
            added = stores.quotas.add(quota, idempotency_key)
            if added.created:
                stores.audit.record(
                    now_s, actor, "quota.create", quota.quota_id, json.dumps(detail)
                )
    except QuotaConflict:
        raise
    except QuotaError as exc:
        # A concurrent request with the same key or reference won the race.
        raise QuotaConflict(exc.field, exc.message) from exc
    except NotFoundError:
        raise
    except StorageError as exc:
        raise QuotaNotDurable("quota", exc) from exc
    if added.created:
        log.info(
            "quota %s: %.1f kW from %s to %s (%s, by %s)",
            quota.quota_id,
            quota.limit_kw,
            detail["start"],
            detail["end"] or "withdrawal",
            source.value,
            actor,
        )
        service.quotas_changed()
    return QuotaOutcome(added.quota, added.created)


def contract_notes(service: SiteService, limits: list[tuple[str, float]]) -> list[str]:
    """A hint for each (field, limit) above the contracted limit: accepted and stored as
    sent (it is the grid's order), but the site never goes above its contract."""
    contracted_kw = service.status().contracted_limit_kw
    return [
        f"{field} {limit_kw:g} kW is above the contracted limit {contracted_kw:g} kW: the "
        f"site is held at {contracted_kw:g} kW while it is in force (the contract caps "
        "every quota)"
        for field, limit_kw in limits
        if limit_kw > contracted_kw
    ]


def submit_schedule(service: SiteService, req: ScheduleRequest, *, actor: str) -> ScheduleReplaced:
    """Replace the scheduled blocks the new ones overlap, atomically, and audit it."""
    now_s = service.clock.now_s()
    blocks = sorted(enumerate(req.blocks), key=lambda ib: ib[1].start)
    for (_, prev), (i, cur) in itertools.pairwise(blocks):
        if cur.start < prev.end:
            raise QuotaError(f"blocks.{i}.start", "overlaps another block of the schedule")
    for i, b in enumerate(req.blocks):
        if to_s(b.end) <= now_s:
            raise QuotaError(f"blocks.{i}.end", f"{iso(to_s(b.end))} is already past")
    quotas = [
        Quota(
            quota_id=new_quota_id(now_s),
            limit_kw=b.limit_kw,
            start_s=to_s(b.start),
            end_s=to_s(b.end),
            source=QuotaSource.SCHEDULE,
            issued_at_s=now_s,
            issued_by=actor,
            reference=b.reference,
        )
        for _, b in blocks
    ]
    stores = service.stores
    try:
        with stores.db.transaction("replace schedule"):
            result = stores.quotas.replace_schedule(quotas, actor, now_s)
            detail = {
                "blocks": len(quotas),
                "from": iso(quotas[0].start_s),
                "to": iso(max(q.end_s or q.start_s for q in quotas)),
                "withdrawn": [q.quota_id for q in result.withdrawn],
            }
            stores.audit.record(now_s, actor, "quota.schedule", "", json.dumps(detail))
    except NotFoundError:
        raise
    except StorageError as exc:
        raise QuotaNotDurable("schedule", exc) from exc
    log.info(
        "schedule: %d blocks from %s by %s, %d replaced",
        len(quotas),
        detail["from"],
        actor,
        len(result.withdrawn),
    )
    service.quotas_changed()
    return result


def withdraw_quota(service: SiteService, quota_id: str, *, actor: str) -> Quota:
    """Withdraw from now on; NotFoundError for an unknown id; a second call changes nothing."""
    stores = service.stores
    now_s = service.clock.now_s()
    with stores.db.transaction("withdraw quota"):
        before = stores.quotas.get(quota_id)
        if before is None:
            raise NotFoundError("quota", quota_id)
        if before.withdrawn_at_s is not None:
            return before
        q = stores.quotas.withdraw(quota_id, now_s, actor)
        stores.audit.record(now_s, actor, "quota.withdraw", quota_id, "{}")
    log.info("quota %s withdrawn by %s", quota_id, actor)
    service.quotas_changed()
    return q
