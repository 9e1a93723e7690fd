"""Price-aware dispatch: what a rig earns against what its energy costs (pure).

A rig at an operating point earns hashprice x (1 - pool fee) x TH/s per day and costs
energy price x kW x 24 h per day. Both scale with hashrate, so a point is worth running
exactly when its J/TH (W per TH/s) is at most the breakeven:

    breakeven_j_per_th = hashprice_usd_per_th_day x (1 - fee) / (price_usd_per_mwh x 24e-6)

(1 W for a day is 24e-6 MWh.) The planner drops awake points above it, and steps up whose
extra watts cost more than their extra hashrate earns (options.worth_running); sleep stays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from minerd.control.options import awake_points
from minerd.model import RigModel

MWH_PER_W_DAY = 24e-6  # 1 W for 24 h
_HOURS_PER_DAY = 24.0


@dataclass(frozen=True)
class Rates:
    """What energy costs and hashing earns now.

    energy_price_per_mwh is in the site currency; currency_per_usd converts the USD
    hashprice into it (1.0 when the site pays in USD).
    """

    energy_price_per_mwh: float
    hashprice_usd_per_th_day: float
    currency_per_usd: float = 1.0
    pool_fee_fraction: float = 0.0

    @property
    def revenue_per_th_day(self) -> float:
        """Site currency earned per TH/s per day, after the pool fee."""
        return (
            self.hashprice_usd_per_th_day * (1.0 - self.pool_fee_fraction) * (self.currency_per_usd)
        )


def breakeven_j_per_th(rates: Rates) -> float:
    """Highest J/TH that still earns at least its energy cost (inf: energy is free or paid)."""
    if rates.energy_price_per_mwh <= 0.0:
        return math.inf
    return max(0.0, rates.revenue_per_th_day) / (rates.energy_price_per_mwh * MWH_PER_W_DAY)


@dataclass(frozen=True)
class Hourly:
    """Money per hour at some power and hashrate, in the site currency."""

    revenue_per_h: float
    energy_cost_per_h: float

    @property
    def margin_per_h(self) -> float:
        return self.revenue_per_h - self.energy_cost_per_h


def hourly(power_w: float, hashrate_ths: float, rates: Rates) -> Hourly:
    revenue = rates.revenue_per_th_day * max(0.0, hashrate_ths) / _HOURS_PER_DAY
    cost = rates.energy_price_per_mwh * max(0.0, power_w) / 1e6
    return Hourly(revenue, cost)


def point_worth_running(power_w: float, hashrate_ths: float, max_j_per_th: float) -> bool:
    """An awake point earns at least its energy cost at this breakeven."""
    return hashrate_ths > 0.0 and power_w <= max_j_per_th * hashrate_ths * (1.0 + 1e-12)


def best_j_per_th(model: RigModel) -> float:
    """The model's most efficient awake point the planner may use, J/TH (inf: none hashes)."""
    pts = awake_points(model)
    return min((p.power_w / p.hashrate_ths for p in pts if p.hashrate_ths > 0), default=math.inf)


def models_off(models: Iterable[RigModel], max_j_per_th: float | None) -> tuple[str, ...]:
    """Names of models with no awake point worth running (they sleep for economics)."""
    if max_j_per_th is None:
        return ()
    return tuple(sorted({m.name for m in models if best_j_per_th(m) > max_j_per_th}))


# ------------------------------------------------------------------ energy price


@dataclass(frozen=True)
class TariffRule:
    """A price for some hours of some weekdays, site local time.

    weekdays: 0 Monday .. 6 Sunday. Hours [from_hour, to_hour), 0..24; from > to wraps
    past midnight (22 -> 6 is the night), and such a span belongs to the weekday it starts.
    """

    price_per_mwh: float
    from_hour: int = 0
    to_hour: int = 24
    weekdays: frozenset[int] = frozenset(range(7))

    def covers(self, weekday: int, hour: int) -> bool:
        if self.from_hour <= self.to_hour:
            return weekday in self.weekdays and self.from_hour <= hour < self.to_hour
        if hour >= self.from_hour:
            return weekday in self.weekdays
        return (weekday - 1) % 7 in self.weekdays and hour < self.to_hour


@dataclass(frozen=True)
class PriceInterval:
    """A price set for [start_s, end_s) (through the API): wins over the tariff."""

    start_s: float
    end_s: float
    price_per_mwh: float


@dataclass(frozen=True)
class Tariff:
    """The energy price: set intervals first, then the first rule that covers the hour,
    then the flat default (None: no price known)."""

    timezone: str = "UTC"
    rules: tuple[TariffRule, ...] = ()
    default_per_mwh: float | None = None

    def price_at(self, t_s: float, intervals: Iterable[PriceInterval] = ()) -> float | None:
        set_price = None
        for iv in intervals:
            if iv.start_s <= t_s < iv.end_s:
                set_price = iv.price_per_mwh  # the last one given wins
        if set_price is not None:
            return set_price
        local = datetime.fromtimestamp(t_s, ZoneInfo(self.timezone))
        for rule in self.rules:
            if rule.covers(local.weekday(), local.hour):
                return rule.price_per_mwh
        return self.default_per_mwh


# ------------------------------------------------------------------ the decision


class EconomicsState(StrEnum):
    OFF = "off"  # not configured, or no hashprice ever seen: the planner is not filtered
    ACTIVE = "active"  # fresh hashprice and a price: breakeven applied
    STALE = "stale"  # hashprice too old: the last breakeven stays in force
    NO_PRICE = "no-price"  # no energy price for this hour: not filtered
    USE_EVERY_KW = "use-every-kw"  # the operator's override: never sleeps a rig for price
    PREPAID = "prepaid"  # an energy award covers the interval: its energy is paid already


@dataclass(frozen=True)
class Decision:
    """What the planner gets (max_j_per_th) and why."""

    state: EconomicsState
    max_j_per_th: float | None  # None: no economic filter
    breakeven_j_per_th: float | None  # at current rates (None when not known)
    reason: str


def decide(
    *,
    rates: Rates | None,
    hashprice_fresh: bool,
    use_every_kw: bool,
    last: Decision | None,
    missing: EconomicsState = EconomicsState.OFF,
    why_missing: str = "no hashprice received yet",
    prepaid: bool = False,
) -> Decision:
    """The breakeven filter for this cycle.

    rates is None when no hashprice was ever received or no energy price is known (then
    `missing` says which): no filter. A stale hashprice keeps the last applied filter: it
    never stops every rig, nor wakes every rig. prepaid: an energy award covers now; its
    energy is paid in advance (unused, it is lost), so nothing sleeps for price.
    """
    if prepaid:
        breakeven = breakeven_j_per_th(rates) if rates is not None else None
        why = "energy award in force: its energy is paid in advance"
        return Decision(EconomicsState.PREPAID, None, breakeven, why)
    if rates is None:
        return Decision(missing, None, None, why_missing)
    breakeven = breakeven_j_per_th(rates)
    if use_every_kw:
        why = "use_every_kw: rigs run whatever the price"
        return Decision(EconomicsState.USE_EVERY_KW, None, breakeven, why)
    if not hashprice_fresh:
        kept = last.max_j_per_th if last is not None else None
        if kept is None:
            return Decision(
                EconomicsState.STALE, None, breakeven, "hashprice stale, no earlier decision"
            )
        why = f"hashprice stale: last breakeven {kept:.1f} J/TH kept"
        return Decision(EconomicsState.STALE, kept, breakeven, why)
    limit = None if math.isinf(breakeven) else breakeven
    why = f"breakeven {breakeven:.1f} J/TH" if limit is not None else "energy free: no limit"
    return Decision(EconomicsState.ACTIVE, limit, breakeven, why)
