"""What the API sees of price-aware dispatch: the status, the price slots and their storage
format. No control imports here: the api layer reads this module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from minerd.storage.state import JsonValue

STATE_PRICES = "economics.price_slots"  # [[start_s, end_s, price_per_mwh], ...]
MAX_SLOTS = 10_000  # more than a year of hourly prices


@dataclass(frozen=True)
class PriceSlot:
    """An energy price set for [start_s, end_s), site currency per MWh."""

    start_s: float
    end_s: float
    price_per_mwh: float


def merge_slots(
    old: Sequence[PriceSlot], new: Sequence[PriceSlot], now_s: float
) -> tuple[PriceSlot, ...]:
    """Old then new (where they overlap the one given last wins), ended ones dropped. A
    slot given again moves to the end, so sending the same slots twice changes nothing."""
    again = set(new)
    kept = [s for s in old if s not in again and s.end_s > now_s]
    kept += [s for s in dict.fromkeys(new) if s.end_s > now_s]
    return tuple(kept[-MAX_SLOTS:])


def slots_to_json(slots: Sequence[PriceSlot]) -> JsonValue:
    return [[s.start_s, s.end_s, s.price_per_mwh] for s in slots]


def slots_from_json(raw: JsonValue) -> tuple[PriceSlot, ...]:
    """Slots as stored; anything malformed is skipped (the tariff then applies)."""
    out = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, list) and len(item) == 3:
            nums = [float(v) for v in item if isinstance(v, int | float)]
            if len(nums) == 3:
                out.append(PriceSlot(nums[0], nums[1], nums[2]))
    return tuple(out)


@dataclass(frozen=True)
class EconomicsStatus:
    """Economics as of the last control cycle. Money is in `currency` per hour at the
    current rates, for what the rigs draw and hash now."""

    enabled: bool
    state: str  # off, active, stale, no-price, use-every-kw, prepaid
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


class EconomicsView(Protocol):
    """runtime.economics.Economics as the API uses it."""

    def status(self, power_w: float, hashrate_ths: float) -> EconomicsStatus: ...

    def price_slots(self) -> tuple[PriceSlot, ...]: ...

    def use_slots(self, slots: Sequence[PriceSlot]) -> None:
        """Price slots now stored (by the command layer): use them from the next cycle."""
        ...
