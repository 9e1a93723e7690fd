"""Energy prices per interval (POST/GET /api/v1/prices): operators set them, and they win
over the [economics] tariff for their interval."""

from __future__ import annotations

from fastapi import APIRouter

from minerd.api.context import AUTH_RESPONSES, Ctx, OperatorUser, Reader
from minerd.api.problems import ApiError, ErrorBody
from minerd.api.schemas_economics import EconomicsOut, PriceOut, PricesIn, PricesOut
from minerd.api.times import to_dt, to_s
from minerd.runtime.commands import execute
from minerd.runtime.economics_status import PriceSlot
from minerd.runtime.price_commands import SetPrices

router = APIRouter(prefix="/api/v1", responses=AUTH_RESPONSES)


def _out(ctx: Ctx, slots: tuple[PriceSlot, ...]) -> PricesOut:
    econ = ctx.economics
    assert econ is not None
    st = ctx.service.status()
    return PricesOut(
        prices=[
            PriceOut(start=to_dt(s.start_s), end=to_dt(s.end_s), price_per_mwh=s.price_per_mwh)
            for s in slots
        ],
        economics=EconomicsOut.of(econ.status(st.rig_power_kw * 1000.0, st.hashrate_ths)),
    )


def _enabled(ctx: Ctx) -> None:
    if ctx.economics is None:
        raise ApiError(409, "economics is off: set [economics] enabled = true")


OFF: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorBody, "description": "economics is off ([economics] enabled = false)"}
}


@router.get(
    "/prices",
    response_model=PricesOut,
    summary="Energy prices set and economics now",
    responses=OFF,
)
async def get_prices(ctx: Ctx, _: Reader) -> PricesOut:
    _enabled(ctx)
    assert ctx.economics is not None
    return _out(ctx, ctx.economics.price_slots())


@router.post(
    "/prices",
    response_model=PricesOut,
    summary="Set energy prices per interval (they win over the [economics] tariff)",
    responses=OFF,
)
async def post_prices(ctx: Ctx, who: OperatorUser, body: PricesIn) -> PricesOut:
    _enabled(ctx)
    econ = ctx.economics
    assert econ is not None
    slots = tuple(PriceSlot(to_s(p.start), to_s(p.end), p.price_per_mwh) for p in body.prices)
    done = await execute(ctx.service, SetPrices(slots, who.name, econ.use_slots))
    return _out(ctx, done.slots)
