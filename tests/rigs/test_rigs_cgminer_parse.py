"""parse_reading on replies shaped like real bmminer/LUXminer output (field quirks)."""

from __future__ import annotations

import pytest

from minerd.devices.rig import estimate_power_w, pick_profile
from minerd.devices.rig_cgminer import parse_reading, version_model_hint
from minerd.model import RigState
from minerd.profiles import load_rig_model

MODEL = load_rig_model("bitmain-s19jpro")


def _summary(mhs_5s: object, mhs_1m: object = 0.0, elapsed: int = 7200) -> dict[str, object]:
    return {
        "STATUS": [{"STATUS": "S"}],
        "SUMMARY": [{"Elapsed": elapsed, "MHS 5s": mhs_5s, "MHS 1m": mhs_1m}],
    }


def _stats(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "fan_num": 4,
        "fan1": 5400,
        "fan2": 5430,
        "fan3": 5460,
        "fan4": 5490,
        "fan5": 0,  # unfitted slots read 0
        "fan6": 0,
        "temp2_1": 71,
        "temp2_2": "73",
        "temp2_3": 72.5,
        "chain_acn1": 126,
        "chain_acn2": 126,
        "chain_acn3": 126,
        "chain_rate1": "34500.12",
        "chain_rate2": "34600.00",
        "chain_rate3": "34400.50",
    }
    base.update(fields)
    return {"STATUS": [{"STATUS": "S"}], "STATS": [{"BMMiner": "1.0.0"}, base]}


def test_hashing_rig_with_string_fields_and_unfitted_fans() -> None:
    r = parse_reading("r1", 100.0, MODEL, _summary(103_500_000.0), _stats())
    assert r.state is RigState.HASHING and r.reason == ""
    assert r.hashrate_ths == pytest.approx(103.5)
    assert r.chip_temp_max_c == 73.0
    assert r.fan_rpm_min == 5400  # fan5/fan6 are not fitted
    assert r.boards_ok == r.boards_total == 3
    assert r.uptime_s == 7200 and r.taken_at_s == 100.0
    # no `power` reply: estimated from the curve
    assert r.power_estimated and r.power_w == pytest.approx(estimate_power_w(MODEL, 103.5))


def test_mhs_5s_missing_or_inf_falls_back_to_1m() -> None:
    r = parse_reading("r1", 0.0, MODEL, _summary(None, 90_000_000.0), _stats())
    assert r.hashrate_ths == pytest.approx(90.0)


def test_luxos_power_and_profile() -> None:
    power = {"STATUS": [{"STATUS": "S"}], "POWER": [{"Watts": 2712, "PSU": True}]}
    prof = {"STATUS": [{"STATUS": "S"}], "PROFILE": [{"Profile": "-1"}]}
    r = parse_reading("r1", 0.0, MODEL, _summary(97e6), _stats(), power, prof)
    assert r.power_w == 2712 and not r.power_estimated
    assert r.profile == "-1" and r.power_limit_w == 2700


def test_asleep_rig() -> None:
    power = {"STATUS": [{"STATUS": "S"}], "POWER": [{"Watts": 24}]}
    stats = _stats(chain_rate1="", chain_rate2="0.00", chain_rate3="", fan1=1500)
    r = parse_reading("r1", 0.0, MODEL, _summary(0.0), stats, power)
    assert r.state is RigState.SLEEPING and r.reason == "asleep"
    assert r.boards_ok == 3  # chips present; no rate expected while asleep


def test_no_hashrate_but_full_power_is_unknown() -> None:
    power = {"STATUS": [{"STATUS": "S"}], "POWER": [{"Watts": 2900}]}
    r = parse_reading("r1", 0.0, MODEL, _summary(0.0), _stats(), power)
    assert r.state is RigState.UNKNOWN and "no hashrate at 2900 W" in r.reason


def test_faults_combined() -> None:
    stats = _stats(temp2_2=97, fan3=0, chain_acn3=0, chain_rate3="")
    r = parse_reading("r1", 0.0, MODEL, _summary(70e6), stats)
    assert r.state is RigState.FAULT
    assert r.reason == "overheat 97C; fan failure: 1 of 4 fans at 0 rpm; dead board: 1 of 3"
    assert r.boards_ok == 2


def test_profile_pick_and_estimate_edges() -> None:
    assert pick_profile(MODEL, 2800) == "-1"
    assert pick_profile(MODEL, 3068) == "default"
    assert pick_profile(MODEL, 100) == "-2"  # below every profile: the lowest
    assert pick_profile(MODEL, 10_000) == "+1"
    assert estimate_power_w(MODEL, 0.0) == MODEL.sleep_power_w
    assert estimate_power_w(MODEL, 104.0) == pytest.approx(3068)
    assert estimate_power_w(MODEL, 500.0) == MODEL.curve[-1].power_w


def test_version_hint() -> None:
    reply = {
        "STATUS": [{"STATUS": "S"}],
        "VERSION": [{"Type": "Antminer S19j Pro", "LUXminer": "2024.5.1", "API": "3.7"}],
    }
    assert version_model_hint(reply) == "Antminer S19j Pro / LUXminer"
