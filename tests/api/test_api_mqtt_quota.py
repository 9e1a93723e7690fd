"""Quota input over MQTT against a real Mosquitto: the same validation and storage as
POST /api/v1/quotas, answered on the ack topic."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import pytest
from api_site import START_S, SiteUnderTest
from mqtt_acks import next_ack, publish_until_acked
from servers import ServerProcess

from minerd.api.mqtt_quota import run_mqtt_quota_input
from minerd.api.times import iso
from minerd.model import QuotaSource


@pytest.mark.asyncio
async def test_quota_over_mqtt(tmp_path: Path, mosquitto: ServerProcess) -> None:
    site = SiteUnderTest(tmp_path / "mqtt.sqlite")
    base = f"minerd/{site.site_name}/quota"
    task = asyncio.create_task(
        run_mqtt_quota_input(site, mosquitto.url, "minerd", actor="mqtt-kegoc")
    )
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="grid-test") as grid:
            await grid.subscribe(f"{base}/ack", qos=1)
            order = {"limit_kw": 333, "end": iso(START_S + 900), "reference": "MQ-1"}
            ack = await publish_until_acked(grid, f"{base}/set", json.dumps(order))
            assert ack["ok"] is True and ack["reference"] == "MQ-1", ack
            assert ack["effective_at"] == iso(START_S) and ack["end"] == iso(START_S + 900)
            stored = site.stores.quotas.all()
            assert len(stored) == 1
            assert (stored[0].source, stored[0].issued_by, stored[0].limit_kw) == (
                QuotaSource.MQTT,
                "mqtt-kegoc",
                333.0,
            )
            assert site.quota_changes == 1 and site.grid_contacts >= 1
            # Drain repeats of the first order, if any, then test refusals.
            await grid.publish(f"{base}/set", b"{not json", qos=1)
            while (bad := await next_ack(grid))["ok"]:
                assert bad["status"] == 200 and bad["id"] == ack["id"]
            assert bad["status"] == 400 and "not JSON" in str(bad["error"])
            await grid.publish(
                f"{base}/set", json.dumps({"limit_kw": 5, "start": "2027-01-15T09:00"}), qos=1
            )
            bad = await next_ack(grid)
            assert (bad["status"], bad["field"]) == (422, "start")
            await grid.publish(f"{base}/set", json.dumps({**order, "limit_kw": 1}), qos=1)
            bad = await next_ack(grid)
            assert (bad["status"], bad["field"]) == (409, "reference")
            assert len(site.stores.quotas.all()) == 1
        audit = site.stores.audit.query()
        assert [(e.actor, e.action) for e in audit] == [("mqtt-kegoc", "quota.create")]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        site.close()


@pytest.mark.asyncio
async def test_mqtt_input_keeps_retrying_an_absent_broker(tmp_path: Path) -> None:
    from servers import free_port

    site = SiteUnderTest(tmp_path / "nobroker.sqlite")
    task = asyncio.create_task(
        run_mqtt_quota_input(site, f"mqtt://127.0.0.1:{free_port()}", "minerd")
    )
    try:
        await asyncio.sleep(0.5)
        assert not task.done(), "a missing broker is retried, not fatal"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        site.close()
