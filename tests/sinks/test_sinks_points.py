"""Line-protocol encoding and the telemetry schema (no server needed)."""

from __future__ import annotations

import math

from sinks_data import LIMIT, T0_S, make_snapshot

from minerd.model import (
    Alert,
    ComplianceRecord,
    RigAction,
    RigCommand,
    Severity,
)
from minerd.sinks.lineproto import escape_key, escape_measurement, float_field, quote_string
from minerd.sinks.points import PointEncoder


def test_escaping_rules() -> None:
    assert escape_key("a b,c=d") == r"a\ b\,c\=d"
    assert escape_key("plain") == "plain"
    assert escape_key("new\nline") == r"new\nline"
    assert escape_measurement("m a,b=c") == r"m\ a\,b=c"
    assert quote_string('say "hi" \\ ok') == r'"say \"hi\" \\ ok"'
    assert float_field("x", math.nan) is None
    assert float_field("x", math.inf) is None
    assert float_field("x", 1) == "x=1.0"


def test_snapshot_lines_follow_schema() -> None:
    enc = PointEncoder("site a")
    snap = make_snapshot(T0_S, 4)
    site = enc.site_line(snap, LIMIT, 900_000.0, False)
    assert site.startswith(r"site,site=site\ a ")
    assert "limit_w=1000000.0" in site and "budget_w=900000.0" in site
    assert "rigs_hashing=3i" in site and "rigs_sleeping=1i" in site
    assert "failsafe=false" in site and 'quota_id="q-1"' in site
    assert site.endswith(f" {int(T0_S * 1000)}")

    (meter,) = enc.meter_lines(snap)
    assert meter.startswith(r"meter,meter=grid\ main,role=grid,site=site\ a ")
    assert "voltage_l2_v=231.0" in meter and "energy_import_kwh=123456.5" in meter
    assert "power_l1_w" not in meter  # missing points are left out, not written as 0

    lines = enc.rig_lines(snap.rigs, 42)
    assert len(lines) == 4
    assert lines[0] == (
        r"rig,container=C000,model=bitmain-s19jpro,rig=rig-00000,site=site\ a "
        'hashrate_ths=100.0,power_w=3250.0,state="hashing",fresh=true,'
        'chip_temp_max_c=70.0,fan_rpm_min=4800i,profile="stock" 42'
    )
    assert "chip_temp_max_c" not in lines[3]  # the sleeping rig reports none


def test_events_lines() -> None:
    enc = PointEncoder("s1")
    cmds = [
        RigCommand("r1", RigAction.SLEEP, reason="shed to quota"),
        RigCommand("r2", RigAction.SET_POWER, power_w=2500.0, reason='over "limit"'),
    ]
    lines = enc.command_lines(cmds, T0_S)
    assert lines[0].startswith("dispatch,action=sleep,rig=r1,site=s1 count=1i,")
    assert r'reason="over \"limit\""' in lines[1] and "power_w=2500.0" in lines[1]

    rec = ComplianceRecord(T0_S, 900.0, 950.0, 1000.0, 0.0, 0.0, 0.0, 900)
    comp = enc.compliance_line(rec)
    assert comp.startswith("compliance,site=s1 interval_s=900.0,avg_import_kw=950.0")
    assert "compliant=true" in comp and "samples=900i" in comp

    alert = Alert(
        "a-123",
        "grid_meter_stale",
        Severity.CRITICAL,
        (("meter", "m1"),),
        "stale",
        "no reading",
        T0_S,
    )
    text = enc.alert_line(alert, T0_S)
    # The alert id is a field: per-alert ids as tags would grow series without bound.
    assert text.startswith("alert,rule=grid_meter_stale,severity=critical,site=s1 ")
    assert 'alert_id="a-123"' in text and 'state="firing"' in text


def test_non_finite_values_are_left_out() -> None:
    import dataclasses

    snap = make_snapshot(T0_S, 1, grid_w=math.nan)
    rig = snap.rigs[0]
    bad = dataclasses.replace(rig, reading=dataclasses.replace(rig.reading, power_w=math.inf))
    enc = PointEncoder("s")
    site = enc.site_line(snap, LIMIT, 1.0, False)
    fields = site.split(" ")[1].split(",")
    assert not any(f.startswith("power_w=") for f in fields) and "nan" not in site
    assert any(f.startswith("rig_power_w=") for f in fields)
    (text,) = enc.rig_lines([bad], 1)
    assert "inf" not in text and 'state="hashing"' in text and "chip_temp_max_c=70.0" in text
