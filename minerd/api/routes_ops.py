"""Operator actions (cap, maintenance, alert acknowledgement), the audit log and alerts."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import JsonValue

from minerd.api.context import AUTH_RESPONSES, NOT_FOUND, Ctx, OperatorUser, Reader
from minerd.api.params import DAY_S, FromQuery, ToQuery, span
from minerd.api.problems import ApiError
from minerd.api.schemas import (
    AlertList,
    AlertOut,
    AuditList,
    AuditOut,
    MaintenanceOut,
    MaintenanceRequest,
    OperatorCapOut,
    OperatorCapRequest,
)
from minerd.api.times import to_dt
from minerd.runtime.commands import PinRig, ReleaseRig, SetOperatorCap, execute

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)


@router.put("/operator-cap", response_model=OperatorCapOut, summary="Set or clear the cap")
async def put_operator_cap(ctx: Ctx, who: OperatorUser, body: OperatorCapRequest) -> OperatorCapOut:
    out = await execute(ctx.service, SetOperatorCap(body.cap_kw, who.name))
    return OperatorCapOut(cap_kw=out.cap_kw, set_by=who.name, set_at=to_dt(out.at_s))


def _known_rig(ctx: Ctx, rig_id: str) -> None:
    if not any(r.rig_id == rig_id for r in ctx.service.rig_infos):
        raise ApiError(404, f"no rig {rig_id!r}")


@router.post(
    "/rigs/{rig_id}/maintenance",
    response_model=MaintenanceOut,
    responses=NOT_FOUND,
    summary="Pin a rig for maintenance: the controller leaves it alone",
)
async def pin_rig(
    ctx: Ctx,
    who: OperatorUser,
    rig_id: str,
    body: Annotated[MaintenanceRequest | None, Body()] = None,
) -> MaintenanceOut:
    _known_rig(ctx, rig_id)
    note = body.note if body is not None else ""
    entry = await execute(ctx.service, PinRig(rig_id, who.name, note))
    return MaintenanceOut(
        rig_id=rig_id, maintenance=True, by=entry.by, since=to_dt(entry.since_s), note=entry.note
    )


@router.delete(
    "/rigs/{rig_id}/maintenance",
    response_model=MaintenanceOut,
    responses=NOT_FOUND,
    summary="Release a rig from maintenance",
)
async def release_rig(ctx: Ctx, who: OperatorUser, rig_id: str) -> MaintenanceOut:
    _known_rig(ctx, rig_id)
    await execute(ctx.service, ReleaseRig(rig_id, who.name))
    return MaintenanceOut(rig_id=rig_id, maintenance=False, by=None, since=None, note="")


def _detail(text: str) -> JsonValue:
    try:
        value: JsonValue = json.loads(text)
    except ValueError:
        return text
    return value


@router.get("/audit", response_model=AuditList, summary="Who changed what, newest first")
async def get_audit(
    ctx: Ctx,
    _: Reader,
    from_: FromQuery = None,
    to: ToQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditList:
    now_s = ctx.service.clock.now_s()
    lo, hi = span(from_, to, now_s - 30 * DAY_S, now_s + 1.0)
    rows = await asyncio.to_thread(ctx.service.stores.audit.query, lo, hi, limit, action)
    return AuditList(
        entries=[
            AuditOut(
                id=e.entry_id,
                at=to_dt(e.at_s),
                actor=e.actor,
                action=e.action,
                subject=e.subject,
                detail=_detail(e.detail),
            )
            for e in rows
        ]
    )


@router.get("/alerts", response_model=AlertList, summary="Active alerts and history")
async def get_alerts(
    ctx: Ctx,
    _: Reader,
    from_: FromQuery = None,
    to: ToQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertList:
    view = ctx.alerts
    if view is None:
        return AlertList(enabled=False, active=[], history=[])
    now_s = ctx.service.clock.now_s()
    lo, hi = span(from_, to, now_s - 7 * DAY_S, now_s + 1.0)
    history = await asyncio.to_thread(view.history, lo, hi, limit)
    return AlertList(
        enabled=True,
        active=[AlertOut.of(a) for a in view.active()],
        history=[AlertOut.of(a) for a in history],
    )


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=AlertOut,
    responses=NOT_FOUND,
    summary="Acknowledge an alert",
)
async def ack_alert(ctx: Ctx, who: OperatorUser, alert_id: str) -> AlertOut:
    view = ctx.alerts
    if view is None:
        raise ApiError(404, "alerting is not enabled in this daemon")
    before = next((a for a in view.active() if a.alert_id == alert_id), None)
    already = before is not None and before.acknowledged_by is not None
    alert = view.acknowledge(alert_id, who.name)
    if not already and alert.acknowledged_by == who.name:
        ctx.service.stores.audit.record(
            ctx.service.clock.now_s(),
            who.name,
            "alert.ack",
            alert_id,
            json.dumps({"rule": alert.rule, "acknowledged_at_s": alert.acknowledged_at_s}),
        )
    return AlertOut.of(alert)
