"""Auth matrix: every endpoint x every role x no token x a bad token; and the brake."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from api_site import SECRETS, SiteUnderTest, api_settings, bearer

from minerd.api import FailureThrottle, create_app

GR, OP, VW = "grid", "operator", "viewer"
FUTURE = {"limit_kw": 400, "start": "2027-01-16T00:00:00Z", "end": "2027-01-16T01:00:00Z"}

# (method, path, json body, roles allowed)
ENDPOINTS: list[tuple[str, str, object, set[str]]] = [
    ("GET", "/api/v1/site", None, {GR, OP, VW}),
    ("GET", "/api/v1/rigs", None, {OP, VW}),
    ("GET", "/api/v1/rigs/c1-r000", None, {OP, VW}),
    ("GET", "/api/v1/meters", None, {OP, VW}),
    ("POST", "/api/v1/quotas", {"limit_kw": 500}, {GR}),
    ("PUT", "/api/v1/quotas/schedule", {"blocks": [FUTURE]}, {GR}),
    ("GET", "/api/v1/quotas", None, {GR, OP, VW}),
    ("GET", "/api/v1/quotas/unknown-id", None, {GR, OP, VW}),
    ("DELETE", "/api/v1/quotas/unknown-id", None, {GR}),
    ("GET", "/api/v1/compliance", None, {GR, OP}),
    ("PUT", "/api/v1/operator-cap", {"cap_kw": 700}, {OP}),
    ("POST", "/api/v1/rigs/c1-r001/maintenance", {"note": "fan swap"}, {OP}),
    ("DELETE", "/api/v1/rigs/c1-r001/maintenance", None, {OP}),
    ("GET", "/api/v1/audit", None, {OP, VW}),
    ("GET", "/api/v1/alerts", None, {OP, VW}),
    ("POST", "/api/v1/alerts/a-1/ack", None, {OP}),
    ("GET", "/metrics", None, {GR, OP, VW}),  # metrics_auth = true in this matrix
]
CALLERS = [GR, OP, VW, "none", "bad"]


def _headers(caller: str) -> dict[str, str]:
    if caller == "none":
        return {}
    if caller == "bad":
        return {"Authorization": "Bearer not-a-token"}
    return bearer(caller)


@pytest.mark.asyncio
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
async def test_auth_matrix(
    tmp_path: Path, method: str, path: str, body: object, allowed: set[str], caller: str
) -> None:
    site = SiteUnderTest(tmp_path / "m.sqlite")
    app = create_app(site, api_settings(metrics_auth=True), lambda: b"minerd_up 1\n", None)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            r = await c.request(method, path, json=body, headers=_headers(caller))
        if caller in ("none", "bad"):
            assert r.status_code == 401, r.text
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["error"]
        elif caller in allowed:
            # Allowed: never an auth answer (404 for the unknown ids is fine).
            assert r.status_code in (200, 201, 404), r.text
            assert r.status_code != 404 or "unknown" in path or "a-1" in path
        else:
            assert r.status_code == 403, r.text
            assert caller in r.json()["error"]
    finally:
        site.close()


@pytest.mark.asyncio
async def test_open_endpoints_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"ready": True, "reasons": []}
    r = await client.get("/metrics")  # metrics_auth is off in the default fixture
    assert r.status_code == 200 and r.text.startswith("# TYPE minerd_up")
    assert (await client.get("/api/v1/openapi.json")).status_code == 200
    assert (await client.get("/docs")).status_code == 200


@pytest.mark.asyncio
async def test_bad_tokens_from_the_grid_address_never_lock_the_grid_out(
    tmp_path: Path,
) -> None:
    """Issue 18: 10+ wrong tokens a minute from the grid authority's own address (default
    brake) and its valid check-ins are still answered and counted as contact."""
    site = SiteUnderTest(tmp_path / "t.sqlite")
    app = create_app(site, api_settings(), None, None)
    grid_host = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    try:
        async with httpx.AsyncClient(transport=grid_host, base_url="http://t") as c:
            bad = [{"Authorization": f"Bearer guess-{i}"} for i in range(12)]
            answers = await asyncio.gather(*(c.get("/api/v1/site", headers=h) for h in bad))
            codes = sorted(r.status_code for r in answers)
            assert codes == [401] * 10 + [429] * 2, codes
            for _ in range(3):
                r = await c.get("/api/v1/site", headers=bearer("grid"))
                assert r.status_code == 200, r.text
            assert site.grid_contacts == 3
            r = await c.get("/api/v1/site", headers={"Authorization": "Bearer one-more"})
            assert r.status_code == 429 and "too many" in r.json()["error"]
    finally:
        site.close()


@pytest.mark.asyncio
async def test_only_wrong_tokens_are_braked_per_address(tmp_path: Path) -> None:
    now = [0.0]
    throttle = FailureThrottle(
        max_failures=5,
        window_s=60,
        free_failures=2,
        base_delay_s=0.001,
        max_delay_s=0.004,
        monotonic=lambda: now[0],
    )
    site = SiteUnderTest(tmp_path / "t.sqlite")
    app = create_app(site, api_settings(), None, None, throttle=throttle)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5555))
    other = httpx.ASGITransport(app=app, client=("10.0.0.8", 5555))
    try:
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://t") as c,
            httpx.AsyncClient(transport=other, base_url="http://t") as c2,
        ):
            bad = {"Authorization": "Bearer guess"}
            codes = []
            for _ in range(7):
                codes.append((await c.get("/api/v1/site", headers=bad)).status_code)
                now[0] += 1.0
            assert codes == [401] * 5 + [429] * 2
            r = await c.get("/api/v1/site", headers=bad)
            assert r.status_code == 429
            # Refused tries count too: of the failures at t=2..7, those at t=2 and 3 must
            # leave the 60 s window before one more try is below the cap of 5.
            assert int(r.headers["retry-after"]) == 3 + 60 - 7
            # A valid token from the braked address, and any token from another, pass.
            assert (await c.get("/api/v1/site", headers=bearer("grid"))).status_code == 200
            assert (await c.get("/api/v1/rigs", headers=bearer("viewer"))).status_code == 200
            assert (await c2.get("/api/v1/site", headers=bad)).status_code == 401
            assert throttle.failures_total == 9 and throttle.refused_total == 3
            total, sources = throttle.recent()
            assert total == 7 and sources == (("10.0.0.7", 6), ("10.0.0.8", 1))
            now[0] += 61
            assert (await c.get("/api/v1/site", headers=bad)).status_code == 401
    finally:
        site.close()


def test_the_delay_grows_with_failures_and_is_capped() -> None:
    now = [0.0]
    throttle = FailureThrottle(
        max_failures=10, free_failures=3, base_delay_s=0.25, max_delay_s=2.0,
        monotonic=lambda: now[0],
    )  # fmt: skip
    verdicts = [throttle.failed("10.0.0.9") for _ in range(11)]
    assert [v.delay_s for v in verdicts[:10]] == [0, 0, 0, 0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    assert [v.retry_after_s for v in verdicts[:10]] == [0.0] * 10
    assert verdicts[10].retry_after_s == 60.0 and verdicts[10].delay_s == 0.0


@pytest.mark.asyncio
async def test_malformed_authorization_and_role_names(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/site", headers={"Authorization": f"Basic {SECRETS['grid']}"})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]
    r = await client.post("/api/v1/quotas", json={"limit_kw": 1}, headers=bearer("viewer"))
    assert r.status_code == 403
    assert r.json()["error"] == "token 'noc-screen' has role viewer; needs grid"


@pytest.mark.asyncio
async def test_grid_requests_are_its_heartbeat(
    client: httpx.AsyncClient, site: SiteUnderTest
) -> None:
    await client.get("/api/v1/site", headers=bearer("operator"))
    await client.get("/api/v1/site", headers={"Authorization": "Bearer nope"})
    await client.get("/api/v1/rigs", headers=bearer("grid"))  # 403: not a contact
    assert site.grid_contacts == 0
    await client.get("/api/v1/site", headers=bearer("grid"))
    await client.get("/api/v1/quotas", headers=bearer("grid"))
    assert site.grid_contacts == 2
