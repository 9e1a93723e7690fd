"""A real Alertmanager receives minerd's alerts, groups them per container, and sees them
resolved; a fault reaches it within the rule's `for` plus two poll intervals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alerts_helpers import FACTS, MODELS, make_engine, rig, snap
from servers import ServerProcess

from minerd.alerts import AlertEngine, AlertThresholds, DeliverySettings, RuleTiming
from minerd.clock import ManualClock
from minerd.model import RigStatus
from minerd.storage import AlertStore, Database


def am_get(am: ServerProcess, path: str, site: str) -> list[dict[str, object]]:
    qs = urllib.parse.urlencode({"filter": f'site="{site}"'})
    with urllib.request.urlopen(f"{am.url}{path}?{qs}", timeout=5) as resp:
        data: list[dict[str, object]] = json.loads(resp.read())
        return data


async def wait_for(cond: object, timeout_s: float = 10.0) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


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
    clock = ManualClock(time.time() - 60)  # stays behind the wall: endsAt in the past
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
async def test_fault_reaches_alertmanager_within_for_plus_two_polls(
    alertmanager: ServerProcess, tmp_path: Path
) -> None:
    site = "am-latency"
    for_s, poll_s = 1.0, 0.5
    db = Database(tmp_path / "a.db")
    engine = AlertEngine(
        site,
        AlertStore(db),
        MODELS,
        AlertThresholds(timings={"RigFanFailure": RuleTiming(for_s, 5.0)}),
        DeliverySettings(log=False, alertmanager_urls=(alertmanager.url,)),
        db=db,
    )
    fault_at: float | None = None
    seen_at: float | None = None

    async def poller() -> None:
        """What the daemon does: a snapshot every poll interval, then evaluate."""
        while True:
            t = time.time()
            fan = 0 if fault_at is not None and t >= fault_at else 5800
            rigs = [rig("r1", "C1", t=t, fan_rpm=fan)] + [
                rig(f"r{i}", "C1", t=t) for i in range(2, 6)
            ]
            engine.evaluate(snap(t, rigs), FACTS, t)
            await asyncio.sleep(poll_s)

    async with delivering(engine):
        task = asyncio.create_task(poller())
        try:
            await asyncio.sleep(1.0)
            fault_at = time.time()
            while seen_at is None:
                if am_get(alertmanager, "/api/v2/alerts", site):
                    seen_at = time.time()
                else:
                    await asyncio.sleep(0.02)
                assert time.time() - fault_at < 10, "alert never reached Alertmanager"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    latency = seen_at - fault_at
    print(f"fault to Alertmanager: {latency:.2f} s (for {for_s} s, poll {poll_s} s)")
    assert for_s <= latency <= for_s + 2 * poll_s
    db.close()
