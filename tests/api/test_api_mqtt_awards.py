"""Energy awards over MQTT against a real Mosquitto: the same parser, idempotency and storage
as POST /api/v1/awards, answered on the awards ack topic."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt
import pytest
from api_site import START_S, SiteUnderTest
from mqtt_acks import next_ack, publish_until_acked
from servers import ServerProcess

from minerd.api.mqtt_quota import run_mqtt_quota_input
from minerd.api.times import iso
from minerd.model import QuotaSource
from minerd.runtime.award_input import Rules

H = 3600.0


@pytest.mark.asyncio
async def test_awards_over_mqtt(tmp_path: Path, mosquitto: ServerProcess) -> None:
    site = SiteUnderTest(tmp_path / "mqtt.sqlite")
    base = f"minerd/{site.site_name}/awards"
    rules = Rules(ZoneInfo("Asia/Almaty"), H)
    task = asyncio.create_task(
        run_mqtt_quota_input(site, mosquitto.url, "minerd", actor="mqtt-korem", award_rules=rules)
    )
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="korem-test") as grid:
            await grid.subscribe(f"{base}/ack", qos=1)
            order = {
                "awards": [
                    {"interval_start": "2027-01-16T00:00", "energy_mwh": 0.9},  # local Almaty
                    {"interval_start": "2027-01-16T01:00", "energy_mwh": 0.7},
                ],
                "reference": "KOREM-DA-2027-01-16",
                "idempotency_key": "korem-da-2027-01-16",
            }
            ack = await publish_until_acked(grid, f"{base}/set", json.dumps(order))
            assert ack["ok"] is True and ack["status"] == 201, ack
            assert ack["from"] == iso(START_S + 11 * H) and ack["to"] == iso(START_S + 13 * H)
            stored = site.stores.awards.in_range(START_S, START_S + 2 * 86_400)
            assert [(a.source, a.issued_by, a.energy_kwh, a.reference) for a in stored] == [
                (QuotaSource.MQTT, "mqtt-korem", 900.0, "KOREM-DA-2027-01-16"),
                (QuotaSource.MQTT, "mqtt-korem", 700.0, "KOREM-DA-2027-01-16"),
            ]
            assert site.quota_changes == 1 and site.grid_contacts >= 1
            # Repeats of the first order (if any were in flight) are answered, not stored.
            await grid.publish(f"{base}/set", b'[{"interval_start": "x"}]', qos=1)
            while (bad := await next_ack(grid))["ok"]:
                assert bad["status"] == 200 and bad["ids"] == ack["ids"]
            assert bad["status"] == 422
            fields = [p["field"] for p in bad["problems"]]  # type: ignore[attr-defined]
            assert fields == ["awards.0.energy_mwh", "awards.0.interval_start"]
            changed = {**order, "awards": order["awards"][:1]}
            await grid.publish(f"{base}/set", json.dumps(changed), qos=1)
            bad = await next_ack(grid)
            assert (bad["status"], bad["field"]) == (409, "idempotency_key")
            assert len(site.stores.awards.history(START_S, START_S + 2 * 86_400)) == 2
        audit = site.stores.audit.query()
        assert [(e.actor, e.action) for e in audit] == [("mqtt-korem", "award.put")]
    finally:
        task.cancel()
        site.close()
