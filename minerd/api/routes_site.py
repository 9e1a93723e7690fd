"""Site, rigs and meters: read from the latest snapshot the controller used."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Query

from minerd.api.context import (
    AUTH_RESPONSES,
    NOT_FOUND,
    ApiContext,
    Ctx,
    Reader,
    SiteReader,
)
from minerd.api.params import FromQuery, ToQuery, span
from minerd.api.problems import ApiError
from minerd.api.schemas import (
    FailsafeOut,
    HistoryPointOut,
    LimitOut,
    MeterList,
    MeterOut,
    RigDetail,
    RigOut,
    RigPage,
    ShedCapacityOut,
    ShedClassOut,
    SiteHistoryOut,
    SiteOut,
    finite,
)
from minerd.api.schemas_awards import AwardNowOut, EnergyOut
from minerd.api.schemas_economics import EconomicsOut
from minerd.api.times import opt_dt, to_dt
from minerd.errors import StorageError
from minerd.model import EffectiveLimit, MeterStatus, RigState, RigStatus, ShedCapacity
from minerd.runtime.service import SiteStatus

# Limit origins (minerd.control.quota names them; api may not import control).
ORIGIN_FAILSAFE = "failsafe"
ORIGIN_CONTRACTED = "contracted"

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)


@router.get("/site", response_model=SiteOut, summary="The site at a glance")
async def get_site(ctx: Ctx, who: SiteReader) -> SiteOut:
    st = ctx.service.status()
    by_state = {state: count for state, count in st.rigs_by_state}
    grid_read = ctx.service.snapshot().grid_read
    in_force = _in_force(ctx, st)
    return SiteOut(
        site=st.site,
        taken_at=to_dt(st.taken_at_s),
        timezone=ctx.timezone,
        started_at=opt_dt(st.started_at_s),
        role=who.role.value,
        grid_import_kw=st.grid_import_kw if grid_read else None,
        grid_fresh=st.grid_fresh,
        limit=LimitOut.of(_held(st.limit)),
        in_force=LimitOut.of(in_force),
        quota_source=in_force.source,
        contracted_limit_kw=st.contracted_limit_kw,
        failsafe_limit_kw=st.failsafe_limit_kw,
        operator_cap_kw=st.operator_cap_kw,
        rig_budget_kw=st.rig_budget_kw,
        planned_power_kw=st.planned_power_kw,
        rig_power_kw=st.rig_power_kw,
        commandable_power_kw=round(st.commandable_power_kw, 3),
        commandable_share=round(st.commandable_share, 4),
        hashrate_ths=st.hashrate_ths,
        rigs_by_state=by_state,
        rigs_total=sum(by_state.values()),
        failsafe=FailsafeOut(active=st.failsafe, reason=st.failsafe_reason),
        cycle=st.cycle,
        interval_utilization=(
            round(st.interval_utilization, 5) if st.interval_utilization is not None else None
        ),
        interval_under_reason=st.interval_under_reason,
        shed_capacity=shed_out(st.shed) if st.shed is not None else None,
        award=(
            AwardNowOut.of(ctx.awards.now(ctx.service.clock.now_s()))
            if ctx.awards is not None
            else None
        ),
        economics=(
            EconomicsOut.of(ctx.economics.status(st.rig_power_kw * 1000.0, st.hashrate_ths))
            if ctx.economics is not None
            else None
        ),
        energy=_energy(ctx),
    )


def _energy(ctx: ApiContext) -> EnergyOut | None:
    now = ctx.energy.now() if ctx.energy is not None else None
    return EnergyOut.of(now) if now is not None else None


def _within(cap: ShedCapacity, values_w: tuple[float, ...], horizon_s: float) -> float:
    """Site import kW of `values_w` (rig W per horizon) at horizon_s (0 if not computed)."""
    for h, w in zip(cap.horizons_s, values_w, strict=True):
        if h == horizon_s:
            return round(w * cap.site_factor / 1000.0, 3)
    return 0.0


def shed_out(cap: ShedCapacity) -> ShedCapacityOut:
    total = cap.rig_w
    return ShedCapacityOut(
        within_5s_kw=_within(cap, total, 5.0),
        within_60s_kw=_within(cap, total, 60.0),
        within_600s_kw=_within(cap, total, 600.0),
        site_factor=round(cap.site_factor, 6),
        classes=[
            ShedClassOut(
                family=c.family.value,
                model=c.model,
                rigs=c.rigs,
                power_kw=round(c.power_w / 1000.0, 3),
                within_5s_kw=_within(cap, c.shed_w, 5.0),
                within_60s_kw=_within(cap, c.shed_w, 60.0),
                within_600s_kw=_within(cap, c.shed_w, 600.0),
            )
            for c in cap.classes
        ],
    )


def _held(limit: EffectiveLimit) -> EffectiveLimit:
    """The limit the site is held to. Under the fail-safe no quota is what holds it: the
    quota (if any) is reported in `in_force`, never as the fail-safe's origin."""
    if limit.origin == ORIGIN_FAILSAFE:
        return EffectiveLimit(limit.limit_kw, ORIGIN_FAILSAFE, None)
    return limit


def _in_force(ctx: ApiContext, st: SiteStatus) -> EffectiveLimit:
    """What the quotas, the operator cap and the contract set now, the fail-safe aside."""
    try:
        steps = ctx.service.limit_timeline(st.taken_at_s, st.taken_at_s + 1.0)
    except StorageError:
        steps = []  # the store is failing: say what the controller holds, if it is not
    if steps:
        return steps[0][2]
    if st.limit.origin != ORIGIN_FAILSAFE:
        return st.limit
    return EffectiveLimit(st.contracted_limit_kw, ORIGIN_CONTRACTED, None)


@router.get(
    "/site/history", response_model=SiteHistoryOut, summary="The site's last hour, every ~10 s"
)
async def get_site_history(
    ctx: Ctx, _: SiteReader, from_: FromQuery = None, to: ToQuery = None
) -> SiteHistoryOut:
    now_s = ctx.service.clock.now_s()
    from_s, to_s = span(from_, to, now_s - 3600.0, now_s)
    return SiteHistoryOut(
        points=[
            HistoryPointOut(
                at=to_dt(p.at_s),
                grid_import_kw=finite(p.grid_import_kw),
                limit_kw=finite(p.limit_kw),
                rig_budget_kw=finite(p.rig_budget_kw),
                hashrate_ths=finite(p.hashrate_ths),
            )
            for p in ctx.service.site_history(from_s, to_s)
        ]
    )


def rig_out(r: RigStatus, now_s: float) -> RigOut:
    rd = r.reading
    read = rd.taken_at_s > 0
    return RigOut(
        id=r.rig_id,
        model=r.model,
        container=r.container,
        host=r.host,
        port=r.port,
        protocol=r.protocol.value,
        state=rd.state,
        reason=rd.reason,
        fresh=r.fresh,
        maintenance=r.maintenance,
        unresponsive=r.unresponsive,
        power_w=finite(rd.power_w),
        power_estimated=rd.power_estimated,
        hashrate_ths=finite(rd.hashrate_ths),
        chip_temp_max_c=finite(rd.chip_temp_max_c),
        fan_rpm_min=rd.fan_rpm_min,
        boards_ok=rd.boards_ok,
        boards_total=rd.boards_total,
        profile=rd.profile,
        power_limit_w=finite(rd.power_limit_w),
        read_at=to_dt(rd.taken_at_s) if read else None,
        age_s=finite(now_s - rd.taken_at_s) if read else None,
    )


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("o") or not text[1:].isdigit():
            raise ValueError(text)
        return int(text[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(422, "cursor: not a cursor this API issued", "cursor") from None


@router.get("/rigs", response_model=RigPage, summary="Rigs, paged and filtered")
async def list_rigs(
    ctx: Ctx,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    state: RigState | None = None,
    container: Annotated[str | None, Query(max_length=200)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
) -> RigPage:
    start = _decode_cursor(cursor) if cursor else offset
    snap = ctx.service.snapshot()
    rigs = [
        r
        for r in snap.rigs
        if (state is None or r.reading.state is state)
        and (container is None or r.container == container)
        and (model is None or r.model == model)
    ]
    page = rigs[start : start + limit]
    end = start + len(page)
    return RigPage(
        total=len(rigs),
        offset=start,
        limit=limit,
        next_cursor=_encode_cursor(end) if end < len(rigs) else None,
        rigs=[rig_out(r, snap.taken_at_s) for r in page],
    )


@router.get("/rigs/{rig_id}", response_model=RigDetail, responses=NOT_FOUND, summary="One rig")
async def get_rig(ctx: Ctx, _: Reader, rig_id: str) -> RigDetail:
    snap = ctx.service.snapshot()
    for r in snap.rigs:
        if r.rig_id == rig_id:
            pinned = {e.rig_id: e for e in ctx.service.stores.maintenance.all()}.get(rig_id)
            return RigDetail(
                **rig_out(r, snap.taken_at_s).model_dump(),
                maintenance_by=pinned.by if pinned else None,
                maintenance_since=opt_dt(pinned.since_s if pinned else None),
            )
    raise ApiError(404, f"no rig {rig_id!r}")


def meter_out(m: MeterStatus, endpoint: str) -> MeterOut:
    rd = m.reading

    def kw(w: float | None) -> float | None:
        return finite(None if w is None else w / 1000.0)

    return MeterOut(
        name=m.meter,
        role=m.role.value,
        container=m.container,
        endpoint=endpoint,
        fresh=m.fresh,
        age_s=finite(m.age_s),
        error=m.error,
        power_kw=kw(rd.power_w if rd else None),
        power_l1_kw=kw(rd.power_l1_w if rd else None),
        power_l2_kw=kw(rd.power_l2_w if rd else None),
        power_l3_kw=kw(rd.power_l3_w if rd else None),
        voltage_l1_v=finite(rd.voltage_l1_v if rd else None),
        voltage_l2_v=finite(rd.voltage_l2_v if rd else None),
        voltage_l3_v=finite(rd.voltage_l3_v if rd else None),
        energy_import_kwh=finite(rd.energy_import_kwh if rd else None),
        read_at=to_dt(rd.taken_at_s) if rd else None,
    )


@router.get("/meters", response_model=MeterList, summary="Every meter and its last reading")
async def list_meters(ctx: Ctx, _: Reader) -> MeterList:
    endpoints = {m.name: m.endpoint for m in ctx.service.meter_infos}
    snap = ctx.service.snapshot()
    return MeterList(meters=[meter_out(m, endpoints.get(m.meter, "")) for m in snap.meters])
