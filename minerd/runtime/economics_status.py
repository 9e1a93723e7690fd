"""What the API shows of price-aware dispatch (no control imports: the api reads this)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PriceSlot:
    """An energy price set for [start_s, end_s), site currency per MWh."""

    start_s: float
    end_s: float
    price_per_mwh: float


@dataclass(frozen=True)
class EconomicsStatus:
    """Economics as of the last control cycle. Money is in `currency` per hour at the
    current rates, for what the rigs draw and hash now."""

    enabled: bool
    state: str  # off, active, stale, no-price, use-every-kw
    reason: str
    currency: str = "USD"
    use_every_kw: bool = False
    energy_price_per_mwh: float | None = None
    hashprice_usd_per_th_day: float | None = None
    hashprice_as_of_s: float | None = None
    hashprice_fresh: bool = False
    feed_error: str = ""
    breakeven_j_per_th: float | None = None  # at the current rates
    max_j_per_th: float | None = None  # the filter the planner got (stale: the last one)
    revenue_per_h: float | None = None
    energy_cost_per_h: float | None = None
    margin_per_h: float | None = None
    models_off: tuple[str, ...] = ()  # rig models with no point worth running
