"""A real Alertmanager receives minerd's alerts, groups them per container, and sees them
resolved; a fault reaches it within the rule's `for` plus two poll intervals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from alerts_helpers import FACTS, MODELS, make_engine, rig, snap
from servers import ServerProcess
from waiting import wait_until

from minerd.alerts import AlertEngine, AlertThresholds, ChangeKind, DeliverySettings, RuleTiming
from minerd.clock import ManualClock, SystemClock
from minerd.model import RigStatus
from minerd.storage import AlertStore, Database


def am_get(am: ServerProcess, path: str, site: str) -> list[dict[str, object]]:
    qs = urllib.parse.urlencode({"filter": f'site="{site}"'})
    with urllib.request.urlopen(f"{am.url}{path}?{qs}", timeout=5) as resp:
        data: list[dict[str, object]] = json.loads(resp.read())
        return data


async def wait_for(cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
    await wait_until(cond, timeout_s, "the condition", step_s=0.05)


@contextlib.asynccontextmanager
async def delivering(engine: AlertEngine) -> AsyncIterator[None]:
    task = asyncio.create_task(engine.run(), name="alert-delivery")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def fleet(t: float, hot: set[str]) -> list[RigStatus]:
    rigs = [rig(f"c7-{i:02d}", "C7", t=t, chip_temp_c=96.0 if f"c7-{i:02d}" in hot else 70.0)
            for i in range(20)]  # fmt: skip
    rigs += [rig(f"c8-{i:02d}", "C8", t=t, chip_temp_c=96.0 if f"c8-{i:02d}" in hot else 70.0)
             for i in range(20)]  # fmt: skip
    return rigs


@pytest.mark.asyncio
async def test_alertmanager_receives_groups_and_resolves(
    alertmanager: ServerProcess, tmp_path: Path
) -> None:
    site = "am-groups"
    clock = ManualClock(SystemClock().now_s() - 60)  # behind the wall: endsAt in the past
    delivery = DeliverySettings(log=False, alertmanager_urls=(alertmanager.url,))
    engine, db = make_engine(tmp_path / "a.db", clock, delivery)
    engine.site = site
    hot = {"c7-01", "c7-02", "c7-03", "c8-05"}
    async with delivering(engine):
        for _ in range(12):
            clock.advance(1)
            t = clock.now_s()
            engine.evaluate(snap(t, fleet(t, hot)), FACTS, t)
        assert len(engine.active()) == 4

        await wait_for(lambda: len(am_get(alertmanager, "/api/v2/alerts", site)) == 4)
        alerts = am_get(alertmanager, "/api/v2/alerts", site)
        by_rig = {a["labels"]["rig"]: a for a in alerts}  # type: ignore[index]
        assert set(by_rig) == hot
        a = by_rig["c7-01"]
        assert a["labels"] == {
            "alertname": "RigChipTempHigh",
            "severity": "critical",
            "site": site,
            "container": "C7",
            "rig": "c7-01",
        }
        assert "96.0 C" in a["annotations"]["description"]  # type: ignore[index]
        assert a["status"]["state"] == "active"  # type: ignore[index]

        # Grouped by alertname, site and container: one group of three, one of one.
        await wait_for(lambda: len(am_get(alertmanager, "/api/v2/alerts/groups", site)) == 2)
        groups = am_get(alertmanager, "/api/v2/alerts/groups", site)
        sizes = {g["labels"]["container"]: len(g["alerts"]) for g in groups}  # type: ignore[index, arg-type]
        assert sizes == {"C7": 3, "C8": 1}

        # Cooled down: resolved after `clear`, and Alertmanager no longer lists them active.
        for _ in range(25):
            clock.advance(1)
            t = clock.now_s()
            engine.evaluate(snap(t, fleet(t, set())), FACTS, t)
        assert engine.active() == []

        def none_active() -> bool:
            return not [
                x for x in am_get(alertmanager, "/api/v2/alerts", site)
                if x["status"]["state"] == "active"  # type: ignore[index]
            ]  # fmt: skip

        await wait_for(none_active)
        await wait_for(lambda: engine.store.pending_count() == 0)
    db.close()


@pytest.mark.asyncio
async def test_fault_fires_after_for_within_one_poll_and_reaches_alertmanager(
    alertmanager: ServerProcess, tmp_path: Path
) -> None:
    # The stated latency is fault to Alertmanager within for + two polls: firing is checked
    # here on the engine's clock (simulated polls, exact); the delivery leg in real time is
    # benchmarks/bench_alerts.py's ("fired to visible in Alertmanager", target one poll).
    site = "am-latency"
    for_s, poll_s = 1.0, 0.5
    clock = ManualClock(SystemClock().now_s())  # near the wall: Alertmanager judges endsAt
    db = Database(tmp_path / "a.db")
    engine = AlertEngine(
        site,
        AlertStore(db),
        MODELS,
        AlertThresholds(timings={"RigFanFailure": RuleTiming(for_s, 5.0)}),
        DeliverySettings(log=False, alertmanager_urls=(alertmanager.url,)),
        clock=clock,
        db=db,
    )
    fault_at: float | None = None
    fired_at: float | None = None
    async with delivering(engine):
        for n in range(40):  # what the daemon does: a snapshot every poll, then evaluate
            t = clock.now_s()
            if n == 2:
                fault_at = t
            fan = 0 if fault_at is not None else 5800
            rigs = [rig("r1", "C1", t=t, fan_rpm=fan)] + [
                rig(f"r{i}", "C1", t=t) for i in range(2, 6)
            ]
            changes = engine.evaluate(snap(t, rigs), FACTS, t)
            if any(c.kind is ChangeKind.FIRED for c in changes):
                fired_at = t
                break
            clock.advance(poll_s)
            await asyncio.sleep(0)
        assert fault_at is not None and fired_at is not None, "the fan fault never fired"
        assert for_s <= fired_at - fault_at <= for_s + poll_s
        await wait_until(
            lambda: bool(am_get(alertmanager, "/api/v2/alerts", site)),
            30.0,
            "the alert at Alertmanager",
        )
    [alert] = am_get(alertmanager, "/api/v2/alerts", site)
    assert alert["labels"]["alertname"] == "RigFanFailure"  # type: ignore[index]
    db.close()
