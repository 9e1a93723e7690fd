"""The settlement measurement: one point per closed interval, written into a real influxd
and read back (awarded, imported, deviation); an interval without an award has no
awarded or deviation fields."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from servers import ServerProcess, influx_create_database, influx_query
from sinks_data import T0_S, open_spool, running, wait_until

from minerd.model import SettlementRecord
from minerd.sinks import InfluxSink, InfluxSinkConfig, PointEncoder, SinkHub, V1Target, V1Writer

FAST = InfluxSinkConfig(batch_size=500, flush_interval_s=0.05, rig_interval_s=0.0)
H = 3600.0


def record(start_s: float, imported_kwh: float, awarded_kwh: float | None) -> SettlementRecord:
    return SettlementRecord(
        interval_start_s=start_s,
        interval_s=H,
        imported_kwh=imported_kwh,
        integrated_kwh=imported_kwh - 2.0,
        register_kwh=imported_kwh,
        peak_kw=imported_kwh * 1.05,
        seconds_over=12.0,
        covered_s=H,
        samples=3600,
        awarded_kwh=awarded_kwh,
        award_id=None if awarded_kwh is None else "k-1",
    )


def test_settlement_line_fields() -> None:
    with_award = PointEncoder("s").settlement_line(record(T0_S, 41_800.0, 42_000.0))
    assert with_award.startswith("settlement,site=s ")
    assert "awarded_mwh=42.0" in with_award and "deviation_mwh=-0.2" in with_award
    assert 'award_id="k-1"' in with_award and "from_register=true" in with_award
    bare = PointEncoder("s").settlement_line(record(T0_S, 500.0, None))
    assert "awarded_mwh" not in bare and "deviation" not in bare and "imported_mwh=0.5" in bare


@pytest.mark.asyncio
async def test_settlement_into_influxd(influxd: ServerProcess, tmp_path: Path) -> None:
    await asyncio.to_thread(influx_create_database, influxd, "minerd")
    writer = V1Writer(V1Target(influxd.url, "minerd", "autogen", "", ""), gzip_body=True)
    sink = InfluxSink(writer, open_spool(tmp_path / "m.db"), PointEncoder("almaty-1"), FAST)
    hub = SinkHub([sink])
    async with running(hub):
        hub.publish_settlement(record(T0_S, 41_800.0, 42_000.0))
        hub.publish_settlement(record(T0_S + H, 500.0, None))
        await wait_until(sink.idle, 30, "the sink to deliver")
    assert sink.spool.points == 0 and sink.points_rejected == 0
    data = await asyncio.to_thread(
        influx_query,
        influxd,
        "minerd",
        "SELECT awarded_mwh, imported_mwh, deviation_pct, seconds_over FROM settlement "
        "WHERE site = 'almaty-1'",
    )
    rows = data["results"][0]["series"][0]["values"]  # type: ignore[index]
    assert [r[0] for r in rows] == [int(T0_S * 1e9), int((T0_S + H) * 1e9)]
    assert rows[0][1:3] == [42.0, 41.8]
    assert rows[0][3] == pytest.approx(-100 * 200 / 42_000)
    assert rows[1][1:] == [None, 0.5, None, 12.0]


@pytest.mark.asyncio
async def test_settlement_retained_on_mqtt(tmp_path: Path) -> None:
    import json

    import aiomqtt
    from servers import start_mosquitto
    from sinks_data import LIMIT, make_snapshot

    from minerd.sinks import MqttSink, MqttSinkConfig

    srv = await asyncio.to_thread(start_mosquitto, tmp_path)
    try:
        sink = MqttSink("site-1", MqttSinkConfig.from_url(srv.url, max_backoff_s=0.3))
        hub = SinkHub([sink])
        async with running(hub):
            hub.publish_settlement(record(T0_S, 41_800.0, 42_000.0))
            hub.publish_snapshot(make_snapshot(T0_S + H, 2, grid_w=41_000_000.0), LIMIT, 9e5)
            await wait_until(lambda: sink.published >= 3, 30, "status, state, settlement")
            async with aiomqtt.Client("127.0.0.1", srv.port) as client:
                await client.subscribe("minerd/site-1/settlement", qos=1)
                async with asyncio.timeout(5):
                    msg = await anext(aiter(client.messages))
            assert msg.retain
            assert isinstance(msg.payload, bytes)
            doc = json.loads(msg.payload)
            assert (doc["awarded_kwh"], doc["imported_kwh"], doc["award_id"]) == (
                42_000.0,
                41_800.0,
                "k-1",
            )
            assert doc["deviation_kwh"] == -200.0 and doc["interval_start_s"] == T0_S
    finally:
        await asyncio.to_thread(srv.stop)
