"""The hashprice feed: polls an HTTP JSON feed on the injected clock, keeps the last good value.

The reply is shaped like the Hashrate Index `hashprice` endpoint
(`GET .../hashprice?currency=USD&hashunit=THS&bucket=1H&span=1D`):

    {"data": [{"timestamp": "2026-11-29T10:00:00Z", "price": 0.0512}, ...]}

`price` is USD per hash unit (TH/s or PH/s, `hashunit`) per day; the newest timestamp wins.
A bad reply never replaces the last good value: it is an error naming the URL and what
was wrong, logged once at WARNING (then DEBUG while it persists) and shown in the status.
Staleness is measured from the last good reply; what stale means for dispatch is decided
in control.economics (the last breakeven stays in force).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from minerd.clock import Clock
from minerd.errors import FeedError
from minerd.repeated_log import RepeatedLog

log = logging.getLogger("minerd.economics")

MAX_REPLY_BYTES = 1 << 20  # a year of hourly points is ~400 kB
# The hashprice peaked near 4 USD per TH/s per day (late 2017); a reply above this is almost
# surely per PH/s (about 1000x) read with hashunit = "THS".
MAX_PLAUSIBLE_USD_PER_TH_DAY = 10.0
_PER_TH = {"THS": 1.0, "PHS": 1e-3}

Fetch = Callable[[str], Awaitable[bytes]]


@dataclass(frozen=True)
class HashpriceReading:
    usd_per_th_day: float
    as_of_s: float  # the feed's own timestamp of the value
    received_s: float  # site time of the reply that brought it


def parse_hashprice(body: bytes, url: str, hashunit: str = "THS") -> tuple[float, float]:
    """(USD per TH/s per day, as-of unix seconds) from a reply, or FeedError saying why."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise FeedError(url, f"reply is not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise FeedError(url, 'reply has no "data" list (expected {"data": [{timestamp, price}]})')
    best: tuple[float, float] | None = None
    for i, item in enumerate(doc["data"]):
        if not isinstance(item, dict):
            raise FeedError(url, f"data[{i}] is not an object")
        at_s = _timestamp(item.get("timestamp"), url, i)
        price = item.get("price")
        if isinstance(price, bool) or not isinstance(price, int | float):
            raise FeedError(url, f"data[{i}].price is not a number (got {price!r})")
        if not math.isfinite(price) or price <= 0:
            raise FeedError(url, f"data[{i}].price must be a positive number (got {price!r})")
        if best is None or at_s > best[1]:
            best = (float(price) * _PER_TH[hashunit], at_s)
    if best is None:
        raise FeedError(url, '"data" is empty: no hashprice in the reply')
    if best[0] > MAX_PLAUSIBLE_USD_PER_TH_DAY:
        raise FeedError(
            url,
            f"hashprice {best[0]:g} USD/TH/day is implausible: is the feed per PH/s "
            f'(set hashunit = "PHS")?',
        )
    return best


def _timestamp(value: object, url: str, i: int) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value) / (1000.0 if value > 1e11 else 1.0)  # milliseconds or seconds
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if at.tzinfo is not None:
                return at.timestamp()
            raise FeedError(url, f"data[{i}].timestamp {value!r} has no time zone")
    raise FeedError(url, f"data[{i}].timestamp is not an ISO-8601 time (got {value!r})")


class HashpriceFeed:
    """Polls `url` every poll_s (clock seconds); `last` is the last good value."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        hashunit: str = "THS",
        poll_s: float = 300.0,
        timeout_s: float = 10.0,
        stale_after_s: float = 3600.0,
        fetch: Fetch | None = None,
    ) -> None:
        if hashunit not in _PER_TH:
            raise ValueError(f"hashunit must be THS or PHS, got {hashunit!r}")
        self.url = url
        self.clock = clock
        self.hashunit = hashunit
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.stale_after_s = stale_after_s
        self._fetch = fetch
        self.last: HashpriceReading | None = None
        self.error = ""  # the last poll's error ("" after a good one)
        self.polls = 0
        self.failures = 0
        self._stale_logged = False
        self._repeats = RepeatedLog(log)

    def fresh(self, now_s: float) -> bool:
        """A good value arrived within stale_after_s. Logs the change to stale once."""
        last = self.last
        ok = last is not None and now_s - last.received_s <= self.stale_after_s
        if last is not None and not ok and not self._stale_logged:
            self._stale_logged = True
            log.warning(
                "hashprice stale: no good reply from %s for %.0f min (last error: %s); "
                "the last economic decision stays in force",
                self.url,
                (now_s - last.received_s) / 60.0,
                self.error or "none",
            )
        return ok

    async def poll_once(self) -> HashpriceReading | None:
        """One request; returns the new reading, or None (error kept in `error`)."""
        self.polls += 1
        try:
            async with self.clock.timeout(self.timeout_s):
                body = await (self._fetch or self._http_get)(self.url)
            value, as_of_s = parse_hashprice(body, self.url, self.hashunit)
        except TimeoutError:
            self._failed(FeedError(self.url, f"no reply within {self.timeout_s:g} s"))
            return None
        except FeedError as e:
            self._failed(e)
            return None
        reading = HashpriceReading(value, as_of_s, self.clock.now_s())
        if not self._repeats.clear("feed", "hashprice feed %s answers again", self.url) and (
            self.last is None or self._stale_logged
        ):
            log.info("hashprice %.4f USD/TH/day from %s", value, self.url)
        self.last, self.error, self._stale_logged = reading, "", False
        return reading

    def _failed(self, e: FeedError) -> None:
        self.failures += 1
        then = (
            "economics stays off until a good reply"
            if self.last is None
            else ("keeping the last good hashprice")
        )
        # Once at WARNING, DEBUG while it persists (a new kind of error warns again).
        self._repeats.warning("feed", "%s; %s", e, then, kind=e.message.split(" ", 1)[0])
        self.error = str(e)

    async def _http_get(self, url: str) -> bytes:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(url, headers={"Accept": "application/json"}) as resp,
            ):
                if resp.status != 200:
                    raise FeedError(url, f"HTTP {resp.status} {resp.reason or ''}".rstrip())
                body = await resp.content.read(MAX_REPLY_BYTES + 1)
        except (aiohttp.ClientError, OSError) as e:
            raise FeedError(url, f"request failed ({type(e).__name__}: {e})") from None
        if len(body) > MAX_REPLY_BYTES:
            raise FeedError(url, f"reply larger than {MAX_REPLY_BYTES} bytes")
        return body

    async def run(self) -> None:
        """Poll until cancelled; one failed poll never ends the loop."""
        while True:
            await self.poll_once()
            await self.clock.sleep(self.poll_s)
