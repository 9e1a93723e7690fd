"""[economics] settings -> the runtime's Economics and its hashprice feed task (issue 15.4)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from minerd.clock import Clock
from minerd.control.economics import Tariff, TariffRule
from minerd.model import RigModel
from minerd.runtime.economics import Economics, EconomicsConfig
from minerd.runtime.hashprice_feed import HashpriceFeed
from minerd.settings.economics import EconomicsSettings
from minerd.storage.state import StateStore

log = logging.getLogger("minerd.economics")


def economics_config(s: EconomicsSettings, timezone: str) -> EconomicsConfig:
    rules = tuple(
        TariffRule(r.price_per_mwh, r.from_hour, r.to_hour, r.weekday_numbers()) for r in s.tariff
    )
    return EconomicsConfig(
        tariff=Tariff(timezone=timezone, rules=rules, default_per_mwh=s.price_per_mwh),
        currency=s.currency,
        currency_per_usd=s.currency_per_usd,
        pool_fee_fraction=s.pool_fee_pct / 100.0,
        use_every_kw=s.use_every_kw,
        fixed_hashprice_usd_per_th_day=s.hashprice.usd_per_th_day,
    )


@dataclass(frozen=True)
class EconomicsParts:
    economics: Economics
    feed: HashpriceFeed | None  # its run() is a long-lived task; None: fixed hashprice


def build_economics(
    s: EconomicsSettings,
    timezone: str,
    models: Iterable[RigModel],
    clock: Clock,
    state: StateStore | None,
) -> EconomicsParts | None:
    """None when [economics] is not enabled: the planner then gets no price filter."""
    if not s.enabled:
        return None
    h = s.hashprice
    feed = None
    if h.url is not None:
        feed = HashpriceFeed(
            h.url,
            clock,
            hashunit=h.hashunit,
            poll_s=h.poll_s,
            timeout_s=h.timeout_s,
            stale_after_s=h.stale_after_min * 60.0,
        )
    econ = Economics(economics_config(s, timezone), models, feed=feed, state=state)
    econ.restore()
    source = h.url if h.url is not None else f"fixed {h.usd_per_th_day} USD/TH/day"
    log.info(
        "economics on: hashprice from %s, pool fee %g %%, %s",
        source,
        s.pool_fee_pct,
        "use_every_kw (never sleeps a rig for price)" if s.use_every_kw else "breakeven applied",
    )
    return EconomicsParts(econ, feed)
