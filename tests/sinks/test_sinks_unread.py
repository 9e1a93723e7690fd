"""Unknown is not zero: a daemon restart writes no 0 W / 0 TH/s for values not read yet.

Two runs of one site's FleetState (as the daemon holds it) publish through the real sinks
into influxd 1.x and VictoriaMetrics and render /metrics: the restarted run's snapshots
before the first grid-meter and rig reads carry no power or hashrate at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from servers import ServerProcess, influx_create_database, influx_query, vm_export
from sinks_data import LIMIT, T0_S, open_spool, running, wait_until

from minerd.model import MeterReading, MeterRole, RigProtocol, RigReading, RigState
from minerd.runtime.devices import MeterInfo, RigInfo
from minerd.runtime.fleet import FleetState
from minerd.sinks import (
    InfluxSink,
    InfluxSinkConfig,
    PointEncoder,
    PrometheusSink,
    SinkHub,
    V1Target,
    V1Writer,
    V2Target,
    V2Writer,
)
from minerd.sinks.events import SnapshotEvent

FAST = InfluxSinkConfig(batch_size=500, flush_interval_s=0.05, rig_interval_s=0.0)
RIGS = ("r1", "r2")


def new_fleet() -> FleetState:
    """What a (re)started daemon holds before its first poll."""
    rigs = [
        RigInfo(r, "bitmain-s19jpro", "c1", "127.0.0.1", 4028, RigProtocol.CGMINER, 15, 3, 60)
        for r in RIGS
    ]
    return FleetState(rigs, [MeterInfo("grid", MeterRole.GRID, "", "tcp://x:502", 1, 1, 5)])


def read_all(fleet: FleetState, t_s: float, grid_w: float) -> None:
    fleet.update_meter(MeterReading("grid", t_s, power_w=grid_w))
    for i, rig in enumerate(RIGS):
        fleet.update_rig(
            i, RigReading(rig, t_s, RigState.HASHING, "", hashrate_ths=100.0, power_w=3000.0)
        )


def restart_run(hub: SinkHub) -> None:
    """Run 1 reads everything; run 2 (the restart) publishes twice before any read, then
    once with only the grid read, then with everything read."""
    first = new_fleet()
    for k in range(2):
        read_all(first, T0_S + k, 50_000.0 + k)
        hub.publish_snapshot(first.snapshot(T0_S + k), LIMIT, 40_000.0)
    second = new_fleet()
    hub.publish_snapshot(second.snapshot(T0_S + 10), LIMIT, 40_000.0)
    hub.publish_snapshot(second.snapshot(T0_S + 11), LIMIT, 40_000.0)
    second.update_meter(MeterReading("grid", T0_S + 12, power_w=51_000.0))
    hub.publish_snapshot(second.snapshot(T0_S + 12), LIMIT, 40_000.0)
    read_all(second, T0_S + 13, 52_000.0)
    hub.publish_snapshot(second.snapshot(T0_S + 13), LIMIT, 40_000.0)


@pytest.mark.asyncio
async def test_influxd_gets_no_zero_points_across_a_restart(
    influxd: ServerProcess, tmp_path: Path
) -> None:
    await asyncio.to_thread(influx_create_database, influxd, "unread")
    writer = V1Writer(V1Target(influxd.url, "unread", "autogen", "", ""), gzip_body=False)
    sink = InfluxSink(writer, open_spool(tmp_path / "s.db"), PointEncoder("restart"), FAST)
    hub = SinkHub([sink])
    async with running(hub):
        restart_run(hub)
        await wait_until(sink.idle, 30, "the sink to deliver")
    assert sink.points_rejected == 0 and sink.spool.points == 0

    def q(text: str) -> list[list[object]]:
        data = influx_query(influxd, "unread", text)
        series = data["results"][0]["series"]  # type: ignore[index]
        return series[0]["values"]  # type: ignore[no-any-return]

    def offset(rows: list[list[object]]) -> list[float]:
        return [int(r[0]) / 1e9 - T0_S for r in rows]  # type: ignore[call-overload]

    # every snapshot has a site point (limit, state counts), ...
    rows = await asyncio.to_thread(q, "SELECT limit_w, rigs_unknown FROM site")
    assert offset(rows) == [0, 1, 10, 11, 12, 13]
    assert [r[2] for r in rows] == [0, 0, 2, 2, 2, 0]
    # ... but power only once the grid meter was read, and rig sums once every rig was
    rows = await asyncio.to_thread(q, "SELECT power_w FROM site")
    assert offset(rows) == [0, 1, 12, 13]
    assert [r[1] for r in rows] == [50_000.0, 50_001.0, 51_000.0, 52_000.0]
    rows = await asyncio.to_thread(q, "SELECT rig_power_w, hashrate_ths FROM site")
    assert offset(rows) == [0, 1, 13] and all(r[1] == 6000.0 and r[2] == 200.0 for r in rows)
    # rigs never read after the restart: their state, no 0 W / 0 TH/s
    rows = await asyncio.to_thread(q, "SELECT state, power_w, hashrate_ths FROM rig WHERE rig='r1'")
    assert [(o, r[1:]) for o, r in zip(offset(rows), rows, strict=True)] == [
        (0, ["hashing", 3000.0, 100.0]),
        (1, ["hashing", 3000.0, 100.0]),
        (10, ["unknown", None, None]),
        (11, ["unknown", None, None]),
        (12, ["unknown", None, None]),
        (13, ["hashing", 3000.0, 100.0]),
    ]
    rows = await asyncio.to_thread(q, "SELECT min(power_w) FROM rig")
    assert rows[0][1] == 3000.0


@pytest.mark.asyncio
async def test_victoria_metrics_gets_no_zero_points_across_a_restart(
    victoria_metrics: ServerProcess, tmp_path: Path
) -> None:
    writer = V2Writer(V2Target(victoria_metrics.url, "org", "bucket", "token"), gzip_body=True)
    sink = InfluxSink(writer, open_spool(tmp_path / "s.db"), PointEncoder("vm-restart"), FAST)
    hub = SinkHub([sink])
    async with running(hub):
        restart_run(hub)
        await wait_until(sink.idle, 30, "the sink to deliver")
    sel = 'site="vm-restart"'
    for name, values in (
        ("site_power_w", [50_000, 50_001, 51_000, 52_000]),
        ("site_rig_power_w", [6000, 6000, 6000]),
        ("site_hashrate_ths", [200, 200, 200]),
        ("site_limit_w", [1_000_000] * 6),
    ):
        rows = await asyncio.to_thread(vm_export, victoria_metrics, f"{{__name__='{name}',{sel}}}")
        assert len(rows) == 1 and rows[0]["values"] == values, (name, rows)
    rows = await asyncio.to_thread(
        vm_export, victoria_metrics, f"{{__name__='rig_power_w',rig='r2',{sel}}}"
    )
    assert len(rows) == 1 and rows[0]["values"] == [3000, 3000, 3000]


def test_metrics_render_no_zero_for_values_not_read_yet() -> None:
    prom = PrometheusSink("m", per_rig_series="on")
    fleet = new_fleet()

    def scrape() -> dict[str, float]:
        prom.offer(SnapshotEvent(fleet.snapshot(T0_S), LIMIT, 40_000.0, False))
        out: dict[str, float] = {}
        for line in prom.render_metrics().decode().splitlines():
            if line.startswith("minerd_") and not line.startswith("minerd_sink"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    m = scrape()  # just (re)started: nothing read
    assert m['minerd_site_limit_watts{site="m"}'] == 1_000_000.0
    assert m['minerd_rigs{site="m",state="unknown"}'] == 2.0
    for absent in (
        "minerd_site_grid_power_watts",
        "minerd_site_rig_power_watts",
        "minerd_site_hashrate_terahashes_per_second",
        "minerd_container_power_watts",
        "minerd_rig_power_watts",
        "minerd_rig_hashrate_terahashes_per_second",
        "minerd_meter_power_watts",
    ):
        assert not [k for k in m if k.startswith(absent + "{")], absent

    fleet.update_meter(MeterReading("grid", T0_S, power_w=51_000.0))
    m = scrape()
    assert m['minerd_site_grid_power_watts{site="m"}'] == 51_000.0
    assert not [k for k in m if k.startswith("minerd_site_rig_power_watts{")]

    read_all(fleet, T0_S, 52_000.0)
    m = scrape()
    assert m['minerd_site_rig_power_watts{site="m"}'] == 6000.0
    assert m['minerd_container_power_watts{container="c1",site="m"}'] == 6000.0
    key = 'minerd_rig_power_watts{container="c1",model="bitmain-s19jpro",rig="r1",site="m"}'
    assert m[key] == 3000.0
