"""Energy awards per settlement interval (day-ahead market): JSON and CSV in, list, withdraw.

The body is parsed by runtime.award_input (the parser the MQTT input and the watched folder
use too) and stored by runtime.commands.PutAwards: the same auth, idempotency and audit as
quotas. A batch with any bad award is refused whole, every problem listed with where it is.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from minerd.api.context import AUTH_RESPONSES, CONFLICT, NOT_FOUND, Ctx, GridUser, SiteReader
from minerd.api.params import DAY_S, FromQuery, ToQuery, span
from minerd.api.problems import ApiError, FieldProblem, error_response
from minerd.api.times import opt_dt, to_dt
from minerd.model import EnergyAward, QuotaSource
from minerd.runtime.award_input import (
    AwardBatch,
    AwardInputError,
    Rules,
    parse_csv_text,
    parse_json_text,
)
from minerd.runtime.commands import PutAwards, WithdrawAward, WithdrawAwards, execute
from minerd.runtime.service import SiteService
from minerd.storage import AwardConflict, AwardsPut

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)

KeyHeader = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


class AwardOut(BaseModel):
    id: str
    interval_start: datetime
    interval_end: datetime
    interval_s: float
    energy_mwh: float
    mean_kw: float  # the award spread evenly over its interval
    source: QuotaSource
    issued_at: datetime
    issued_by: str
    reference: str | None
    withdrawn_at: datetime | None

    @classmethod
    def of(cls, a: EnergyAward) -> AwardOut:
        return cls(
            id=a.award_id,
            interval_start=to_dt(a.start_s),
            interval_end=to_dt(a.end_s),
            interval_s=a.interval_s,
            energy_mwh=a.energy_kwh / 1000.0,
            mean_kw=a.energy_kwh / (a.interval_s / 3600.0),
            source=a.source,
            issued_at=to_dt(a.issued_at_s),
            issued_by=a.issued_by,
            reference=a.reference,
            withdrawn_at=opt_dt(a.withdrawn_at_s),
        )


class AwardsStored(BaseModel):
    created: bool  # false: every award was a repeat of one already stored
    awards: list[AwardOut]  # in the batch's order, as stored
    new: int
    repeated: int
    superseded: list[str]  # ids of awards in force that these replaced
    withdrawn: list[str]  # replace=true: awards in the span not sent again
    notes: list[str] = []


class AwardList(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    timezone: str
    awards: list[AwardOut]


def rules_of(ctx_timezone: str, interval_s: float) -> Rules:
    return Rules(tz=ZoneInfo(ctx_timezone), interval_s=interval_s)


def problems_response(exc: AwardInputError) -> JSONResponse:
    """422 naming every bad line or item (`problems`), the first in `error`."""
    problems = [
        FieldProblem(field=f"{p.where}.{p.field}" if p.where else p.field, error=p.message)
        for p in exc.problems
    ]
    return error_response(422, f"{exc.field}: {exc.message}", exc.field, problems=problems)


def notes_for(service: SiteService, awards: tuple[EnergyAward, ...]) -> list[str]:
    """Awards whose mean power is above the contract (stored as sent, the contract caps), and
    awards for intervals already over."""
    contracted_kw = service.status().contracted_limit_kw
    now_s = service.clock.now_s()
    notes = []
    past = [a for a in awards if a.end_s <= now_s]
    if past:
        notes.append(
            f"{len(past)} award(s) for intervals already over: stored for the settlement "
            "report, nothing to pace"
        )
    for a in awards:
        mean_kw = a.energy_kwh / (a.interval_s / 3600.0)
        if mean_kw > contracted_kw:
            notes.append(
                f"award {a.award_id}: a mean of {mean_kw:g} kW is above the contracted limit "
                f"{contracted_kw:g} kW: the site cannot draw all of it"
            )
    return notes


def stored_body(service: SiteService, out: AwardsPut) -> AwardsStored:
    new = sum(out.created)
    return AwardsStored(
        created=new > 0 or bool(out.withdrawn),
        awards=[AwardOut.of(a) for a in out.awards],
        new=new,
        repeated=len(out.created) - new,
        superseded=[a.award_id for a in out.superseded],
        withdrawn=[a.award_id for a in out.withdrawn],
        notes=notes_for(service, out.awards),
    )


async def _store(
    ctx: Ctx, actor: str, batch: AwardBatch, key: str | None, response: Response
) -> AwardsStored:
    command = PutAwards(batch, actor, QuotaSource.API, key)
    try:
        out = await execute(ctx.service, command)
    except AwardConflict as exc:
        if exc.field != "idempotency_key":
            raise
        message = exc.message.replace("idempotency_key", "Idempotency-Key")
        raise AwardConflict("Idempotency-Key", message) from exc
    body = stored_body(ctx.service, out)
    response.status_code = 201 if body.created else 200
    return body


class AwardIn(BaseModel):
    """One award on the wire (documentation: runtime.award_input checks it)."""

    interval_start: str  # ISO 8601; without an offset: local time in the site's zone
    energy_mwh: float
    interval_s: float | None = None  # default [awards] interval_s
    id: str | None = None  # the sender's id: a repeat with it is answered, not stored again
    reference: str | None = None


_AWARD_SCHEMA = AwardIn.model_json_schema()
_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "array", "items": _AWARD_SCHEMA},
                        {
                            "type": "object",
                            "properties": {
                                "awards": {
                                    "type": "array",
                                    "items": _AWARD_SCHEMA,
                                },
                                "replace": {"type": "boolean", "default": False},
                                "reference": {"type": "string"},
                            },
                            "required": ["awards"],
                        },
                    ]
                }
            }
        },
    }
}
_CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
_STORED = {
    200: {"model": AwardsStored, "description": "every award a repeat of one stored"},
    **CONFLICT,
}


@router.post(
    "/awards",
    status_code=201,
    response_model=AwardsStored,
    responses=_STORED,
    openapi_extra=_JSON_BODY,
    summary="Store energy awards per interval, JSON (grid)",
)
async def post_awards(
    request: Request, ctx: Ctx, who: GridUser, response: Response, key: KeyHeader = None
) -> AwardsStored | JSONResponse:
    try:
        batch = parse_json_text(await request.body(), ctx_rules(ctx))
    except AwardInputError as exc:
        return problems_response(exc)
    return await _store(ctx, who.name, batch, key, response)


@router.post(
    "/awards.csv",
    status_code=201,
    response_model=AwardsStored,
    responses=_STORED,
    openapi_extra=_CSV_BODY,
    summary="Store energy awards per interval, CSV upload (grid)",
)
async def post_awards_csv(
    request: Request,
    ctx: Ctx,
    who: GridUser,
    response: Response,
    key: KeyHeader = None,
    replace: Annotated[bool, Query(description="withdraw awards in the span not sent")] = False,
) -> AwardsStored | JSONResponse:
    try:
        batch = parse_csv_text(await request.body(), ctx_rules(ctx))
    except AwardInputError as exc:
        return problems_response(exc)
    if replace:
        batch = AwardBatch(batch.lines, replace=True)
    return await _store(ctx, who.name, batch, key, response)


@router.get("/awards", response_model=AwardList, summary="Energy awards in force (or history)")
async def list_awards(
    ctx: Ctx,
    _: SiteReader,
    from_: FromQuery = None,
    to: ToQuery = None,
    history: Annotated[bool, Query(description="include replaced and withdrawn")] = False,
) -> AwardList:
    now_s = ctx.service.clock.now_s()
    from_s, to_s = span(from_, to, now_s - DAY_S, now_s + 2 * DAY_S)
    store = ctx.service.stores.awards
    reader = store.history if history else store.in_range
    awards = await asyncio.to_thread(reader, from_s, to_s)
    return AwardList(
        from_=to_dt(from_s),
        to=to_dt(to_s),
        timezone=ctx.timezone,
        awards=[AwardOut.of(a) for a in awards],
    )


@router.get("/awards/{award_id}", response_model=AwardOut, responses=NOT_FOUND)
async def get_award(ctx: Ctx, _: SiteReader, award_id: str) -> AwardOut:
    a = await asyncio.to_thread(ctx.service.stores.awards.get, award_id)
    if a is None:
        raise ApiError(404, f"no award {award_id!r}")
    return AwardOut.of(a)


@router.delete(
    "/awards/{award_id}",
    response_model=AwardOut,
    responses=NOT_FOUND,
    summary="Withdraw one award from now on (grid)",
)
async def delete_award(ctx: Ctx, who: GridUser, award_id: str) -> AwardOut:
    return AwardOut.of(await execute(ctx.service, WithdrawAward(award_id, who.name)))


@router.delete(
    "/awards",
    response_model=AwardList,
    summary="Withdraw every award that starts in [from, to) (grid)",
)
async def delete_awards(
    ctx: Ctx, who: GridUser, from_: FromQuery = None, to: ToQuery = None
) -> AwardList:
    if from_ is None or to is None:
        raise ApiError(422, "from and to are both required to withdraw a span", "from")
    now_s = ctx.service.clock.now_s()
    from_s, to_s = span(from_, to, now_s, now_s + DAY_S)
    gone = await execute(ctx.service, WithdrawAwards(from_s, to_s, who.name))
    return AwardList(
        from_=to_dt(from_s),
        to=to_dt(to_s),
        timezone=ctx.timezone,
        awards=[AwardOut.of(a) for a in gone],
    )


def ctx_rules(ctx: Ctx) -> Rules:
    return rules_of(ctx.timezone, ctx.award_interval_s)
