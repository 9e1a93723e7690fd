"""Bodies of the economics API: prices per interval in, economics status out (issue 15.4).

Apart from api.schemas, which imports EconomicsOut for /site (so nothing is imported back)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from minerd.api.times import IsoTime, opt_dt
from minerd.runtime.economics_status import MAX_SLOTS, EconomicsStatus


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


PricePerMwh = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False, strict=True)]


class PriceIn(BaseModel):
    start: IsoTime
    end: IsoTime
    price_per_mwh: PricePerMwh  # in [economics] currency

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if isinstance(start, datetime) and end <= start:
            raise ValueError("must be after start")
        return end


class PricesIn(BaseModel):
    prices: Annotated[list[PriceIn], Field(min_length=1, max_length=MAX_SLOTS)]


class PriceOut(BaseModel):
    start: datetime
    end: datetime
    price_per_mwh: float


class EconomicsOut(BaseModel):
    """Price-aware dispatch now. Money per hour in `currency`, at the current rates, for
    what the rigs draw and hash now; null where a rate is not known."""

    enabled: bool
    state: str  # off, active, stale, no-price, use-every-kw, prepaid
    reason: str
    currency: str
    use_every_kw: bool
    energy_price_per_mwh: float | None
    hashprice_usd_per_th_day: float | None
    hashprice_as_of: datetime | None
    hashprice_fresh: bool
    feed_error: str
    breakeven_j_per_th: float | None
    max_j_per_th: float | None  # the planner's filter in force (stale: the last one)
    revenue_per_h: float | None
    energy_cost_per_h: float | None
    margin_per_h: float | None
    models_off: list[str]  # rig models with no point worth running: asleep for price

    @classmethod
    def of(cls, st: EconomicsStatus) -> EconomicsOut:
        return cls(
            enabled=st.enabled,
            state=st.state,
            reason=st.reason,
            currency=st.currency,
            use_every_kw=st.use_every_kw,
            energy_price_per_mwh=_finite(st.energy_price_per_mwh),
            hashprice_usd_per_th_day=_finite(st.hashprice_usd_per_th_day),
            hashprice_as_of=opt_dt(st.hashprice_as_of_s),
            hashprice_fresh=st.hashprice_fresh,
            feed_error=st.feed_error,
            breakeven_j_per_th=_finite(st.breakeven_j_per_th),
            max_j_per_th=_finite(st.max_j_per_th),
            revenue_per_h=_finite(st.revenue_per_h),
            energy_cost_per_h=_finite(st.energy_cost_per_h),
            margin_per_h=_finite(st.margin_per_h),
            models_off=list(st.models_off),
        )


class PricesOut(BaseModel):
    prices: list[PriceOut]  # set slots in force or to come; the tariff covers the rest
    economics: EconomicsOut
