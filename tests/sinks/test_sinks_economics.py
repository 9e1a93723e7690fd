"""Economics in telemetry: the status page's figures (runtime.economics.Economics.status for
the snapshot's rig power and hashrate) written to a real influxd as the `economics`
measurement, rendered on /metrics (promtool accepts them) and retained on a real Mosquitto
as `<prefix>/<site>/economics`; with [economics] off none of them appear."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import aiomqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import ServerProcess, influx_create_database, influx_query, start_mosquitto
from sinks_data import LIMIT, T0_S, make_snapshot, open_spool, running, wait_until

from minerd.control.economics import Tariff
from minerd.model import FleetSnapshot
from minerd.profiles import load_rig_model
from minerd.runtime.economics import Economics, EconomicsConfig
from minerd.runtime.economics_status import EconomicsStatus
from minerd.sinks import (
    InfluxSink,
    InfluxSinkConfig,
    MqttSink,
    MqttSinkConfig,
    PointEncoder,
    PrometheusSink,
    SinkHub,
    V1Target,
    V1Writer,
)

FAST = InfluxSinkConfig(batch_size=500, flush_interval_s=0.05, rig_interval_s=0.0)
PRICE_KZT_PER_MWH = 42_000.0
KZT_PER_USD = 480.0
POOL_FEE = 0.02
HASHPRICE = 0.05  # USD per TH/s per day


def economics_now(snap: FleetSnapshot) -> EconomicsStatus:
    """What GET /api/v1/site's `economics` block holds for this snapshot."""
    cfg = EconomicsConfig(
        tariff=Tariff(default_per_mwh=PRICE_KZT_PER_MWH),
        currency="KZT",
        currency_per_usd=KZT_PER_USD,
        pool_fee_fraction=POOL_FEE,
        fixed_hashprice_usd_per_th_day=HASHPRICE,
    )
    econ = Economics(cfg, [load_rig_model("bitmain-s19jpro"), load_rig_model("bitmain-s21")])
    econ.max_j_per_th(snap.taken_at_s)  # what a control cycle does
    return econ.status(snap.rig_power_w, snap.hashrate_ths)


def expected(snap: FleetSnapshot) -> tuple[float, float, float]:
    """(revenue, energy cost, margin) per hour in KZT, by hand."""
    revenue = HASHPRICE * (1 - POOL_FEE) * KZT_PER_USD * snap.hashrate_ths / 24.0
    cost = PRICE_KZT_PER_MWH * snap.rig_power_w / 1e6
    return revenue, cost, revenue - cost


def test_the_figures_are_the_status_pages() -> None:
    snap = make_snapshot(T0_S, 8)
    st = economics_now(snap)
    revenue, cost, margin = expected(snap)
    assert st.revenue_per_h == pytest.approx(revenue)
    assert st.energy_cost_per_h == pytest.approx(cost)
    assert st.margin_per_h == pytest.approx(margin)
    assert margin < 0.0  # S19j Pros at this price: the energy costs more than they earn


def test_economics_line_fields() -> None:
    snap = make_snapshot(T0_S, 8)
    text = PointEncoder("s").economics_line(economics_now(snap), snap.taken_at_s)
    revenue, cost, _ = expected(snap)
    assert text.startswith("economics,site=s ")
    assert text.endswith(f" {round(T0_S * 1000)}")
    fields = dict(f.split("=", 1) for f in text.split(" ")[1].split(","))
    assert float(fields["energy_price_per_mwh"]) == PRICE_KZT_PER_MWH
    assert float(fields["hashprice_usd_per_th_day"]) == HASHPRICE
    assert float(fields["revenue_per_h"]) == pytest.approx(revenue)
    assert float(fields["energy_cost_per_h"]) == pytest.approx(cost)
    assert (fields["currency"], fields["state"], fields["hashprice_fresh"]) == (
        '"KZT"',
        '"active"',
        "true",
    )


@pytest.mark.asyncio
async def test_economics_into_influxd(influxd: ServerProcess, tmp_path: Path) -> None:
    await asyncio.to_thread(influx_create_database, influxd, "minerd")
    writer = V1Writer(V1Target(influxd.url, "minerd", "autogen", "", ""), gzip_body=True)
    sink = InfluxSink(writer, open_spool(tmp_path / "m.db"), PointEncoder("econ-1"), FAST)
    hub = SinkHub([sink])
    first, second = make_snapshot(T0_S, 8), make_snapshot(T0_S + 1.0, 4)
    async with running(hub):
        hub.publish_snapshot(first, LIMIT, 9e5, economics=economics_now(first))
        hub.publish_snapshot(second, LIMIT, 9e5, economics=economics_now(second))
        hub.publish_snapshot(make_snapshot(T0_S + 2.0, 4), LIMIT, 9e5)  # [economics] off
        await wait_until(sink.idle, 30, "the sink to deliver")
    assert sink.spool.points == 0 and sink.points_rejected == 0
    data = await asyncio.to_thread(
        influx_query,
        influxd,
        "minerd",
        "SELECT energy_price_per_mwh, hashprice_usd_per_th_day, revenue_per_h, "
        "energy_cost_per_h, margin_per_h, currency FROM economics WHERE site = 'econ-1'",
    )
    rows = data["results"][0]["series"][0]["values"]  # type: ignore[index]
    assert [r[0] for r in rows] == [int(T0_S * 1e9), int((T0_S + 1.0) * 1e9)]
    for row, snap in zip(rows, (first, second), strict=True):
        revenue, cost, margin = expected(snap)
        assert row[1:3] == [PRICE_KZT_PER_MWH, HASHPRICE]
        assert row[3:6] == pytest.approx([revenue, cost, margin])
        assert row[6] == "KZT"


def _gauges(text: bytes) -> dict[str, tuple[dict[str, str], float]]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[s.name] = (dict(s.labels), s.value)
    return out


def test_metrics_carry_the_economics_and_pass_promtool() -> None:
    prom = PrometheusSink("s1")
    hub = SinkHub([prom])
    snap = make_snapshot(T0_S, 8, grid_w=600_000.0)
    hub.publish_snapshot(snap, LIMIT, 9e5)
    assert "minerd_margin_per_hour" not in _gauges(prom.render_metrics())  # off: no series
    hub.publish_snapshot(snap, LIMIT, 9e5, economics=economics_now(snap))
    text = prom.render_metrics()
    g = _gauges(text)
    revenue, cost, margin = expected(snap)
    kzt = {"site": "s1", "currency": "KZT"}
    assert g["minerd_energy_price_per_mwh"] == (kzt, PRICE_KZT_PER_MWH)
    assert g["minerd_hashprice_usd_per_th_day"] == ({"site": "s1"}, HASHPRICE)
    assert g["minerd_revenue_per_hour"][0] == kzt
    assert g["minerd_revenue_per_hour"][1] == pytest.approx(revenue)
    assert g["minerd_energy_cost_per_hour"][1] == pytest.approx(cost)
    assert g["minerd_margin_per_hour"][1] == pytest.approx(margin)
    # breakeven = 1e6 x 24 / (hashprice x (1 - fee) x rate / price x 3600): 23.3 J/TH here
    assert g["minerd_breakeven_joules_per_terahash"][1] == pytest.approx(23.3, abs=0.05)
    assert g["minerd_hashprice_fresh"][1] == 1.0
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, b"")


@pytest.mark.asyncio
async def test_economics_retained_on_mqtt(tmp_path: Path) -> None:
    srv = await asyncio.to_thread(start_mosquitto, tmp_path)
    try:
        sink = MqttSink("site-1", MqttSinkConfig.from_url(srv.url, max_backoff_s=0.3))
        hub = SinkHub([sink])
        snap = make_snapshot(T0_S, 8)
        async with running(hub):
            hub.publish_snapshot(snap, LIMIT, 9e5, economics=economics_now(snap))
            await wait_until(lambda: sink.published >= 3, 30, "status, state, economics")
            async with aiomqtt.Client("127.0.0.1", srv.port) as client:
                await client.subscribe("minerd/site-1/economics", qos=1)
                async with asyncio.timeout(5):
                    msg = await anext(aiter(client.messages))
        assert msg.retain and isinstance(msg.payload, bytes)
        doc = json.loads(msg.payload)
        revenue, cost, margin = expected(snap)
        assert (doc["currency"], doc["state"], doc["hashprice_fresh"]) == ("KZT", "active", True)
        assert doc["energy_price_per_mwh"] == PRICE_KZT_PER_MWH
        assert doc["hashprice_usd_per_th_day"] == HASHPRICE
        assert doc["revenue_per_h"] == pytest.approx(revenue, abs=1e-4)
        assert doc["energy_cost_per_h"] == pytest.approx(cost, abs=1e-4)
        assert doc["margin_per_h"] == pytest.approx(margin, abs=1e-4)
        assert doc["taken_at_s"] == T0_S
    finally:
        await asyncio.to_thread(srv.stop)


@pytest.mark.asyncio
async def test_no_economics_topic_while_economics_is_off(tmp_path: Path) -> None:
    srv = await asyncio.to_thread(start_mosquitto, tmp_path)
    try:
        sink = MqttSink("site-2", MqttSinkConfig.from_url(srv.url, max_backoff_s=0.3))
        hub = SinkHub([sink])
        async with running(hub):
            hub.publish_snapshot(make_snapshot(T0_S, 4), LIMIT, 9e5)
            await wait_until(lambda: sink.published >= 2, 30, "status, state")
            async with aiomqtt.Client("127.0.0.1", srv.port) as client:
                await client.subscribe("minerd/site-2/#", qos=1)
                topics = set()
                # Retained messages come at once on subscribe: status and state, then nothing.
                while len(topics) < 2:
                    async with asyncio.timeout(5):
                        msg = await anext(aiter(client.messages))
                    topics.add(str(msg.topic))
        assert topics == {"minerd/site-2/status", "minerd/site-2/state"}
        assert sink.published == 2
    finally:
        await asyncio.to_thread(srv.stop)
