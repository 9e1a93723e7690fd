"""Quotas from the grid authority, the effective-limit timeline, and compliance evidence."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel

from minerd.api.context import (
    AUTH_RESPONSES,
    CONFLICT,
    NOT_FOUND,
    ComplianceReader,
    Ctx,
    GridUser,
    SiteReader,
)
from minerd.api.params import DAY_S, FromQuery, ToQuery, span
from minerd.api.problems import ApiError
from minerd.api.quota_orders import (
    contract_notes,
    submit_quota_async,
    submit_schedule_async,
    withdraw_quota_async,
)
from minerd.api.schemas import (
    ComplianceOut,
    ComplianceReport,
    ComplianceSummary,
    QuotaList,
    QuotaOut,
    QuotaRequest,
    ScheduleOut,
    ScheduleRequest,
    TimelineStep,
)
from minerd.api.times import iso, to_dt, to_s
from minerd.model import QuotaSource

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)


class QuotaCreated(BaseModel):
    id: str
    created: bool  # false: a repeat of a request already accepted
    effective_at: datetime
    quota: QuotaOut
    # Hints about how the quota takes effect, e.g. a limit above the contract is capped by it.
    notes: list[str] = []


@router.post(
    "/quotas",
    status_code=201,
    response_model=QuotaCreated,
    responses={
        200: {"model": QuotaCreated, "description": "a repeat: the quota already stored"},
        **CONFLICT,
    },
    summary="Set a power limit (grid)",
)
async def post_quota(
    ctx: Ctx,
    who: GridUser,
    body: QuotaRequest,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> QuotaCreated:
    out = await submit_quota_async(
        ctx.service,
        body,
        actor=who.name,
        source=QuotaSource.API,
        idempotency_key=idempotency_key,
    )
    if not out.created:
        response.status_code = 200
    notes = contract_notes(ctx.service, [("limit_kw", out.quota.limit_kw)])
    if notes and out.created:
        log.warning("quota %s: %s", out.quota.quota_id, notes[0])
    return QuotaCreated(
        id=out.quota.quota_id,
        created=out.created,
        effective_at=to_dt(out.effective_at_s),
        quota=QuotaOut.of(out.quota),
        notes=notes,
    )


@router.put(
    "/quotas/schedule",
    response_model=ScheduleOut,
    summary="Replace the day-ahead schedule blocks it overlaps (grid)",
)
async def put_schedule(ctx: Ctx, who: GridUser, body: ScheduleRequest) -> ScheduleOut:
    result = await submit_schedule_async(ctx.service, body, actor=who.name)
    notes = contract_notes(
        ctx.service, [(f"blocks[{i}].limit_kw", b.limit_kw) for i, b in enumerate(body.blocks)]
    )
    for note in notes:
        log.warning("schedule: %s", note)
    return ScheduleOut(
        added=[QuotaOut.of(q) for q in result.added],
        withdrawn=[q.quota_id for q in result.withdrawn],
        notes=notes,
    )


@router.get("/quotas", response_model=QuotaList, summary="Quotas and the effective-limit timeline")
async def list_quotas(
    ctx: Ctx, _: SiteReader, from_: FromQuery = None, to: ToQuery = None
) -> QuotaList:
    now_s = ctx.service.clock.now_s()
    from_s, to_s_ = span(from_, to, now_s, now_s + 2 * DAY_S)
    quotas = await asyncio.to_thread(ctx.service.stores.quotas.covering, from_s, to_s_)
    steps = ctx.service.limit_timeline(from_s, to_s_)
    return QuotaList(
        from_=to_dt(from_s),
        to=to_dt(to_s_),
        quotas=[QuotaOut.of(q) for q in quotas],
        timeline=[
            TimelineStep(
                start=to_dt(a),
                end=to_dt(b),
                limit_kw=lim.limit_kw,
                origin=lim.origin,
                quota_id=lim.quota_id,
            )
            for a, b, lim in steps
        ],
    )


@router.get("/quotas/{quota_id}", response_model=QuotaOut, responses=NOT_FOUND)
async def get_quota(ctx: Ctx, _: SiteReader, quota_id: str) -> QuotaOut:
    q = ctx.service.stores.quotas.get(quota_id)
    if q is None:
        raise ApiError(404, f"no quota {quota_id!r}")
    return QuotaOut.of(q)


@router.delete(
    "/quotas/{quota_id}",
    response_model=QuotaOut,
    responses=NOT_FOUND,
    summary="Withdraw a quota from now on (grid)",
)
async def delete_quota(ctx: Ctx, who: GridUser, quota_id: str) -> QuotaOut:
    return QuotaOut.of(await withdraw_quota_async(ctx.service, quota_id, actor=who.name))


_INTERVAL = re.compile(r"^\s*(\d{1,6})\s*(s|m|h|min)?\s*$")
_UNIT_S = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}


def parse_interval_s(text: str) -> float:
    """'15m', '900s', '1h', '900' -> seconds."""
    m = _INTERVAL.match(text)
    if m is None:
        raise ApiError(422, "interval: expected a duration such as 15m, 1m, 1h or 900s", "interval")
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
    if not 1 <= seconds <= DAY_S:
        raise ApiError(422, "interval: must be between 1s and 24h", "interval")
    return float(seconds)


_CSV_COLUMNS = (
    "interval_start",
    "interval_end",
    "interval_s",
    "avg_import_kw",
    "limit_kw",
    "max_excess_kw",
    "seconds_over",
    "energy_over_kwh",
    "samples",
    "compliant",
    "utilization",
    "under_reason",
)


def _mean_utilization(records: list[ComplianceOut]) -> float:
    """Energy drawn / energy allowed over the records (intervals of one length)."""
    allowed = sum(r.limit_kw for r in records if r.limit_kw > 0)
    drawn = sum(r.avg_import_kw for r in records if r.limit_kw > 0)
    return round(drawn / allowed, 5) if allowed > 0 else 0.0


def _csv(records: list[ComplianceOut]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_CSV_COLUMNS)
    for r in records:
        w.writerow(
            [
                iso(to_s(r.interval_start)),
                iso(to_s(r.interval_end)),
                f"{r.interval_s:g}",
                f"{r.avg_import_kw:.3f}",
                f"{r.limit_kw:.3f}",
                f"{r.max_excess_kw:.3f}",
                f"{r.seconds_over:.1f}",
                f"{r.energy_over_kwh:.4f}",
                r.samples,
                "yes" if r.compliant else "no",
                f"{r.utilization:.4f}",
                r.under_reason,
            ]
        )
    return buf.getvalue()


@router.get(
    "/compliance",
    response_model=ComplianceReport,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV with Accept: text/csv",
        }
    },
    summary="Per-interval compliance with the limits in force (grid, operator)",
)
async def get_compliance(
    request: Request,
    ctx: Ctx,
    _: ComplianceReader,
    from_: FromQuery = None,
    to: ToQuery = None,
    interval: Annotated[str, Query(max_length=16, description="15m, 1m, 1h or seconds")] = "15m",
) -> ComplianceReport | Response:
    interval_s = parse_interval_s(interval)
    now_s = ctx.service.clock.now_s()
    from_s, to_s_ = span(from_, to, now_s - DAY_S, now_s)
    rows = await asyncio.to_thread(ctx.service.stores.compliance.query, from_s, to_s_, interval_s)
    records = [
        ComplianceOut(
            interval_start=to_dt(r.interval_start_s),
            interval_end=to_dt(r.interval_start_s + r.interval_s),
            interval_s=r.interval_s,
            avg_import_kw=r.avg_import_kw,
            limit_kw=r.limit_kw,
            max_excess_kw=r.max_excess_kw,
            seconds_over=r.seconds_over,
            energy_over_kwh=r.energy_over_kwh,
            samples=r.samples,
            compliant=r.max_excess_kw <= 0 and r.seconds_over <= 0,
            utilization=round(r.utilization, 5),
            under_reason=r.under_reason,
        )
        for r in rows
    ]
    if "text/csv" in request.headers.get("accept", ""):
        return Response(_csv(records), media_type="text/csv; charset=utf-8")
    return ComplianceReport(
        site=ctx.service.site_name,
        from_=to_dt(from_s),
        to=to_dt(to_s_),
        interval_s=interval_s,
        summary=ComplianceSummary(
            intervals=len(records),
            intervals_over=sum(1 for r in records if not r.compliant),
            energy_over_kwh=sum(r.energy_over_kwh for r in records),
            max_excess_kw=max((r.max_excess_kw for r in records), default=0.0),
            mean_utilization=_mean_utilization(records),
            intervals_under_target=sum(1 for r in records if r.under_reason),
        ),
        records=records,
    )
