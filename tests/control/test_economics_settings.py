"""[economics] in the site config: the operator guide's example loads and becomes the tariff,
rates and feed the daemon runs; mistakes are reported with their key path."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from minerd.clock import ManualClock
from minerd.daemon.economics import build_economics, economics_config
from minerd.errors import ConfigError
from minerd.profiles import load_rig_model
from minerd.settings import Settings, settings_from_dict

REPO = Path(__file__).parents[2]
MINIMAL = tomllib.loads((REPO / "tests/config/fixtures/minimal.toml").read_text())

EXAMPLE = """
[economics]
enabled = true
currency = "KZT"
currency_per_usd = 480.0
pool_fee_pct = 2.0
use_every_kw = false
price_per_mwh = 30000.0

[[economics.tariff]]
price_per_mwh = 18000.0
from_hour = 23
to_hour = 7

[[economics.tariff]]
price_per_mwh = 42000.0
from_hour = 8
to_hour = 22
weekdays = ["mon", "tue", "wed", "thu", "fri"]

[economics.hashprice]
url = "https://data.hashrateindex.com/hi-api/hashrateindex/hashprice?currency=USD&hashunit=THS&bucket=1H&span=1D"
hashunit = "THS"
poll_s = 600
timeout_s = 15
stale_after_min = 90
"""


def load(extra: str, timezone: str = "Asia/Almaty") -> Settings:
    raw = {**MINIMAL, **tomllib.loads(extra)}
    raw["site"] = {**MINIMAL["site"], "timezone": timezone}
    return settings_from_dict(raw, base_dir=REPO, check_profiles=False)


def test_the_guide_example_loads_into_tariff_rates_and_feed() -> None:
    s = load(EXAMPLE)
    e = s.economics
    assert e.enabled and e.currency == "KZT" and e.pool_fee_pct == 2.0
    cfg = economics_config(e, "Asia/Almaty")
    assert cfg.pool_fee_fraction == pytest.approx(0.02)
    assert cfg.currency_per_usd == 480.0 and cfg.fixed_hashprice_usd_per_th_day is None

    def at(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Almaty")).timestamp()

    assert cfg.tariff.price_at(at("2026-12-02T02:00")) == 18000.0  # night
    assert cfg.tariff.price_at(at("2026-12-02T12:00")) == 42000.0  # Wednesday day
    assert cfg.tariff.price_at(at("2026-12-05T12:00")) == 30000.0  # Saturday: flat price
    assert cfg.tariff.price_at(at("2026-12-02T07:30")) == 30000.0  # between rows

    models = [load_rig_model("bitmain-s21")]
    parts = build_economics(e, "Asia/Almaty", models, ManualClock(), state=None)
    assert parts is not None and parts.feed is not None
    assert parts.feed.stale_after_s == 90 * 60 and parts.feed.poll_s == 600.0
    assert parts.feed.hashunit == "THS" and parts.feed.timeout_s == 15.0


def test_economics_is_off_by_default() -> None:
    s = load("")
    e = s.economics
    assert not e.enabled
    assert build_economics(e, "UTC", [], ManualClock(), state=None) is None


def test_fixed_hashprice_needs_no_feed() -> None:
    s = load("[economics]\nenabled = true\nhashprice.usd_per_th_day = 0.05\n")
    parts = build_economics(s.economics, "UTC", [], ManualClock(), state=None)
    assert parts is not None and parts.feed is None
    assert parts.economics.max_j_per_th(0.0) is None  # no price configured: no filter
    assert parts.economics.decision.state.value == "no-price"


@pytest.mark.parametrize(
    ("extra", "wanted"),
    [
        ("[economics]\nenabled = true\n", "economics: enabled: needs hashprice.url or"),
        (
            '[economics.hashprice]\nurl = "http://127.0.0.1:1/x"\nusd_per_th_day = 0.05\n',
            "not both",
        ),
        ('[economics.hashprice]\nurl = "ftp://x/y"\n', "economics.hashprice.url"),
        ("[economics]\npool_fee_pct = 100\n", "economics.pool_fee_pct"),
        ("[economics]\ncurrency_per_usd = 0\n", "economics.currency_per_usd"),
        ("[[economics.tariff]]\nprice_per_mwh = 1\nweekdays = ['monday']\n", "'monday'"),
        ("[[economics.tariff]]\nprice_per_mwh = 1\nfrom_hour = 5\nto_hour = 5\n", "no hour"),
        ("[[economics.tariff]]\nprice_per_mwh = -1\n", "economics.tariff[0].price_per_mwh"),
        ('[economics.hashprice]\nhashunit = "EHS"\n', "economics.hashprice.hashunit"),
        ("[economics]\nuse_every_kwh = true\n", "use_every_kwh"),
    ],
)
def test_mistakes_are_reported_with_their_key(extra: str, wanted: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(extra)
    assert wanted in str(err.value), str(err.value)
