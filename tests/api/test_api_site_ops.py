"""Site, rigs, meters, compliance, operator cap, maintenance, audit and alerts."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest
from api_site import START_S, SiteUnderTest, api_settings, bearer

from minerd.api import EngineAlertsView, create_app
from minerd.api.times import iso
from minerd.model import Alert, ComplianceRecord, Severity
from minerd.storage import AlertStore

OPS, VIEW, GRID = bearer("operator"), bearer("viewer"), bearer("grid")


@pytest.mark.asyncio
async def test_rigs_page_filter_and_cursor(client: httpx.AsyncClient) -> None:
    r = (await client.get("/api/v1/rigs", params={"limit": 4}, headers=VIEW)).json()
    assert r["total"] == 6 and len(r["rigs"]) == 4 and r["next_cursor"]
    r2 = (
        await client.get(
            "/api/v1/rigs", params={"limit": 4, "cursor": r["next_cursor"]}, headers=VIEW
        )
    ).json()
    assert [x["id"] for x in r2["rigs"]] == ["c2-r004", "c2-r005"] and r2["next_cursor"] is None
    r3 = (await client.get("/api/v1/rigs", params={"offset": 4}, headers=VIEW)).json()
    assert r3["rigs"] == r2["rigs"]
    sleeping = (await client.get("/api/v1/rigs", params={"state": "sleeping"}, headers=VIEW)).json()
    assert [x["id"] for x in sleeping["rigs"]] == ["c2-r005"]
    c1_s21 = (
        await client.get(
            "/api/v1/rigs", params={"container": "c1", "model": "bitmain-s21"}, headers=VIEW
        )
    ).json()
    assert [x["id"] for x in c1_s21["rigs"]] == ["c1-r001"]
    bad = await client.get("/api/v1/rigs", params={"cursor": "!!"}, headers=VIEW)
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"
    bad = await client.get("/api/v1/rigs", params={"state": "dancing"}, headers=VIEW)
    assert bad.status_code == 422 and bad.json()["field"] == "state"
    one = (await client.get("/api/v1/rigs/c1-r000", headers=VIEW)).json()
    assert (one["power_w"], one["hashrate_ths"], one["state"]) == (3200.0, 100.0, "hashing")
    missing = await client.get("/api/v1/rigs/zz", headers=VIEW)
    assert missing.status_code == 404 and "zz" in missing.json()["error"]


@pytest.mark.asyncio
async def test_meters_and_site(client: httpx.AsyncClient, site: SiteUnderTest) -> None:
    meters = (await client.get("/api/v1/meters", headers=OPS)).json()["meters"]
    grid = meters[0]
    assert (grid["name"], grid["role"], grid["power_kw"], grid["fresh"]) == (
        "grid-main",
        "grid",
        17.5,
        True,
    )
    assert grid["endpoint"] == "tcp://127.0.0.1:5020"
    s = (await client.get("/api/v1/site", headers=GRID)).json()
    assert s["grid_import_kw"] == 17.5 and s["rigs_by_state"]["hashing"] == 5
    assert s["failsafe"] == {"active": False, "reason": ""}
    # Meters go stale: readiness fails and the site reports fail-safe.
    site.clock.advance(30)
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["reasons"] == ["grid meter stale"]
    s = (await client.get("/api/v1/site", headers=GRID)).json()
    assert s["failsafe"]["active"] and s["limit"]["origin"] == "failsafe"
    assert (await client.get("/api/v1/meters", headers=OPS)).json()["meters"][0]["fresh"] is False


@pytest.mark.asyncio
async def test_operator_cap_and_maintenance_are_audited_and_durable(tmp_path: Path) -> None:
    db = tmp_path / "ops.sqlite"
    site = SiteUnderTest(db)
    app = create_app(site, api_settings(), None, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.put("/api/v1/operator-cap", json={"cap_kw": 650}, headers=OPS)
        assert (
            r.status_code == 200 and r.json()["cap_kw"] == 650 and r.json()["set_by"] == "ops-alice"
        )
        lim = (await c.get("/api/v1/site", headers=VIEW)).json()["limit"]
        assert lim == {"limit_kw": 650.0, "origin": "operator-cap", "quota_id": None}
        bad = await c.put("/api/v1/operator-cap", json={"cap_kw": -5}, headers=OPS)
        assert bad.status_code == 422 and bad.json()["field"] == "cap_kw"
        r = await c.post("/api/v1/rigs/c1-r002/maintenance", json={"note": "psu"}, headers=OPS)
        assert r.json()["maintenance"] and r.json()["by"] == "ops-alice"
        assert (await c.post("/api/v1/rigs/nope/maintenance", headers=OPS)).status_code == 404
        rig = (await c.get("/api/v1/rigs/c1-r002", headers=OPS)).json()
        assert rig["maintenance"] and rig["maintenance_by"] == "ops-alice"
    site.close()
    site = SiteUnderTest(db)  # restart
    app = create_app(site, api_settings(), None, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/api/v1/site", headers=VIEW)).json()["operator_cap_kw"] == 650
        assert (await c.get("/api/v1/rigs/c1-r002", headers=VIEW)).json()["maintenance"]
        r = await c.delete("/api/v1/rigs/c1-r002/maintenance", headers=OPS)
        assert r.json()["maintenance"] is False
        assert (
            await c.put("/api/v1/operator-cap", json={"cap_kw": None}, headers=OPS)
        ).status_code == 200
        lim = (await c.get("/api/v1/site", headers=VIEW)).json()["limit"]
        assert lim["origin"] == "contracted"
        entries = (await c.get("/api/v1/audit", headers=VIEW)).json()["entries"]
        assert [(e["action"], e["subject"]) for e in entries] == [
            ("operator_cap.clear", ""),
            ("maintenance.off", "c1-r002"),
            ("maintenance.on", "c1-r002"),
            ("operator_cap.set", ""),
        ]
        assert entries[-1]["detail"] == {"cap_kw": 650.0, "before_kw": None}
        only = (
            await c.get("/api/v1/audit", params={"action": "maintenance.on"}, headers=VIEW)
        ).json()
        assert [e["detail"] for e in only["entries"]] == [{"note": "psu"}]
    site.close()


@pytest.mark.asyncio
async def test_compliance_json_and_csv(client: httpx.AsyncClient, site: SiteUnderTest) -> None:
    start = START_S - 3600
    site.stores.compliance.upsert_many(
        [
            ComplianceRecord(
                start + i * 900,
                900,
                480.0 + 20 * i,
                500.0,
                max(0.0, 20 * i - 10),
                30.0 * i,
                0.1 * i,
                900,
            )
            for i in range(4)
        ],
        "interval",
    )
    params = {"from": iso(start), "to": iso(START_S), "interval": "15m"}
    rep = (await client.get("/api/v1/compliance", params=params, headers=GRID)).json()
    assert rep["interval_s"] == 900 and len(rep["records"]) == 4
    assert rep["summary"]["intervals_over"] == 3
    assert rep["records"][0]["compliant"] and not rep["records"][1]["compliant"]
    assert rep["records"][1]["interval_end"] == iso(start + 1800)
    r = await client.get(
        "/api/v1/compliance", params=params, headers={**GRID, "Accept": "text/csv"}
    )
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 4 and rows[2]["max_excess_kw"] == "30.000" and rows[2]["compliant"] == "no"
    assert rows[0]["interval_start"] == iso(start)
    minute = await client.get(
        "/api/v1/compliance", params={**params, "interval": "1m"}, headers=GRID
    )
    assert minute.json()["records"] == []
    bad = await client.get(
        "/api/v1/compliance", params={**params, "interval": "soon"}, headers=GRID
    )
    assert bad.status_code == 422 and bad.json()["field"] == "interval"
    bad = await client.get(
        "/api/v1/compliance", params={"from": iso(START_S), "to": iso(start)}, headers=GRID
    )
    assert bad.status_code == 422 and bad.json()["field"] == "to"


class _Engine:
    """The part of the alert engine the view needs, over the real store."""

    def __init__(self, store: AlertStore, now_s: float) -> None:
        self.store = store
        self.now_s = now_s

    def active(self) -> list[Alert]:
        return self.store.active()

    def acknowledge(self, alert_id_: str, by: str) -> Alert:
        return self.store.acknowledge(alert_id_, by, self.now_s)


@pytest.mark.asyncio
async def test_alerts_list_and_acknowledge(site: SiteUnderTest) -> None:
    store = site.stores.alerts
    store.upsert(
        Alert(
            "a-1",
            "meter_stale",
            Severity.CRITICAL,
            (("meter", "grid-main"),),
            "grid meter stale",
            "no reading for 12 s",
            START_S - 60,
        )
    )
    store.upsert(
        Alert(
            "a-0",
            "rig_hot",
            Severity.WARNING,
            (("rig", "c1-r000"),),
            "hot",
            "96C",
            START_S - 7200,
            ends_at_s=START_S - 3600,
        )
    )
    view = EngineAlertsView(_Engine(store, START_S), store)
    app = create_app(site, api_settings(), None, view)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        body = (await c.get("/api/v1/alerts", headers=VIEW)).json()
        assert body["enabled"] is True
        assert [a["id"] for a in body["active"]] == ["a-1"]
        assert {a["id"] for a in body["history"]} == {"a-1", "a-0"}
        assert body["active"][0]["labels"] == {"meter": "grid-main"}
        r = await c.post("/api/v1/alerts/a-1/ack", headers=OPS)
        assert r.status_code == 200 and r.json()["acknowledged_by"] == "ops-alice"
        again = await c.post("/api/v1/alerts/a-1/ack", headers=OPS)
        assert again.json()["acknowledged_at"] == r.json()["acknowledged_at"]
        assert (await c.post("/api/v1/alerts/nope/ack", headers=OPS)).status_code == 404
        entries = (await c.get("/api/v1/audit", headers=VIEW)).json()["entries"]
        assert [(e["action"], e["subject"], e["actor"]) for e in entries] == [
            ("alert.ack", "a-1", "ops-alice")
        ]


@pytest.mark.asyncio
async def test_alerts_and_metrics_when_disabled(site: SiteUnderTest) -> None:
    app = create_app(site, api_settings(), None, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        body = (await c.get("/api/v1/alerts", headers=VIEW)).json()
        assert body == {"enabled": False, "active": [], "history": []}
        assert (await c.post("/api/v1/alerts/x/ack", headers=OPS)).status_code == 404
        r = await c.get("/metrics")
        assert r.status_code == 404 and r.json()["error"].startswith("metrics are not enabled")
        unknown = await c.get("/api/v1/nothing-here")
        assert unknown.status_code == 404 and "error" in unknown.json()


@pytest.mark.asyncio
async def test_requests_are_observed_by_route_template(site: SiteUnderTest) -> None:
    seen: list[tuple[str, str, int]] = []
    app = create_app(
        site, api_settings(), None, None, observe_request=lambda r, m, s, d: seen.append((r, m, s))
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await c.get("/api/v1/rigs/c1-r000", headers=VIEW)
        await c.get("/api/v1/rigs/zz", headers=VIEW)
        await c.get("/api/v1/site")
        await c.get("/no/such/path")
    assert seen == [
        ("/api/v1/rigs/{rig_id}", "GET", 200),
        ("/api/v1/rigs/{rig_id}", "GET", 404),
        ("/api/v1/site", "GET", 401),
        ("unmatched", "GET", 404),
    ]


@pytest.mark.asyncio
async def test_metrics_from_the_prometheus_sink(site: SiteUnderTest) -> None:
    from minerd.sinks.prometheus import PrometheusSink

    sink = PrometheusSink(site.site_name)
    app = create_app(
        site, api_settings(), sink.render_metrics, None, observe_request=sink.observe_api_request
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await c.get("/api/v1/site", headers=GRID)
        text = (await c.get("/metrics")).text
    assert 'minerd_api_requests_total{method="GET",route="/api/v1/site",status="200"} 1.0' in text
