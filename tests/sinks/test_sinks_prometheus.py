"""The /metrics exposition: values from the latest snapshot, health, per-rig switch, speed."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sinks_data import LIMIT, T0_S, make_rigs, make_snapshot

from minerd.model import RigAction, RigCommand
from minerd.sinks import PrometheusSink, SinkHub, SinkStats
from minerd.sinks import prometheus as prometheus_module


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_render_values_health_and_per_rig_auto() -> None:
    prom = PrometheusSink("s1")
    hub = SinkHub([prom])
    assert b"minerd_site_grid_power_watts" not in prom.render_metrics()  # nothing yet

    hub.publish_snapshot(make_snapshot(T0_S, 8, grid_w=600_000.0), LIMIT, 950_000.0)
    hub.publish_commands([RigCommand("rig-00001", RigAction.SLEEP)], T0_S)
    prom.observe_cycle("control", 0.012)
    prom.count_poll_error("rig", "timeout")
    prom.observe_api_request("/api/v1/site", "GET", 200, 0.003)
    prom.add_stats_source(
        lambda: [SinkStats("influx", False, 3, 0, spool_points=900, spool_fill_ratio=0.9)]
    )
    got = samples(prom.render_metrics())
    site = (("site", "s1"),)
    assert got[("minerd_site_grid_power_watts", site)] == 600_000.0
    assert got[("minerd_site_limit_watts", site)] == 1_000_000.0
    assert got[("minerd_site_budget_watts", site)] == 950_000.0
    assert got[("minerd_site_rig_power_watts", site)] == 6 * 3250.0 + 2 * 15.0
    assert got[("minerd_rigs", (("site", "s1"), ("state", "sleeping")))] == 2
    assert (
        got[
            ("minerd_container_rigs", (("container", "C000"), ("site", "s1"), ("state", "hashing")))
        ]
        == 6
    )
    meter = (("meter", "grid main"), ("phase", "l2"), ("site", "s1"))
    assert got[("minerd_meter_voltage_volts", meter)] == 231.0
    assert got[("minerd_control_cycle_duration_seconds_count", (("loop", "control"),))] == 1
    assert got[("minerd_poll_errors_total", (("device_kind", "rig"), ("reason", "timeout")))] == 1
    assert got[("minerd_dispatch_commands_total", (("action", "sleep"),))] == 1
    assert got[("minerd_spool_fill_ratio", (("sink", "influx"),))] == 0.9
    rig = (
        ("container", "C000"),
        ("model", "bitmain-s19jpro"),
        ("rig", "rig-00005"),
        ("site", "s1"),
    )
    assert got[("minerd_rig_power_watts", rig)] == 3250.0  # 8 rigs: per-rig series on
    # A dedicated registry: nothing leaks into the process-global one.
    assert prometheus_client.REGISTRY.get_sample_value("minerd_rigs") is None


def test_50k_rigs_render_without_per_rig_series_summing_each_snapshot_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # How fast: benchmarks/bench_sinks.py (/metrics render at 50,000 rigs, target 100 ms).
    summed: list[int] = []
    real = prometheus_module._summarise

    def counting(snapshot):  # type: ignore[no-untyped-def]
        summed.append(len(snapshot.rigs))
        return real(snapshot)

    monkeypatch.setattr(prometheus_module, "_summarise", counting)
    prom = PrometheusSink("big")
    hub = SinkHub([prom])
    rigs = make_rigs(50_000, T0_S)
    hub.publish_snapshot(make_snapshot(T0_S, rigs=rigs), LIMIT, 1.0)
    text = prom.render_metrics()
    assert prom.render_metrics() == text  # same snapshot: the fleet sums are cached
    assert summed == [50_000]
    assert b"minerd_rig_power_watts" not in text  # auto: off above 2,000 rigs
    got = samples(text)
    assert got[("minerd_rigs", (("site", "big"), ("state", "hashing")))] == 37_500
    hub.publish_snapshot(make_snapshot(T0_S + 1, rigs=rigs), LIMIT, 1.0)
    prom.render_metrics()  # a new snapshot is summed again, once
    prom.render_metrics()
    assert summed == [50_000, 50_000]


def test_cycle_timing_counters_follow_the_cycle_each_scrape() -> None:
    from dataclasses import dataclass

    from minerd.sinks.health_metrics import CycleCollector

    @dataclass
    class Counts:  # the two counters runtime.cycle.ControlCycle keeps
        cycles_skipped: int = 0
        wakes_coalesced: int = 0

    cycles = [Counts()]
    prom = PrometheusSink("s1")
    prom.add_collector(CycleCollector(lambda: cycles[-1]))
    got = samples(prom.render_metrics())
    assert got[("minerd_control_cycles_skipped_total", ())] == 0
    assert got[("minerd_control_wakes_coalesced_total", ())] == 0
    cycles[-1].cycles_skipped = 3
    cycles[-1].wakes_coalesced = 2
    got = samples(prom.render_metrics())
    assert got[("minerd_control_cycles_skipped_total", ())] == 3
    assert got[("minerd_control_wakes_coalesced_total", ())] == 2
    cycles.append(Counts(cycles_skipped=7))  # a cluster role swapped the site's cycle
    assert samples(prom.render_metrics())[("minerd_control_cycles_skipped_total", ())] == 7
