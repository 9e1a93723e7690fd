"""Edges of the API's input found by probing (issue 18): a time that is a bare number, a
limit of -0.0, and the Allow header of paths served by several routes."""

from __future__ import annotations

import math

import httpx
import pytest
from api_site import START_S, SiteUnderTest, bearer

from minerd.api.times import iso


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("to=0.5", "to"),
        ("from=1700000000", "from"),
        ("from=2027-01-15", "from"),  # a date alone: no offset
        ("to=2027-01-15T10:00", "to"),
        ("to=next%20week", "to"),
    ],
)
async def test_a_time_without_an_offset_is_refused_naming_the_parameter(
    client: httpx.AsyncClient, query: str, field: str
) -> None:
    for path in ("/api/v1/quotas", "/api/v1/compliance"):
        r = await client.get(f"{path}?{query}", headers=bearer("grid"))
        assert r.status_code == 422, (path, query, r.text)
        assert r.json()["field"] == field
        assert r.json()["error"].startswith(f"{field}: ")
        assert "offset" in r.json()["error"]


@pytest.mark.asyncio
async def test_times_with_an_offset_are_taken_in_every_iso_form(client: httpx.AsyncClient) -> None:
    for text in (iso(START_S + 3600), "2027-01-15T14:00:00+05:00", "2027-01-15T09:00Z"):
        r = await client.get("/api/v1/quotas", params={"to": text}, headers=bearer("grid"))
        assert r.status_code == 200, (text, r.text)
        assert r.json()["to"] == "2027-01-15T09:00:00Z"


@pytest.mark.asyncio
async def test_a_number_as_start_of_a_quota_is_refused(client: httpx.AsyncClient) -> None:
    for start in ("0.5", "1800000000", 1800000000):
        r = await client.post(
            "/api/v1/quotas", json={"limit_kw": 300, "start": start}, headers=bearer("grid")
        )
        assert r.status_code == 422, (start, r.text)
        assert r.json()["field"] == "start"


@pytest.mark.asyncio
async def test_a_limit_of_minus_zero_is_stored_and_answered_as_zero(
    client: httpx.AsyncClient, site: SiteUnderTest
) -> None:
    r = await client.post(
        "/api/v1/quotas",
        content=b'{"limit_kw": -0.0, "reference": "neg-zero"}',
        headers={**bearer("grid"), "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.text.count('"limit_kw":0.0') >= 1 and "-0.0" not in r.text
    (stored,) = site.stores.quotas.all()
    assert stored.limit_kw == 0.0 and math.copysign(1.0, stored.limit_kw) == 1.0
    r = await client.put("/api/v1/operator-cap", json={"cap_kw": -0.0}, headers=bearer("operator"))
    assert r.status_code == 200, r.text
    assert "-0.0" not in r.text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/v1/quotas/q-1", {"GET", "DELETE"}),
        ("/api/v1/quotas", {"GET", "POST"}),
        ("/api/v1/rigs/c1-r000/maintenance", {"POST", "DELETE"}),
        ("/api/v1/site", {"GET"}),
    ],
)
async def test_options_and_405_list_every_allowed_method(
    client: httpx.AsyncClient, path: str, methods: set[str]
) -> None:
    r = await client.options(path)
    assert r.status_code == 204
    assert set(r.headers["allow"].split(", ")) == methods | {"OPTIONS"}
    r = await client.request("PATCH", path, headers=bearer("operator"))
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == methods | {"OPTIONS"}


@pytest.mark.asyncio
async def test_options_on_an_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    r = await client.options("/api/v1/nothing-here")
    assert r.status_code == 404
