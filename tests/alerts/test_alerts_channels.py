"""Webhook and MQTT channels: a receiver that is down loses nothing, gets every change in
order once it is up, and can verify each body's HMAC; MQTT subscribers get the same JSON."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from aiohttp import web
from alerts_helpers import FACTS, FAST, MODELS, rig, snap
from servers import ServerProcess, free_port

from minerd.alerts import (
    SIGNATURE_HEADER,
    AlertChange,
    AlertEngine,
    AlertThresholds,
    DeliverySettings,
)
from minerd.clock import ManualClock
from minerd.model import RigState, RigStatus
from minerd.storage import AlertStore, Database

SECRET = b"test-secret-not-real"


@contextlib.asynccontextmanager
async def delivering(engine: AlertEngine) -> AsyncIterator[None]:
    task = asyncio.create_task(engine.run(), name="alert-delivery")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def fleet(t: float, offline: set[str], hot: set[str]) -> list[RigStatus]:
    out = []
    for i in range(10):
        rid = f"r{i}"
        if rid in offline:
            out.append(rig(rid, "C1", t=t, state=RigState.OFFLINE, fresh=False))
        else:
            out.append(rig(rid, "C1", t=t, chip_temp_c=96.0 if rid in hot else 70.0))
    return out


def drive(
    engine: AlertEngine, clock: ManualClock, seconds: int, offline: set[str], hot: set[str]
) -> list[AlertChange]:
    out: list[AlertChange] = []
    for _ in range(seconds):
        clock.advance(1)
        t = clock.now_s()
        out += engine.evaluate(snap(t, fleet(t, offline, hot)), FACTS, t)
    return out


def make(tmp_path: Path, delivery: DeliverySettings, site: str) -> tuple[AlertEngine, Database]:
    db = Database(tmp_path / "a.db")
    # Wall clock for the outbox (retry times); evaluations get their own manual times.
    engine = AlertEngine(site, AlertStore(db), MODELS, AlertThresholds(timings=FAST), delivery,
                         db=db)  # fmt: skip
    return engine, db


@pytest.mark.asyncio
async def test_webhook_down_then_up_loses_nothing_in_order_signed(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    delivery = DeliverySettings(
        log=False,
        webhook_url=f"http://127.0.0.1:{port}/minerd",
        webhook_secret=SECRET,
        retry_base_s=0.05,
        retry_max_s=0.3,
        poll_interval_s=0.05,
        request_timeout_s=1.0,
    )
    engine, db = make(tmp_path, delivery, "hook-site")
    clock = ManualClock(1_800_000_000.0)
    received: list[tuple[bytes, str, str]] = []
    all_in = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (await request.read(), request.headers.get(SIGNATURE_HEADER, ""),
             request.headers.get("X-Minerd-Event", ""))
        )  # fmt: skip
        if len(received) >= 6:
            all_in.set()
        return web.Response(status=204)

    async with delivering(engine):
        changes = drive(engine, clock, 12, {"r1"}, {"r2"})  # fire 2
        changes += drive(engine, clock, 5, {"r1"}, set())
        changes += drive(engine, clock, 20, set(), set())  # resolve 2
        changes += drive(engine, clock, 12, set(), {"r5"})  # fire 1
        acked = engine.acknowledge(changes[-1].alert.alert_id, "tech-anna")
        assert len(changes) == 5
        await asyncio.sleep(1.0)  # several failed attempts meanwhile
        assert received == []
        assert engine.store.pending_count("webhook") == 6

        app = web.Application()
        app.router.add_post("/minerd", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            async with asyncio.timeout(10):
                await all_in.wait()
            await asyncio.sleep(0.3)  # nothing more, nothing twice
        finally:
            await runner.cleanup()

    assert len(received) == 6
    expected = [(c.kind.value, c.alert.alert_id) for c in changes]
    expected.append(("acknowledged", acked.alert_id))
    got = []
    for body, signature, event in received:
        mac = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(mac, signature)
        doc = json.loads(body)
        assert doc["kind"] == event
        got.append((doc["kind"], doc["alert"]["id"]))
    assert got == expected
    last = json.loads(received[-1][0])["alert"]
    assert last["acknowledged_by"] == "tech-anna" and last["labels"]["rig"] == "r5"
    assert engine.store.pending_count() == 0
    db.close()


@pytest.mark.asyncio
async def test_mqtt_channel_publishes_changes(mosquitto: ServerProcess, tmp_path: Path) -> None:
    site = "mqtt-site"
    delivery = DeliverySettings(log=False, mqtt_url=mosquitto.url, poll_interval_s=0.05)
    engine, db = make(tmp_path, delivery, site)
    clock = ManualClock(1_800_000_000.0)
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="alerts-test") as sub:
        await sub.subscribe(f"minerd/{site}/alerts", qos=1)
        async with delivering(engine):
            fired = drive(engine, clock, 12, set(), {"r3"})
            resolved = drive(engine, clock, 25, set(), set())
            docs = []
            async with asyncio.timeout(10):
                async for msg in sub.messages:
                    assert isinstance(msg.payload, bytes)
                    docs.append(json.loads(msg.payload))
                    if len(docs) == 2:
                        break
    assert [(d["kind"], d["alert"]["id"]) for d in docs] == [
        ("fired", fired[0].alert.alert_id),
        ("resolved", resolved[0].alert.alert_id),
    ]
    a = docs[0]["alert"]
    assert a["rule"] == "RigChipTempHigh"
    assert a["labels"] == {"site": site, "container": "C1", "rig": "r3"}
    assert docs[1]["alert"]["ends_at_s"] is not None
    db.close()
