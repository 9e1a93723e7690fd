"""The hourly settlement report: per interval, energy awarded against energy imported.

Records are closed by the site (control.settlement) at each interval's end; the award is
joined at query time, so an award entered after its hour still shows against it.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from minerd.api.context import AUTH_RESPONSES, ComplianceReader, Ctx
from minerd.api.params import DAY_S, FromQuery, ToQuery, span
from minerd.api.times import iso, to_dt
from minerd.storage import Stores
from minerd.storage.awards import awarded_in

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)


class SettlementOut(BaseModel):
    interval_start: datetime
    interval_end: datetime
    interval_s: float
    awarded_mwh: float | None  # null: no award for the interval
    imported_mwh: float
    deviation_mwh: float | None  # imported - awarded
    deviation_pct: float | None  # of the award
    peak_kw: float
    seconds_over: float  # above the power limit in force
    energy_source: Literal["register", "integrated"]  # the meter's register, or its power
    covered_s: float  # seconds with fresh grid-meter data
    award_id: str | None
    note: str


class SettlementSummary(BaseModel):
    intervals: int
    awarded_mwh: float
    imported_mwh: float  # over the intervals with an award
    deviation_mwh: float
    intervals_over: int  # imported above the award
    intervals_under_99: int  # imported under 99 % of the award
    seconds_over: float


class SettlementReport(BaseModel):
    site: str
    timezone: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    summary: SettlementSummary
    records: list[SettlementOut]


def joined(stores: Stores, from_s: float, to_s: float) -> list[SettlementOut]:
    """Closed records in the span with the award in force for each (worker thread)."""
    records = stores.awards.settlements(from_s, to_s)
    awards = stores.awards.in_range(from_s, to_s + DAY_S)
    out = []
    for r in records:
        now_kwh, now_id = awarded_in(awards, r.interval_start_s, r.interval_end_s)
        awarded = now_kwh if now_kwh is not None else r.awarded_kwh
        dev = None if awarded is None else r.imported_kwh - awarded
        pct = None if dev is None or not awarded else 100.0 * dev / awarded
        register = r.register_kwh is not None and r.imported_kwh == r.register_kwh
        out.append(
            SettlementOut(
                interval_start=to_dt(r.interval_start_s),
                interval_end=to_dt(r.interval_end_s),
                interval_s=r.interval_s,
                awarded_mwh=None if awarded is None else awarded / 1000.0,
                imported_mwh=r.imported_kwh / 1000.0,
                deviation_mwh=None if dev is None else dev / 1000.0,
                deviation_pct=None if pct is None else round(pct, 4),
                peak_kw=r.peak_kw,
                seconds_over=r.seconds_over,
                energy_source="register" if register else "integrated",
                covered_s=r.covered_s,
                award_id=now_id if now_kwh is not None else r.award_id,
                note=r.note,
            )
        )
    return out


def summary_of(records: list[SettlementOut]) -> SettlementSummary:
    with_award = [r for r in records if r.awarded_mwh is not None]
    awarded = sum(r.awarded_mwh or 0.0 for r in with_award)
    imported = sum(r.imported_mwh for r in with_award)
    return SettlementSummary(
        intervals=len(records),
        awarded_mwh=awarded,
        imported_mwh=imported,
        deviation_mwh=imported - awarded,
        intervals_over=sum(1 for r in with_award if (r.deviation_mwh or 0.0) > 0.0),
        intervals_under_99=sum(
            1 for r in with_award if r.imported_mwh < 0.99 * (r.awarded_mwh or 0.0)
        ),
        seconds_over=sum(r.seconds_over for r in records),
    )


CSV_COLUMNS = (
    "interval_start",
    "interval_end",
    "awarded_mwh",
    "imported_mwh",
    "deviation_mwh",
    "deviation_pct",
    "peak_kw",
    "seconds_over",
    "energy_source",
    "covered_s",
    "award_id",
    "note",
)


def _num(x: float | None, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def to_csv(records: list[SettlementOut]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in records:
        w.writerow(
            [
                iso(r.interval_start.timestamp()),
                iso(r.interval_end.timestamp()),
                _num(r.awarded_mwh, ".6f"),
                _num(r.imported_mwh, ".6f"),
                _num(r.deviation_mwh, ".6f"),
                _num(r.deviation_pct, ".3f"),
                _num(r.peak_kw, ".1f"),
                _num(r.seconds_over, ".1f"),
                r.energy_source,
                _num(r.covered_s, ".0f"),
                r.award_id or "",
                r.note,
            ]
        )
    return buf.getvalue()


@router.get(
    "/settlement",
    response_model=SettlementReport,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV with Accept: text/csv or format=csv",
        }
    },
    summary="Per-interval settlement: awarded against imported energy (grid, operator)",
)
async def get_settlement(
    request: Request,
    ctx: Ctx,
    _: ComplianceReader,
    from_: FromQuery = None,
    to: ToQuery = None,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> SettlementReport | Response:
    now_s = ctx.service.clock.now_s()
    from_s, to_s = span(from_, to, now_s - DAY_S, now_s)
    records = await asyncio.to_thread(joined, ctx.service.stores, from_s, to_s)
    wants_csv = format == "csv" or (
        format is None and "text/csv" in request.headers.get("accept", "")
    )
    if wants_csv:
        return Response(to_csv(records), media_type="text/csv; charset=utf-8")
    return SettlementReport(
        site=ctx.service.site_name,
        timezone=ctx.timezone,
        from_=to_dt(from_s),
        to=to_dt(to_s),
        summary=summary_of(records),
        records=records,
    )
