"""Compliance records on hand-computed cases."""

from __future__ import annotations

from dataclasses import replace

import pytest

from minerd.control.compliance import Accumulator, Compliance, Sample, summarize
from minerd.model import ComplianceRecord


def test_one_minute_by_hand() -> None:
    samples = [Sample(0.0, 100.0, 120.0), Sample(30.0, 150.0, 120.0), Sample(45.0, 110.0, 100.0)]
    (rec,) = summarize(samples, 60.0, until_s=60.0)
    # avg (100*30 + 150*15 + 110*15) / 60; over: 30 kW for 15 s, then 10 kW for 15 s.
    expected = ComplianceRecord(
        interval_start_s=0.0,
        interval_s=60.0,
        avg_import_kw=115.0,
        limit_kw=100.0,
        max_excess_kw=30.0,
        seconds_over=30.0,
        energy_over_kwh=(30 * 15 + 10 * 15) / 3600,
        samples=3,
    )
    assert rec.avg_import_kw == pytest.approx(expected.avg_import_kw)
    assert rec.energy_over_kwh == pytest.approx(expected.energy_over_kwh)
    assert replace(rec, avg_import_kw=115.0, energy_over_kwh=expected.energy_over_kwh) == expected


def test_sample_held_across_interval_boundary() -> None:
    samples = [Sample(50.0, 200.0, 150.0), Sample(70.0, 100.0, 150.0)]
    first, second = summarize(samples, 60.0, until_s=120.0)
    assert (first.interval_start_s, first.avg_import_kw, first.seconds_over) == (0.0, 200.0, 10.0)
    assert first.energy_over_kwh == pytest.approx(500 / 3600)
    assert second.interval_start_s == 60.0
    assert second.avg_import_kw == pytest.approx((200 * 10 + 100 * 50) / 60)
    assert second.max_excess_kw == 50.0  # the held sample was over in this interval too
    assert second.seconds_over == 10.0 and second.samples == 1


def test_gap_is_not_filled_with_stale_data() -> None:
    samples = [Sample(0.0, 100.0, 120.0), Sample(400.0, 130.0, 120.0)]
    recs = summarize(samples, 60.0, until_s=420.0)
    assert [r.interval_start_s for r in recs] == [0.0, 360.0]
    assert recs[1].avg_import_kw == 130.0 and recs[1].seconds_over == 20.0


def test_out_of_order_sample_is_ignored() -> None:
    acc, _ = Accumulator(60.0).add(Sample(10.0, 50.0, 100.0))
    acc2, closed = acc.add(Sample(5.0, 500.0, 100.0))
    assert acc2 == acc and closed == []


def test_minute_and_settlement_records() -> None:
    comp = Compliance.with_settlement(900.0)
    minutes: list[ComplianceRecord] = []
    settlements: list[ComplianceRecord] = []
    for k in range(1800):
        over = 600 <= k < 660  # one minute at 130 kW against 120
        comp, m, s = comp.add(Sample(float(k), 130.0 if over else 100.0, 120.0))
        minutes += m
        settlements += s
    comp, m, s = comp.close(1800.0)
    minutes += m
    settlements += s
    assert len(minutes) == 30 and len(settlements) == 2
    assert [r.seconds_over for r in minutes if r.seconds_over] == [60.0]
    first = settlements[0]
    assert first.interval_s == 900.0 and first.samples == 900
    assert first.avg_import_kw == pytest.approx((100 * 840 + 130 * 60) / 900)
    assert first.energy_over_kwh == pytest.approx(10 * 60 / 3600)
    assert settlements[1].seconds_over == 0.0 and settlements[1].max_excess_kw == 0.0
