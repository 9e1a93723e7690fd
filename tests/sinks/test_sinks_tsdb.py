"""Points written through the sink arrive with the right values in real servers:
VictoriaMetrics through the v2 API (influxdb-client) and influxd 1.x through v1 /write."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from servers import ServerProcess, influx_create_database, influx_query, vm_export
from sinks_data import LIMIT, T0_S, make_snapshot, open_spool, running, wait_until

from minerd.model import Alert, ComplianceRecord, RigAction, RigCommand, Severity
from minerd.sinks import (
    InfluxSink,
    InfluxSinkConfig,
    PointEncoder,
    SinkHub,
    V1Target,
    V1Writer,
    V2Target,
    V2Writer,
)

FAST = InfluxSinkConfig(batch_size=500, flush_interval_s=0.05, rig_interval_s=0.0)


def publish_site(hub: SinkHub, n: int, rigs: int = 5) -> None:
    for i in range(n):
        t = T0_S + i
        hub.publish_snapshot(make_snapshot(t, rigs, grid_w=400_000.0 + i), LIMIT, 950_000.0)
    hub.publish_commands(
        [
            RigCommand("rig-00001", RigAction.SET_POWER, power_w=2500.0, reason="ramp"),
            RigCommand("rig-00002", RigAction.SLEEP, reason="shed"),
        ],
        T0_S + 0.5,
    )
    hub.publish_compliance(ComplianceRecord(T0_S, 900.0, 955.5, 1000.0, 0.0, 0.0, 0.0, 900))
    hub.publish_alert(
        Alert("al-1", "spool_filling", Severity.WARNING, (), "spool 85 %", "", T0_S + 2)
    )


def only_values(rows: list[dict[str, object]]) -> list[object]:
    assert len(rows) == 1, rows
    values = rows[0]["values"]
    assert isinstance(values, list)
    return values


@pytest.mark.asyncio
async def test_v2_api_into_victoria_metrics(
    victoria_metrics: ServerProcess, tmp_path: Path
) -> None:
    site = "vm site,1"  # needs escaping
    writer = V2Writer(V2Target(victoria_metrics.url, "org", "bucket", "token"), gzip_body=True)
    sink = InfluxSink(writer, open_spool(tmp_path / "m.db"), PointEncoder(site), FAST)
    hub = SinkHub([sink])
    async with running(hub):
        publish_site(hub, 3)
        await wait_until(sink.idle, 30, "the sink to deliver")
    assert sink.points_written == 3 * 7 + 2 + 1 + 1 and sink.spool.points == 0

    sel = 'site="vm site,1"'
    rows = await asyncio.to_thread(
        vm_export, victoria_metrics, f"{{__name__='site_power_w',{sel}}}"
    )
    assert only_values(rows) == [400_000, 400_001, 400_002]
    assert rows[0]["timestamps"] == [int((T0_S + i) * 1000) for i in range(3)]
    rows = await asyncio.to_thread(
        vm_export, victoria_metrics, f"{{__name__='site_limit_w',{sel}}}"
    )
    assert only_values(rows) == [1_000_000] * 3
    rows = await asyncio.to_thread(
        vm_export, victoria_metrics, f"{{__name__='rig_hashrate_ths',rig='rig-00001',{sel}}}"
    )
    assert only_values(rows) == [101, 101, 101]
    assert rows[0]["metric"]["container"] == "C000"  # type: ignore[index]
    rows = await asyncio.to_thread(
        vm_export, victoria_metrics, f"{{__name__='meter_voltage_l3_v',meter='grid main',{sel}}}"
    )
    assert only_values(rows) == [229.5] * 3
    rows = await asyncio.to_thread(
        vm_export, victoria_metrics, f"{{__name__='dispatch_power_w',rig='rig-00001',{sel}}}"
    )
    assert only_values(rows) == [2500]
    rows = await asyncio.to_thread(
        vm_export, victoria_metrics, f"{{__name__='compliance_avg_import_kw',{sel}}}"
    )
    assert only_values(rows) == [955.5]


@pytest.mark.asyncio
async def test_v1_api_into_influxd(influxd: ServerProcess, tmp_path: Path) -> None:
    await asyncio.to_thread(influx_create_database, influxd, "minerd")
    site = 'influx "site" a=b'
    writer = V1Writer(V1Target(influxd.url, "minerd", "autogen", "", ""), gzip_body=True)
    sink = InfluxSink(writer, open_spool(tmp_path / "m.db"), PointEncoder(site), FAST)
    hub = SinkHub([sink])
    async with running(hub):
        publish_site(hub, 3)
        await wait_until(sink.idle, 30, "the sink to deliver")
    assert sink.spool.points == 0 and sink.points_rejected == 0

    def q(text: str) -> list[list[object]]:
        data = influx_query(influxd, "minerd", text)
        series = data["results"][0]["series"]  # type: ignore[index]
        return series[0]["values"]  # type: ignore[no-any-return]

    site_q = "site = 'influx \"site\" a=b'"
    rows = await asyncio.to_thread(
        q, f"SELECT power_w, limit_w, rigs_hashing, failsafe FROM site WHERE {site_q}"
    )
    assert [r[1:] for r in rows] == [[400_000.0 + i, 1_000_000.0, 4, False] for i in range(3)]
    assert [r[0] for r in rows] == [int((T0_S + i) * 1e9) for i in range(3)]
    rows = await asyncio.to_thread(
        q, f"SELECT state, profile, fan_rpm_min FROM rig WHERE rig = 'rig-00003' AND {site_q}"
    )
    assert [r[1:] for r in rows] == [["sleeping", None, None]] * 3
    rows = await asyncio.to_thread(
        q, f"SELECT reason, power_w FROM dispatch WHERE action = 'set_power' AND {site_q}"
    )
    assert [r[1:] for r in rows] == [["ramp", 2500.0]]
    rows = await asyncio.to_thread(q, f"SELECT alert_id, state FROM alert WHERE {site_q}")
    assert [r[1:] for r in rows] == [["al-1", "firing"]]
