"""Energy awards through the HTTP API: JSON and CSV in (good and bad, with line numbers),
roles, idempotency, withdrawal, the site's time zone; and the settlement report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from api_site import START_S, SiteUnderTest, api_settings, bearer

from minerd.api import create_app
from minerd.api.times import iso
from minerd.model import SettlementRecord

GRID = bearer("grid")
H = 3600.0
# START_S is 2027-01-15T08:00Z, 13:00 in Almaty (UTC+5 all year since 2024-03-01).


@pytest_asyncio.fixture
async def almaty(tmp_path: Path) -> AsyncIterator[tuple[SiteUnderTest, httpx.AsyncClient]]:
    site = SiteUnderTest(tmp_path / "a.sqlite")
    app = create_app(site, api_settings(), None, None, timezone="Asia/Almaty")
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            yield site, c
    finally:
        site.close()


@pytest.mark.asyncio
async def test_awards_json_stored_once_per_key_and_listed(
    almaty: tuple[SiteUnderTest, httpx.AsyncClient],
) -> None:
    site, c = almaty
    body = [
        {"interval_start": "2027-01-16T00:00", "energy_mwh": 42.0},  # local: 19:00Z
        {"interval_start": "2027-01-15T20:00:00Z", "energy_mwh": 40.5, "id": "korem-2"},
    ]
    r = await c.post("/api/v1/awards", json=body, headers={**GRID, "Idempotency-Key": "d-1"})
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["new"], out["repeated"]) == (2, 0)
    first = out["awards"][0]
    assert first["interval_start"] == iso(START_S + 11 * H)
    assert first["interval_end"] == iso(START_S + 12 * H)
    assert first["energy_mwh"] == 42.0 and first["mean_kw"] == pytest.approx(42_000.0)
    assert first["issued_by"] == "kegoc-dispatch" and first["source"] == "api"
    assert out["notes"]  # 42 MW mean is above the 1 MW contract: said, stored anyway
    assert site.quota_changes == 1

    again = await c.post("/api/v1/awards", json=body, headers={**GRID, "Idempotency-Key": "d-1"})
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False
    assert [a["id"] for a in again.json()["awards"]] == [a["id"] for a in out["awards"]]
    assert site.quota_changes == 1  # a repeat wakes nobody

    other = [{"interval_start": "2027-01-16T00:00", "energy_mwh": 41.0}]
    conflict = await c.post(
        "/api/v1/awards", json=other, headers={**GRID, "Idempotency-Key": "d-1"}
    )
    assert conflict.status_code == 409
    assert conflict.json()["field"] == "Idempotency-Key"

    # the same award id with other energy is a conflict; same content is a repeat
    clash = [{"interval_start": "2027-01-15T20:00:00Z", "energy_mwh": 39.0, "id": "korem-2"}]
    r = await c.post("/api/v1/awards", json=clash, headers=GRID)
    assert r.status_code == 409 and r.json()["field"] == "award_id"

    listed = await c.get(
        "/api/v1/awards",
        params={"from": iso(START_S), "to": iso(START_S + DAY)},
        headers=bearer("viewer"),
    )
    assert listed.status_code == 200
    assert listed.json()["timezone"] == "Asia/Almaty"
    assert [a["energy_mwh"] for a in listed.json()["awards"]] == [42.0, 40.5]


DAY = 86_400.0


@pytest.mark.asyncio
async def test_awards_later_issue_wins_and_withdrawal(
    almaty: tuple[SiteUnderTest, httpx.AsyncClient],
) -> None:
    site, c = almaty
    start = "2027-01-15T14:00+05:00"
    r1 = await c.post(
        "/api/v1/awards", json=[{"interval_start": start, "energy_mwh": 0.9}], headers=GRID
    )
    site.clock.advance(60)
    r2 = await c.post(
        "/api/v1/awards",
        json={"awards": [{"interval_start": start, "energy_mwh": 0.8}], "reference": "rev-2"},
        headers=GRID,
    )
    assert r2.status_code == 201
    assert r2.json()["superseded"] == [r1.json()["awards"][0]["id"]]
    now = await c.get("/api/v1/awards", headers=GRID)
    assert [(a["energy_mwh"], a["reference"]) for a in now.json()["awards"]] == [(0.8, "rev-2")]
    hist = await c.get("/api/v1/awards", params={"history": "true"}, headers=GRID)
    assert len(hist.json()["awards"]) == 2
    aid = r2.json()["awards"][0]["id"]
    assert (await c.delete(f"/api/v1/awards/{aid}", headers=bearer("operator"))).status_code == 403
    gone = await c.delete(f"/api/v1/awards/{aid}", headers=GRID)
    assert gone.status_code == 200 and gone.json()["withdrawn_at"] is not None
    assert (await c.get("/api/v1/awards", headers=GRID)).json()["awards"] == []
    assert (await c.delete("/api/v1/awards/nope", headers=GRID)).status_code == 404


@pytest.mark.asyncio
async def test_awards_roles(almaty: tuple[SiteUnderTest, httpx.AsyncClient]) -> None:
    _, c = almaty
    body = [{"interval_start": "2027-01-16T00:00", "energy_mwh": 1.0}]
    assert (await c.post("/api/v1/awards", json=body)).status_code == 401
    for role in ("operator", "viewer"):
        r = await c.post("/api/v1/awards", json=body, headers=bearer(role))
        assert r.status_code == 403, role
        r = await c.post("/api/v1/awards.csv", content=b"x", headers=bearer(role))
        assert r.status_code == 403, role
    assert (await c.get("/api/v1/settlement", headers=bearer("viewer"))).status_code == 403
    assert (await c.get("/api/v1/settlement", headers=bearer("operator"))).status_code == 200


@pytest.mark.asyncio
async def test_awards_csv_good_semicolon_and_decimal_comma(
    almaty: tuple[SiteUnderTest, httpx.AsyncClient],
) -> None:
    _, c = almaty
    text = (
        "\ufeffinterval_start;energy_mwh;id\n"
        "# KOREM day-ahead, delivery 2027-01-16\n"
        "2027-01-16T00:00;42,5;k-00\n"
        "2027-01-16T01:00;40;k-01\n"
    )
    r = await c.post(
        "/api/v1/awards.csv",
        content=text.encode(),
        headers={**GRID, "Content-Type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    assert [(a["id"], a["energy_mwh"]) for a in r.json()["awards"]] == [
        ("k-00", 42.5),
        ("k-01", 40.0),
    ]


@pytest.mark.asyncio
async def test_awards_csv_bad_rows_named_by_line_and_nothing_stored(
    almaty: tuple[SiteUnderTest, httpx.AsyncClient],
) -> None:
    _, c = almaty
    text = (
        "interval_start,energy_mwh\n"
        "2027-01-16T00:00,42\n"
        "2027-01-16T01:30,40\n"  # line 3: not on an hour
        "2027-01-16T02:00,lots\n"  # line 4: not a number
        "2027-01-16T03:00,-1\n"  # line 5: negative
        "2027-01-16T04:00\n"  # line 6: a cell missing
        "yesterday,1\n"  # line 7: not a time
        "2027-01-16T00:00,42\n"  # line 8: the interval of line 2 again
    )
    r = await c.post(
        "/api/v1/awards.csv", content=text, headers={**GRID, "Content-Type": "text/csv"}
    )
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    where = [p["field"].split(".")[0] for p in problems]
    assert where == ["line 3", "line 4", "line 5", "line 6", "line 7", "line 8"]
    text_of = {p["field"]: p["error"] for p in problems}
    assert "not the start of a 3600 s interval in Asia/Almaty" in text_of["line 3.interval_start"]
    assert "'lots' is not a number" in text_of["line 4.energy_mwh"]
    assert "negative" in text_of["line 5.energy_mwh"]
    assert "overlaps the interval of line 2" in text_of["line 8.interval_start"]
    assert r.json()["error"].startswith("line 3.interval_start: line 3:")
    listed = await c.get("/api/v1/awards", params={"from": iso(START_S)}, headers=GRID)
    assert listed.json()["awards"] == []  # one bad row: nothing stored

    bad_header = await c.post(
        "/api/v1/awards.csv",
        content="start,mwh\n1,2\n",
        headers={**GRID, "Content-Type": "text/csv"},
    )
    assert bad_header.status_code == 422
    assert (
        "missing column interval_start (or date and hour), energy_mwh"
        in (bad_header.json()["error"])
    )


@pytest.mark.asyncio
async def test_awards_json_bad_items_all_reported(
    almaty: tuple[SiteUnderTest, httpx.AsyncClient],
) -> None:
    _, c = almaty
    body = [
        {"interval_start": "2027-01-16T00:00", "energy_mwh": "42"},  # text, not a number
        {"interval_start": "2027-01-16T01:00", "energy_mwh": 1, "colour": "red"},
        {"energy_mwh": 1},
        {"interval_start": "2027-01-16T03:00", "energy_mwh": 1e9},  # kWh sent as MWh
    ]
    r = await c.post("/api/v1/awards", json=body, headers=GRID)
    assert r.status_code == 422
    fields = [p["field"] for p in r.json()["problems"]]
    assert fields == [
        "awards.0.energy_mwh",
        "awards.1.colour",
        "awards.2.interval_start",
        "awards.3.energy_mwh",
    ]
    r = await c.post("/api/v1/awards", content=b"{not json", headers=GRID)
    assert r.status_code == 422 and "not JSON" in r.json()["error"]


def _record(start_s: float, imported_kwh: float, awarded_kwh: float | None) -> SettlementRecord:
    return SettlementRecord(
        interval_start_s=start_s,
        interval_s=H,
        imported_kwh=imported_kwh,
        integrated_kwh=imported_kwh + 1.0,
        register_kwh=imported_kwh,
        peak_kw=imported_kwh * 1.1,
        seconds_over=3.0,
        covered_s=H,
        samples=3600,
        awarded_kwh=awarded_kwh,
    )


@pytest.mark.asyncio
async def test_settlement_report_json_and_csv(
    almaty: tuple[SiteUnderTest, httpx.AsyncClient],
) -> None:
    site, c = almaty
    t0 = START_S - 3 * H
    # an award entered after its hour still shows against it
    await c.post(
        "/api/v1/awards", json=[{"interval_start": iso(t0), "energy_mwh": 0.8}], headers=GRID
    )
    site.stores.awards.put_settlement(_record(t0, 796.0, None))
    site.stores.awards.put_settlement(_record(t0 + H, 500.0, None))
    span = {"from": iso(t0), "to": iso(t0 + 2 * H)}
    late = await c.post(
        "/api/v1/awards", json=[{"interval_start": iso(t0), "energy_mwh": 0.8}], headers=GRID
    )
    assert late.status_code == 200  # a repeat
    assert late.json()["notes"] == [
        "1 award(s) for intervals already over: stored for the settlement report, nothing to pace"
    ]
    r = await c.get("/api/v1/settlement", params=span, headers=GRID)
    assert r.status_code == 200, r.text
    recs = r.json()["records"]
    assert recs[0]["awarded_mwh"] == 0.8
    assert recs[0]["imported_mwh"] == pytest.approx(0.796)
    assert recs[0]["deviation_mwh"] == pytest.approx(-0.004)
    assert recs[0]["deviation_pct"] == pytest.approx(-0.5)
    assert recs[0]["energy_source"] == "register"
    assert recs[1]["awarded_mwh"] is None and recs[1]["deviation_pct"] is None
    s = r.json()["summary"]
    assert s["intervals"] == 2 and s["intervals_under_99"] == 0 and s["intervals_over"] == 0
    for how in (
        {"params": {**span, "format": "csv"}},
        {"params": span, "headers": {"Accept": "text/csv"}},
    ):
        headers = {**GRID, **how.get("headers", {})}
        csv_r = await c.get("/api/v1/settlement", params=how["params"], headers=headers)
        assert csv_r.headers["content-type"].startswith("text/csv")
        lines = csv_r.text.strip().split("\n")
        assert lines[0].startswith("interval_start,interval_end,awarded_mwh,imported_mwh")
        assert lines[1].split(",")[2:6] == ["0.800000", "0.796000", "-0.004000", "-0.500"]
        assert lines[2].split(",")[2] == ""  # no award


@pytest.mark.asyncio
async def test_site_shows_the_award_of_the_interval_in_progress(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from minerd.runtime.settlement import AwardBoard, SettlementKeeper

    site = SiteUnderTest(tmp_path / "s.sqlite")
    keeper = SettlementKeeper(site.stores, H, ZoneInfo("Asia/Almaty"))
    board = AwardBoard(keeper, lambda: 812.5)
    app = create_app(site, api_settings(), None, None, timezone="Asia/Almaty", awards=board)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            empty = (await c.get("/api/v1/site", headers=GRID)).json()["award"]
            assert empty["awarded_kwh"] is None and empty["pace_kw"] is None
            assert empty["interval_start"] == iso(START_S)  # 13:00 Almaty
            await c.post(
                "/api/v1/awards",
                json=[{"interval_start": "2027-01-15T13:00", "energy_mwh": 0.9}],
                headers=GRID,
            )
            keeper.awards_changed()
            site.clock.advance(900)
            keeper.on_cycle(_Result(site.snapshot()))  # the meter's import since 08:00Z
            award = (await c.get("/api/v1/site", headers=bearer("viewer"))).json()["award"]
            assert award["awarded_kwh"] == 900.0 and award["pace_kw"] == 812.5
            assert award["interval_end"] == iso(START_S + H)
            assert award["remaining_kwh"] == pytest.approx(900.0 - award["imported_kwh"])
    finally:
        site.close()


class _Result:
    def __init__(self, snapshot: object) -> None:
        self.snapshot = snapshot
        self.compliance_minutes = ()
