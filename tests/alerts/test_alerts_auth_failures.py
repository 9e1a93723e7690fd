"""Wrong API tokens raise the AuthFailures alert and count in /metrics (issue 18): from the
API's brake (a real FailureThrottle fed by real requests) to the alert engine's facts."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import httpx
import pytest
from alerts_helpers import FACTS, SITE, make_engine, rig, snap

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))

from api_site import SiteUnderTest, api_settings

from minerd.alerts import AlertChange, ChangeKind
from minerd.api import FailureThrottle, create_app
from minerd.clock import ManualClock
from minerd.model import Severity
from minerd.sinks import PrometheusSink
from minerd.sinks.auth_metrics import AuthFailuresCollector

T0 = 1_800_000_000.0


@pytest.mark.asyncio
async def test_wrong_tokens_raise_auth_failures_and_count_in_metrics(tmp_path: Path) -> None:
    now = [0.0]
    throttle = FailureThrottle(base_delay_s=0.001, max_delay_s=0.002, monotonic=lambda: now[0])
    site = SiteUnderTest(tmp_path / "api.sqlite")
    app = create_app(site, api_settings(), None, None, throttle=throttle)
    guesser = httpx.ASGITransport(app=app, client=("192.0.2.44", 40000))
    try:
        async with httpx.AsyncClient(transport=guesser, base_url="http://t") as c:
            for i in range(12):
                await c.get("/api/v1/site", headers={"Authorization": f"Bearer guess-{i}"})
    finally:
        site.close()

    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "alerts.db", clock)
    changes: list[AlertChange] = []

    def evaluate(seconds: int) -> None:
        for _ in range(seconds):
            clock.advance(1.0)
            now[0] += 1.0
            failures, sources = throttle.recent()
            facts = dataclasses.replace(FACTS, auth_failures=failures, auth_failure_sources=sources)
            t = clock.now_s()
            changes.extend(engine.evaluate(snap(t, [rig("r0", t=t)]), facts, t))

    evaluate(1)
    assert [(c.kind, c.alert.rule, c.alert.severity) for c in changes] == [
        (ChangeKind.FIRED, "AuthFailures", Severity.WARNING)
    ]
    alert = changes[0].alert
    assert dict(alert.labels) == {"site": SITE}
    assert "192.0.2.44 (11)" in alert.description  # capped at max_failures + 1 per address
    assert "wrong API tokens" in alert.summary
    evaluate(60 + 300)  # the window empties, then 5 quiet minutes
    assert [(c.kind, c.alert.rule) for c in changes[1:]] == [(ChangeKind.RESOLVED, "AuthFailures")]
    db.close()

    prom = PrometheusSink(SITE)
    prom.registry.register(
        AuthFailuresCollector(lambda: (throttle.failures_total, throttle.refused_total))
    )
    text = prom.render_metrics().decode()
    assert 'minerd_api_auth_failures_total{answer="401"} 10.0' in text
    assert 'minerd_api_auth_failures_total{answer="429"} 2.0' in text


def test_a_few_wrong_tokens_raise_nothing(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "alerts.db", clock)
    facts = dataclasses.replace(FACTS, auth_failures=9, auth_failure_sources=(("10.0.0.1", 9),))
    for _ in range(30):
        clock.advance(1.0)
        t = clock.now_s()
        assert engine.evaluate(snap(t, [rig("r0", t=t)]), facts, t) == []
    db.close()
