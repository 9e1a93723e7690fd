"""Price-aware dispatch at run time: rates now -> the planner's J/TH filter, and the status.

The control cycle asks `max_j_per_th(now_s)` once per cycle; the API reads `status()`.
Energy prices come from the tariff (config) and from price slots set through the API
(kept in the state store, so a restart keeps them); the hashprice from the feed or a fixed
value. The decision rules themselves are control.economics.decide (pure).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from minerd.control.economics import (
    Decision,
    EconomicsState,
    PriceInterval,
    Rates,
    Tariff,
    decide,
    hourly,
    models_off,
)
from minerd.errors import StorageError
from minerd.model import RigModel
from minerd.runtime.economics_status import (
    STATE_PRICES,
    EconomicsStatus,
    PriceSlot,
    merge_slots,
    slots_from_json,
    slots_to_json,
)
from minerd.runtime.hashprice_feed import HashpriceFeed
from minerd.storage.state import StateStore

log = logging.getLogger("minerd.economics")


@dataclass(frozen=True)
class EconomicsConfig:
    tariff: Tariff = field(default_factory=Tariff)
    currency: str = "USD"
    currency_per_usd: float = 1.0
    pool_fee_fraction: float = 0.0
    use_every_kw: bool = False
    fixed_hashprice_usd_per_th_day: float | None = None  # instead of a feed


class Economics:
    def __init__(
        self,
        config: EconomicsConfig,
        models: Iterable[RigModel],
        *,
        feed: HashpriceFeed | None = None,
        state: StateStore | None = None,
    ) -> None:
        self.config = config
        self.feed = feed
        self._state = state
        self._models = tuple({m.name: m for m in models}.values())
        self._slots: tuple[PriceInterval, ...] = ()
        self.decision = Decision(EconomicsState.OFF, None, None, "not evaluated yet")
        self._last_filter: Decision | None = None
        self._rates: Rates | None = None
        self._fresh = False
        self._logged: tuple[EconomicsState, float | None] | None = None

    # ------------------------------------------------------------ prices set through the API

    def restore(self) -> None:
        """Price slots from the state store (a failing store: none, logged)."""
        if self._state is None:
            return
        try:
            raw = self._state.get(STATE_PRICES, [])
        except StorageError as e:
            log.warning("price slots not restored: %s", e)
            return
        self.use_slots(slots_from_json(raw))

    def use_slots(self, slots: Sequence[PriceSlot]) -> None:
        self._slots = tuple(PriceInterval(s.start_s, s.end_s, s.price_per_mwh) for s in slots)

    def set_prices(self, slots: Sequence[PriceSlot], now_s: float) -> int:
        """Merge and store slots without the command layer (tools, tests); the API goes
        through runtime.price_commands. Returns how many are kept; StorageError: none."""
        merged = merge_slots(self.price_slots(), slots, now_s)
        if self._state is not None:
            self._state.set(STATE_PRICES, slots_to_json(merged))
        self.use_slots(merged)
        return len(merged)

    def price_slots(self) -> tuple[PriceSlot, ...]:
        return tuple(PriceSlot(s.start_s, s.end_s, s.price_per_mwh) for s in self._slots)

    # ------------------------------------------------------------ per cycle

    def max_j_per_th(self, now_s: float, prepaid: bool = False) -> float | None:
        """The planner's filter this cycle (None: none). Logs each change of decision.
        prepaid: an energy award covers now (its energy is paid: nothing sleeps for price).

        Called by the control cycle: it never raises; on a bug the last decision holds."""
        try:
            return self._decide(now_s, prepaid)
        except Exception:
            log.exception("economics failed: the last decision stays in force")
            return self.decision.max_j_per_th

    def _decide(self, now_s: float, prepaid: bool) -> float | None:
        cfg = self.config
        price = cfg.tariff.price_at(now_s, self._slots)
        hashprice, fresh = self._hashprice(now_s)
        self._fresh = fresh
        if hashprice is None:
            self._rates = None
            why = "no hashprice received yet" + (
                f" ({self.feed.error})" if self.feed is not None and self.feed.error else ""
            )
            missing = EconomicsState.OFF
        elif price is None:
            self._rates = None
            why, missing = "no energy price for this hour", EconomicsState.NO_PRICE
        else:
            self._rates = Rates(price, hashprice, cfg.currency_per_usd, cfg.pool_fee_fraction)
            why, missing = "", EconomicsState.OFF
        self.decision = decide(
            rates=self._rates,
            hashprice_fresh=fresh,
            use_every_kw=cfg.use_every_kw,
            last=self._last_filter,
            missing=missing,
            why_missing=why,
            prepaid=prepaid,
        )
        if self.decision.state in (EconomicsState.ACTIVE, EconomicsState.STALE):
            self._last_filter = self.decision  # what "stale" keeps, across award hours
        self._log_change()
        return self.decision.max_j_per_th

    def _hashprice(self, now_s: float) -> tuple[float | None, bool]:
        if self.config.fixed_hashprice_usd_per_th_day is not None:
            return self.config.fixed_hashprice_usd_per_th_day, True
        if self.feed is None or self.feed.last is None:
            return None, False
        return self.feed.last.usd_per_th_day, self.feed.fresh(now_s)

    def _log_change(self) -> None:
        d = self.decision
        key = (d.state, None if d.max_j_per_th is None else round(d.max_j_per_th, 1))
        if key == self._logged:
            return
        self._logged = key
        off = models_off(self._models, d.max_j_per_th)
        log.info(
            "economics %s: %s%s",
            d.state.value,
            d.reason,
            f"; asleep for price: {', '.join(off)}" if off else "",
        )

    # ------------------------------------------------------------ for the API

    def status(self, power_w: float, hashrate_ths: float) -> EconomicsStatus:
        """As of the last cycle; money at the current rates for this draw and hashrate."""
        d = self.decision
        rates = self._rates
        feed = self.feed
        money = hourly(power_w, hashrate_ths, rates) if rates is not None else None
        last = feed.last if feed is not None else None
        hashprice = (
            self.config.fixed_hashprice_usd_per_th_day
            if self.config.fixed_hashprice_usd_per_th_day is not None
            else (last.usd_per_th_day if last is not None else None)
        )
        breakeven = d.breakeven_j_per_th
        return EconomicsStatus(
            enabled=True,
            state=d.state.value,
            reason=d.reason,
            currency=self.config.currency,
            use_every_kw=self.config.use_every_kw,
            energy_price_per_mwh=rates.energy_price_per_mwh if rates is not None else None,
            hashprice_usd_per_th_day=hashprice,
            hashprice_as_of_s=last.as_of_s if last is not None else None,
            hashprice_fresh=self._fresh,
            feed_error=feed.error if feed is not None else "",
            breakeven_j_per_th=None if breakeven is None or math.isinf(breakeven) else breakeven,
            max_j_per_th=d.max_j_per_th,
            revenue_per_h=money.revenue_per_h if money is not None else None,
            energy_cost_per_h=money.energy_cost_per_h if money is not None else None,
            margin_per_h=money.margin_per_h if money is not None else None,
            models_off=models_off(self._models, d.max_j_per_th),
        )


DISABLED = EconomicsStatus(enabled=False, state="off", reason="[economics] enabled = false")
