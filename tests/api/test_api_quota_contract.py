"""A quota or schedule block above the contracted limit: accepted as the grid sent it, with a
note that the contract caps it (the effective limit stays at the contract)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from api_site import CONTRACTED_KW, START_S, SiteUnderTest, api_settings, bearer

from minerd.api import create_app
from minerd.api.mqtt_quota import handle_quota_message
from minerd.api.times import iso
from minerd.clock import ManualClock

GRID = bearer("grid")


def _note(field: str, limit_kw: float) -> str:
    return (
        f"{field} {limit_kw:g} kW is above the contracted limit {CONTRACTED_KW:g} kW: the site"
        f" is held at {CONTRACTED_KW:g} kW while it is in force (the contract caps every quota)"
    )


@pytest.mark.asyncio
async def test_quota_above_contract_is_accepted_with_a_note(tmp_path: Path) -> None:
    site = SiteUnderTest(tmp_path / "q.sqlite", ManualClock(START_S))
    app = create_app(site, api_settings(), None, None)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            above = CONTRACTED_KW + 100
            r = await c.post("/api/v1/quotas", json={"limit_kw": above}, headers=GRID)
            assert r.status_code == 201, r.text
            assert r.json()["quota"]["limit_kw"] == above
            assert r.json()["notes"] == [_note("limit_kw", above)]
            below = await c.post(
                "/api/v1/quotas", json={"limit_kw": CONTRACTED_KW - 1}, headers=GRID
            )
            assert below.status_code == 201 and below.json()["notes"] == []
            blocks = [
                {"start": iso(START_S + 3600), "end": iso(START_S + 7200), "limit_kw": 10.0},
                {"start": iso(START_S + 7200), "end": iso(START_S + 9000), "limit_kw": above},
            ]
            s = await c.put("/api/v1/quotas/schedule", json={"blocks": blocks}, headers=GRID)
            assert s.status_code == 200, s.text
            assert len(s.json()["added"]) == 2
            assert s.json()["notes"] == [_note("blocks[1].limit_kw", above)]
    finally:
        site.close()


def test_mqtt_quota_above_contract_is_acknowledged_with_the_note(tmp_path: Path) -> None:
    site = SiteUnderTest(tmp_path / "q.sqlite", ManualClock(START_S))
    try:
        above = CONTRACTED_KW * 2
        ack = handle_quota_message(site, json.dumps({"limit_kw": above}).encode(), "mqtt")
        assert ack["ok"] is True and ack["limit_kw"] == above
        assert ack["notes"] == [_note("limit_kw", above)]
        ack = handle_quota_message(site, b'{"limit_kw": 10}', "mqtt")
        assert ack["notes"] == []
    finally:
        site.close()
