"""Quota lifecycle through the HTTP API: create, repeat, schedule, withdraw, expiry,
each durable across a restart (a new Database and a new app on the same file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from api_site import CONTRACTED_KW, START_S, SiteUnderTest, api_settings, bearer

from minerd.api import create_app
from minerd.api.times import iso
from minerd.clock import ManualClock
from minerd.model import QuotaSource

GRID = bearer("grid")


@asynccontextmanager
async def running(
    db: Path, clock: ManualClock
) -> AsyncIterator[tuple[SiteUnderTest, httpx.AsyncClient]]:
    """A site and a client; leaving closes the database, as a daemon stop would."""
    site = SiteUnderTest(db, clock)
    app = create_app(site, api_settings(), None, None)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            yield site, c
    finally:
        site.close()


def at(offset_s: float) -> str:
    return iso(START_S + offset_s)


@pytest.mark.asyncio
async def test_immediate_quota_is_idempotent_and_survives_restart(tmp_path: Path) -> None:
    db, clock = tmp_path / "q.sqlite", ManualClock(START_S)
    async with running(db, clock) as (site, c):
        r = await c.post(
            "/api/v1/quotas", json={"limit_kw": 450.5}, headers={**GRID, "Idempotency-Key": "k-1"}
        )
        assert r.status_code == 201, r.text
        body = r.json()
        qid = body["id"]
        assert body["created"] is True
        assert body["effective_at"] == at(0) == body["quota"]["start"]
        assert body["quota"]["issued_by"] == "kegoc-dispatch"
        assert site.quota_changes == 1
        site_view = (await c.get("/api/v1/site", headers=GRID)).json()
        assert site_view["limit"] == {"limit_kw": 450.5, "origin": "quota", "quota_id": qid}
        # A retry later (network timeout on the grid side) is answered with the same quota.
        clock.advance(5)
        again = await c.post(
            "/api/v1/quotas", json={"limit_kw": 450.5}, headers={**GRID, "Idempotency-Key": "k-1"}
        )
        assert again.status_code == 200 and again.json()["id"] == qid
        assert again.json()["created"] is False
        assert site.quota_changes == 1, "a replay does not wake the controller"
    clock.advance(60)
    async with running(db, clock) as (site, c):
        again = await c.post(
            "/api/v1/quotas", json={"limit_kw": 450.5}, headers={**GRID, "Idempotency-Key": "k-1"}
        )
        assert again.status_code == 200 and again.json()["id"] == qid
        conflict = await c.post(
            "/api/v1/quotas", json={"limit_kw": 300}, headers={**GRID, "Idempotency-Key": "k-1"}
        )
        assert conflict.status_code == 409
        assert conflict.json()["field"] == "Idempotency-Key"
        assert "limit_kw" in conflict.json()["error"]
        site_view = (await c.get("/api/v1/site", headers=GRID)).json()
        assert site_view["limit"]["quota_id"] == qid
        audit = (await c.get("/api/v1/audit", headers=bearer("viewer"))).json()["entries"]
        assert [(e["action"], e["subject"], e["actor"]) for e in audit] == [
            ("quota.create", qid, "kegoc-dispatch")
        ]
        assert site.stores.quotas.get(qid).source is QuotaSource.API  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_reference_makes_a_scheduled_quota_idempotent(tmp_path: Path) -> None:
    db, clock = tmp_path / "r.sqlite", ManualClock(START_S)
    order = {
        "limit_kw": 300,
        "start": "2027-01-15T14:00:00+05:00",  # 09:00Z, one hour ahead
        "end": "2027-01-15T10:00:00Z",
        "reference": "KEGOC-2027-0042",
    }
    async with running(db, clock) as (_, c):
        r = await c.post("/api/v1/quotas", json=order, headers=GRID)
        assert r.status_code == 201, r.text
        q = r.json()["quota"]
        assert q["start"] == at(3600) and q["end"] == at(7200), "stored in UTC"
        assert r.json()["effective_at"] == at(3600)
        qid = r.json()["id"]
    async with running(db, clock) as (_, c):
        r = await c.post("/api/v1/quotas", json=order, headers=GRID)
        assert (r.status_code, r.json()["id"]) == (200, qid)
        changed = {**order, "end": "2027-01-15T11:00:00Z"}
        r = await c.post("/api/v1/quotas", json=changed, headers=GRID)
        assert r.status_code == 409 and r.json()["field"] == "reference"
        listing = (
            await c.get(
                "/api/v1/quotas",
                params={"from": at(0), "to": at(4 * 3600)},
                headers=bearer("operator"),
            )
        ).json()
        steps = [(s["start"], s["end"], s["limit_kw"], s["origin"]) for s in listing["timeline"]]
        assert steps == [
            (at(0), at(3600), CONTRACTED_KW, "contracted"),
            (at(3600), at(7200), 300.0, "quota"),
            (at(7200), at(4 * 3600), CONTRACTED_KW, "contracted"),
        ]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"limit_kw": -1}, "limit_kw", "greater than or equal"),
        ({"limit_kw": "450"}, "limit_kw", "valid number"),
        ({"limit_kw": True}, "limit_kw", "valid number"),
        ({"limit_kw": 5, "start": "2027-01-15T09:00:00"}, "start", "offset"),
        ({"limit_kw": 5, "start": 1800000000}, "start", "ISO 8601"),
        ({"limit_kw": 5, "start": at(60), "end": at(30)}, "end", "after start"),
        ({"limit_kw": 5, "end": at(-30)}, "end", "past"),
        ({"limit_kw": 5, "extra": 1}, "extra", "not permitted"),
        ({}, "limit_kw", "required"),
    ],
)
async def test_invalid_quotas_name_the_field(
    tmp_path: Path, body: dict[str, object], field: str, words: str
) -> None:
    async with running(tmp_path / "v.sqlite", ManualClock(START_S)) as (site, c):
        r = await c.post("/api/v1/quotas", json=body, headers=GRID)
        assert r.status_code == 422, r.text
        err = r.json()
        assert err["field"] == field
        assert words.lower() in err["error"].lower()
        assert site.stores.quotas.all() == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "raw", [b'{"limit_kw": NaN}', b'{"limit_kw": 1e400}', b'{"limit_kw": -Infinity}']
)
async def test_non_finite_limits_are_refused(client: httpx.AsyncClient, raw: bytes) -> None:
    r = await client.post(
        "/api/v1/quotas", content=raw, headers={**GRID, "Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["field"] == "limit_kw"


@pytest.mark.asyncio
async def test_schedule_replaces_overlapping_blocks_atomically(tmp_path: Path) -> None:
    db, clock = tmp_path / "s.sqlite", ManualClock(START_S)
    h = 3600.0
    first = {
        "blocks": [
            {"limit_kw": 800, "start": at(h * i), "end": at(h * (i + 1))} for i in range(1, 5)
        ]
    }
    async with running(db, clock) as (site, c):
        r = await c.put("/api/v1/quotas/schedule", json=first, headers=GRID)
        assert r.status_code == 200, r.text
        assert len(r.json()["added"]) == 4 and r.json()["withdrawn"] == []
        assert all(q["source"] == "schedule" for q in r.json()["added"])
        first_ids = [q["id"] for q in r.json()["added"]]
        # A revision for hours 2..3 replaces the blocks it overlaps, nothing else.
        revision = {
            "blocks": [
                {"limit_kw": 200, "start": at(2 * h), "end": at(2.5 * h)},
                {"limit_kw": 250, "start": at(2.5 * h), "end": at(3.5 * h)},
            ]
        }
        r = await c.put("/api/v1/quotas/schedule", json=revision, headers=GRID)
        assert r.status_code == 200, r.text
        assert sorted(r.json()["withdrawn"]) == sorted(first_ids[1:3])
        # An invalid schedule changes nothing at all.
        bad = {
            "blocks": [
                {"limit_kw": 1, "start": at(h), "end": at(3 * h)},
                {"limit_kw": 2, "start": at(2 * h), "end": at(4 * h)},
            ]
        }
        r = await c.put("/api/v1/quotas/schedule", json=bad, headers=GRID)
        assert r.status_code == 422 and r.json()["field"] == "blocks.1.start"
        assert site.quota_changes == 2
    async with running(db, clock) as (_, c):
        listing = (
            await c.get("/api/v1/quotas", params={"from": at(0), "to": at(6 * h)}, headers=GRID)
        ).json()
        steps = [(s["start"], s["end"], s["limit_kw"]) for s in listing["timeline"]]
        assert steps == [
            (at(0), at(h), CONTRACTED_KW),
            (at(h), at(2 * h), 800.0),
            (at(2 * h), at(2.5 * h), 200.0),
            (at(2.5 * h), at(3.5 * h), 250.0),
            (at(3.5 * h), at(4 * h), CONTRACTED_KW),
            (at(4 * h), at(5 * h), 800.0),
            (at(5 * h), at(6 * h), CONTRACTED_KW),
        ]
        withdrawn = [q for q in listing["quotas"] if q["withdrawn_at"] is not None]
        assert withdrawn == []  # withdrawn before they started: no longer in force anywhere
        audit = (await c.get("/api/v1/audit", headers=bearer("operator"))).json()["entries"]
        assert [e["action"] for e in audit] == ["quota.schedule", "quota.schedule"]
        assert sorted(audit[0]["detail"]["withdrawn"]) == sorted(first_ids[1:3])


@pytest.mark.asyncio
async def test_withdraw_and_expiry(tmp_path: Path) -> None:
    db, clock = tmp_path / "w.sqlite", ManualClock(START_S)
    async with running(db, clock) as (site, c):
        a = (await c.post("/api/v1/quotas", json={"limit_kw": 600}, headers=GRID)).json()["id"]
        b = (
            await c.post("/api/v1/quotas", json={"limit_kw": 350, "end": at(600)}, headers=GRID)
        ).json()["id"]
        limit = (await c.get("/api/v1/site", headers=GRID)).json()["limit"]
        assert (limit["limit_kw"], limit["quota_id"]) == (350.0, b)
        clock.advance(601)  # b expires; a is in force again
        site.feed()
        limit = (await c.get("/api/v1/site", headers=GRID)).json()["limit"]
        assert (limit["limit_kw"], limit["quota_id"]) == (600.0, a)
        assert (await c.delete("/api/v1/quotas/nope", headers=GRID)).status_code == 404
        r = await c.delete(f"/api/v1/quotas/{a}", headers=GRID)
        assert r.status_code == 200 and r.json()["withdrawn_at"] == at(601)
        clock.advance(1)
        r2 = await c.delete(f"/api/v1/quotas/{a}", headers=GRID)
        assert r2.json()["withdrawn_at"] == at(601), "the first withdrawal is kept"
    async with running(db, clock) as (site, c):
        limit = (await c.get("/api/v1/site", headers=GRID)).json()["limit"]
        assert limit == {"limit_kw": CONTRACTED_KW, "origin": "contracted", "quota_id": None}
        q = (await c.get(f"/api/v1/quotas/{a}", headers=GRID)).json()
        assert q["withdrawn_at"] == at(601)
        actions = [
            e["action"]
            for e in (await c.get("/api/v1/audit", headers=bearer("viewer"))).json()["entries"]
        ]
        assert actions == ["quota.withdraw", "quota.create", "quota.create"]


@pytest.mark.asyncio
async def test_oversized_bodies_are_refused_unread(client: httpx.AsyncClient) -> None:
    big = b'{"limit_kw": 1, "reference": "' + b"x" * 2_000_000 + b'"}'
    r = await client.post(
        "/api/v1/quotas", content=big, headers={**GRID, "Content-Type": "application/json"}
    )
    assert r.status_code == 413 and "larger than" in r.json()["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(40):
            yield b" " * 65_536

    r = await client.put(
        "/api/v1/quotas/schedule",
        content=chunks(),
        headers={**GRID, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
