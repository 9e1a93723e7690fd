"""Quota requests on the wire (POST /quotas, PUT /quotas/schedule, the MQTT quota input)
turned into the runtime's commands (minerd.runtime.commands), which store, audit and announce
them. Nothing here writes.

Idempotency is the quota store's rule: a request that repeats an Idempotency-Key (HTTP
header) or a reference already stored returns the stored quota (created=False) as long as it
asks for the same limit and times; reusing one for a different quota is a QuotaConflict
(HTTP 409). A quota that cannot be stored durably is refused with QuotaNotDurable (a
StorageError: HTTP 503 with Retry-After); quotas accepted before stay in force.

The async functions keep the database off the event loop (the HTTP routes, the MQTT input);
the plain ones run on the caller's thread, for callers that are synchronous.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from minerd.api.problems import QuotaConflict
from minerd.api.schemas import QuotaRequest, ScheduleRequest
from minerd.api.times import to_s
from minerd.model import Quota, QuotaSource
from minerd.runtime.commands import (
    NotDurable,
    QuotaOutcome,
    ReplaceSchedule,
    ScheduleBlock,
    SetQuota,
    WithdrawQuota,
    execute,
    execute_now,
)
from minerd.runtime.service import SiteService
from minerd.storage import ScheduleReplaced

QuotaNotDurable = NotDurable  # the name the API and its tests have always used

__all__ = [
    "QuotaNotDurable",
    "QuotaOutcome",
    "contract_notes",
    "quota_command",
    "schedule_command",
    "submit_quota",
    "submit_quota_async",
    "submit_schedule",
    "submit_schedule_async",
    "withdraw_quota",
    "withdraw_quota_async",
]

_KEY_HEADER = "Idempotency-Key"


def quota_command(
    req: QuotaRequest, *, actor: str, source: QuotaSource, idempotency_key: str | None = None
) -> SetQuota:
    return SetQuota(
        limit_kw=req.limit_kw,
        actor=actor,
        source=source,
        start_s=None if req.start is None else to_s(req.start),
        end_s=None if req.end is None else to_s(req.end),
        reference=req.reference,
        idempotency_key=idempotency_key,
    )


def schedule_command(req: ScheduleRequest, *, actor: str) -> ReplaceSchedule:
    blocks = tuple(
        ScheduleBlock(b.limit_kw, to_s(b.start), to_s(b.end), b.reference) for b in req.blocks
    )
    return ReplaceSchedule(blocks, actor)


@contextmanager
def _key_as_header() -> Iterator[None]:
    """The store names the key idempotency_key; on the wire it is the Idempotency-Key header
    (and the MQTT answer has always named it so too)."""
    try:
        yield
    except QuotaConflict as exc:
        if exc.field != "idempotency_key":
            raise
        message = exc.message.replace("idempotency_key", _KEY_HEADER)
        raise QuotaConflict(_KEY_HEADER, message) from exc


def submit_quota(
    service: SiteService,
    req: QuotaRequest,
    *,
    actor: str,
    source: QuotaSource,
    idempotency_key: str | None = None,
) -> QuotaOutcome:
    """Store (once), audit and announce one quota. Raises QuotaError naming the field for a
    request that cannot take effect, QuotaConflict for a reused key or reference."""
    command = quota_command(req, actor=actor, source=source, idempotency_key=idempotency_key)
    with _key_as_header():
        return execute_now(service, command)


async def submit_quota_async(
    service: SiteService,
    req: QuotaRequest,
    *,
    actor: str,
    source: QuotaSource,
    idempotency_key: str | None = None,
) -> QuotaOutcome:
    """submit_quota with the database work off the event loop."""
    command = quota_command(req, actor=actor, source=source, idempotency_key=idempotency_key)
    with _key_as_header():
        return await execute(service, command)


def submit_schedule(service: SiteService, req: ScheduleRequest, *, actor: str) -> ScheduleReplaced:
    """Replace the scheduled blocks the new ones overlap, atomically, and audit it."""
    return execute_now(service, schedule_command(req, actor=actor))


async def submit_schedule_async(
    service: SiteService, req: ScheduleRequest, *, actor: str
) -> ScheduleReplaced:
    return await execute(service, schedule_command(req, actor=actor))


def withdraw_quota(service: SiteService, quota_id: str, *, actor: str) -> Quota:
    """Withdraw from now on; NotFoundError for an unknown id; a second call changes nothing."""
    return execute_now(service, WithdrawQuota(quota_id, actor))


async def withdraw_quota_async(service: SiteService, quota_id: str, *, actor: str) -> Quota:
    return await execute(service, WithdrawQuota(quota_id, actor))


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
