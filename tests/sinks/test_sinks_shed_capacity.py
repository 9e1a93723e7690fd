"""Shed capacity in telemetry: /metrics gauges in watts (total and per family) and the
retained MQTT site state document in kW, from the cycle's ShedCapacity (site import)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sinks_data import LIMIT, T0_S, make_snapshot

from minerd.model import RigProtocol, ShedCapacity, ShedClass
from minerd.sinks import PrometheusSink, SinkHub
from minerd.sinks.events import SnapshotEvent
from minerd.sinks.mqtt import site_state

# Rig W per horizon (5 s, 60 s, 600 s); site import = rig W x 1.1.
SHED = ShedCapacity(
    horizons_s=(5.0, 60.0, 600.0),
    site_factor=1.1,
    classes=(
        ShedClass(RigProtocol.LUXOS, "bitmain-s19jpro", 10, 30_680.0, (30_000.0,) * 3),
        ShedClass(RigProtocol.STOCK, "bitmain-s19jpro", 20, 61_360.0, (0.0, 60_000.0, 60_000.0)),
        ShedClass(RigProtocol.STOCK, "bitmain-s21", 5, 17_500.0, (0.0, 17_000.0, 17_000.0)),
    ),
)


def gauges(text: bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted((k, v) for k, v in s.labels.items() if k != "site"))] = s.value
    return out


def test_metrics_carry_shed_capacity_in_total_and_per_family() -> None:
    prom = PrometheusSink("s1")
    hub = SinkHub([prom])
    hub.publish_snapshot(make_snapshot(T0_S, 4), LIMIT, 900_000.0)
    assert not gauges(prom.render_metrics(), "minerd_site_shed_capacity_watts")  # not computed
    hub.publish_snapshot(make_snapshot(T0_S + 1, 4), LIMIT, 900_000.0, shed=SHED)
    text = prom.render_metrics()
    total = gauges(text, "minerd_site_shed_capacity_watts")
    assert total == pytest.approx(
        {
            (("within", "5s"),): 33_000.0,
            (("within", "60s"),): 117_700.0,
            (("within", "600s"),): 117_700.0,
        }
    )
    fam = gauges(text, "minerd_shed_capacity_watts")
    assert fam[(("family", "luxos"), ("within", "5s"))] == pytest.approx(33_000.0)
    assert fam[(("family", "stock"), ("within", "5s"))] == 0.0
    assert fam[(("family", "stock"), ("within", "60s"))] == pytest.approx(84_700.0)
    assert len(fam) == 6


def test_mqtt_site_state_has_shed_capacity_or_null() -> None:
    snap = make_snapshot(T0_S, 4)
    doc = site_state("s1", SnapshotEvent(snap, LIMIT, 900_000.0, False, SHED))
    assert doc["shed_capacity"] == {
        "within_5s_kw": 33.0,
        "within_60s_kw": 117.7,
        "within_600s_kw": 117.7,
        "by_family": {
            "luxos": {"within_5s_kw": 33.0, "within_60s_kw": 33.0, "within_600s_kw": 33.0},
            "stock": {"within_5s_kw": 0.0, "within_60s_kw": 84.7, "within_600s_kw": 84.7},
        },
    }
    assert site_state("s1", SnapshotEvent(snap, LIMIT, 900_000.0, False))["shed_capacity"] is None
