"""[economics]: energy price, hashprice feed and pool fee for price-aware dispatch (issue 15).

Units are in the names: prices per MWh in the site `currency`, hashprice in USD per TH/s per
day, minutes and seconds as named. Times of the tariff are [site] timezone local hours.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# settings.models imports this module (Settings.economics), so the few shared pieces are
# spelled here rather than imported back from it.


class Section(BaseModel):
    """As settings.models.Section: unknown keys are errors, values frozen after load."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    try:
        _ = parts.port
    except ValueError as e:
        raise ValueError(f"'{value}' is not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"'{value}' is not a valid URL; expected http(s)://host[:port][/path]")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekdays(value: tuple[str, ...]) -> tuple[str, ...]:
    bad = [d for d in value if d not in _DAYS]
    if bad:
        raise ValueError(f"unknown weekday {bad[0]!r}; expected some of {', '.join(_DAYS)}")
    if not value:
        raise ValueError("must name at least one weekday")
    return value


class TariffRuleSettings(Section):
    """One [[economics.tariff]] row: price for hours [from_hour, to_hour) of these days.

    from_hour > to_hour wraps past midnight (22 -> 6); the first matching row wins."""

    price_per_mwh: Price
    from_hour: Annotated[int, Field(ge=0, le=23)] = 0
    to_hour: Annotated[int, Field(ge=1, le=24)] = 24
    weekdays: Annotated[tuple[str, ...], AfterValidator(_weekdays)] = _DAYS

    @model_validator(mode="after")
    def _span(self) -> Self:
        if self.from_hour == self.to_hour:
            raise ValueError("from_hour and to_hour are equal: the row covers no hour")
        return self

    def weekday_numbers(self) -> frozenset[int]:
        return frozenset(_DAYS.index(d) for d in self.weekdays)


class HashpriceSettings(Section):
    """[economics.hashprice]: a feed shaped like the Hashrate Index `hashprice` endpoint
    ({"data": [{"timestamp": ISO-8601, "price": number}, ...]}), or a fixed value."""

    url: HttpUrl | None = None
    hashunit: Literal["THS", "PHS"] = "THS"  # the unit the feed's price is per (per day)
    usd_per_th_day: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    poll_s: PositiveSeconds = 300.0
    timeout_s: PositiveSeconds = 10.0
    stale_after_min: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 60.0

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.url is not None and self.usd_per_th_day is not None:
            raise ValueError("set either url (a feed) or usd_per_th_day (fixed), not both")
        return self


class EconomicsSettings(Section):
    enabled: bool = False
    currency: Annotated[str, Field(min_length=1, max_length=8)] = "USD"
    currency_per_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    pool_fee_pct: Annotated[float, Field(ge=0, lt=100, allow_inf_nan=False)] = 0.0
    # The operator's "use every kW we may": economics is shown, never sleeps a rig.
    use_every_kw: bool = False
    price_per_mwh: Price | None = None  # flat price for hours no tariff row covers
    tariff: tuple[TariffRuleSettings, ...] = ()
    hashprice: HashpriceSettings = HashpriceSettings()

    @model_validator(mode="after")
    def _sources(self) -> Self:
        if not self.enabled:
            return self
        if self.hashprice.url is None and self.hashprice.usd_per_th_day is None:
            raise ValueError("enabled: needs hashprice.url or hashprice.usd_per_th_day")
        return self
