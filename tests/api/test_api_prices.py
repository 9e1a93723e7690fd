"""Economics on the API: /site shows money per hour, breakeven and models off for price;
POST /api/v1/prices sets prices per interval (operator, audited, a repeat changes nothing)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from api_site import START_S, SiteUnderTest, api_settings, bearer

from minerd.api import create_app
from minerd.api.times import iso
from minerd.control.economics import Tariff
from minerd.profiles import load_rig_model
from minerd.runtime.economics import Economics, EconomicsConfig

OPS, VIEW, GRID = bearer("operator"), bearer("viewer"), bearer("grid")
S21 = load_rig_model("bitmain-s21")
S19JPRO = load_rig_model("bitmain-s19jpro")


def economics(site: SiteUnderTest) -> Economics:
    cfg = EconomicsConfig(
        tariff=Tariff(default_per_mwh=100.0),
        currency="USD",
        pool_fee_fraction=0.02,
        fixed_hashprice_usd_per_th_day=0.05,
    )
    econ = Economics(cfg, [S21, S19JPRO], state=site.stores.state)
    econ.restore()
    return econ


@pytest_asyncio.fixture
async def econ_client(
    site: SiteUnderTest,
) -> AsyncIterator[tuple[httpx.AsyncClient, Economics]]:
    econ = economics(site)
    econ.max_j_per_th(site.clock.now_s())  # what a control cycle does
    app = create_app(site, api_settings(), None, None, economics=econ)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c, econ


@pytest.mark.asyncio
async def test_site_shows_money_per_hour_and_models_off(
    econ_client: tuple[httpx.AsyncClient, Economics],
) -> None:
    client, _ = econ_client
    body = (await client.get("/api/v1/site", headers=VIEW)).json()
    e = body["economics"]
    assert e["state"] == "active" and e["enabled"] and not e["use_every_kw"]
    assert e["currency"] == "USD" and e["energy_price_per_mwh"] == 100.0
    assert e["breakeven_j_per_th"] == pytest.approx(0.049 / 0.0024)
    assert e["max_j_per_th"] == pytest.approx(e["breakeven_j_per_th"])
    # The test site: 5 rigs at 3200 W / 100 TH/s, one asleep at 20 W.
    assert body["hashrate_ths"] == 500.0 and body["rig_power_kw"] == pytest.approx(16.02)
    assert e["revenue_per_h"] == pytest.approx(0.05 * 0.98 * 500 / 24)
    assert e["energy_cost_per_h"] == pytest.approx(100.0 * 16.02 / 1000)
    assert e["margin_per_h"] == pytest.approx(e["revenue_per_h"] - e["energy_cost_per_h"])
    assert e["models_off"] == ["bitmain-s19jpro"]


@pytest.mark.asyncio
async def test_prices_set_by_operator_win_over_the_tariff_and_are_audited(
    econ_client: tuple[httpx.AsyncClient, Economics], site: SiteUnderTest
) -> None:
    client, econ = econ_client
    slot = {"start": iso(START_S - 600), "end": iso(START_S + 3000), "price_per_mwh": 60.0}
    denied = await client.post("/api/v1/prices", json={"prices": [slot]}, headers=VIEW)
    assert denied.status_code == 403
    ok = await client.post("/api/v1/prices", json={"prices": [slot]}, headers=OPS)
    assert ok.status_code == 200, ok.text
    assert ok.json()["prices"] == [
        {"start": "2027-01-15T07:50:00Z", "end": "2027-01-15T08:50:00Z", "price_per_mwh": 60.0}
    ]
    again = await client.post("/api/v1/prices", json={"prices": [slot]}, headers=OPS)
    assert again.status_code == 200 and again.json()["prices"] == ok.json()["prices"]
    audit = (await client.get("/api/v1/audit", headers=VIEW)).json()["entries"]
    assert [a["action"] for a in audit].count("prices.set") == 1  # the repeat changed nothing

    econ.max_j_per_th(site.clock.now_s())  # the next cycle
    e = (await client.get("/api/v1/prices", headers=VIEW)).json()["economics"]
    assert e["energy_price_per_mwh"] == 60.0
    assert e["models_off"] == []  # at 60 USD/MWh the S19j Pro pays for itself
    # Durable: a restarted daemon has it.
    fresh = economics(site)
    fresh.max_j_per_th(site.clock.now_s())
    assert fresh.status(0.0, 0.0).energy_price_per_mwh == 60.0
    # After the slot, the tariff again.
    fresh.max_j_per_th(START_S + 3000)
    assert fresh.status(0.0, 0.0).energy_price_per_mwh == 100.0


@pytest.mark.parametrize(
    ("slot", "field"),
    [
        ({"start": "2027-01-15T09:00Z", "end": "2027-01-15T08:00Z", "price_per_mwh": 1}, "end"),
        ({"start": "2027-01-15T08:00Z", "end": "2027-01-15T09:00Z", "price_per_mwh": -1}, "price"),
        ({"start": "2027-01-15T08:00", "end": "2027-01-15T09:00Z", "price_per_mwh": 1}, "start"),
        ({"start": "2027-01-15T08:00Z", "end": "2027-01-15T09:00Z", "price_per_mwh": "1"}, "price"),
    ],
)
@pytest.mark.asyncio
async def test_bad_prices_are_refused_naming_the_field(
    econ_client: tuple[httpx.AsyncClient, Economics], slot: dict[str, object], field: str
) -> None:
    client, econ = econ_client
    r = await client.post("/api/v1/prices", json={"prices": [slot]}, headers=OPS)
    assert r.status_code == 422
    assert field in r.json()["field"]
    assert econ.price_slots() == ()


@pytest.mark.asyncio
async def test_economics_off_site_says_null_and_prices_are_refused(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get("/api/v1/site", headers=GRID)).json()
    assert body["economics"] is None
    slot = {"start": "2027-01-15T08:00Z", "end": "2027-01-15T09:00Z", "price_per_mwh": 50}
    r = await client.post("/api/v1/prices", json={"prices": [slot]}, headers=OPS)
    assert r.status_code == 409 and "economics is off" in r.json()["error"]
