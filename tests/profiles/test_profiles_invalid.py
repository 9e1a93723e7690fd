"""Broken profiles written to a temp dir: the loader names every problem, not just the first."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerd.errors import ProfileError
from minerd.profiles import load_meter_map, load_rig_model, load_rig_register_map

METER_HEAD = """
vendor = "Test"
model = "T1"
function_code = {fc}
addressing = "wire"
byte_order = "big"
word_order = "high_first"
"""

GOOD_RIG = """
vendor = "Test"
model = "R1"
nominal_power_w = 3000
nominal_hashrate_ths = 100
sleep_power_w = 25
min_power_w = 2000
max_power_w = 3500
modes = ["sleep_wake", "profiles"]
protocols = ["luxos"]
wake_time_s = 10
sleep_time_s = 5
chip_temp_derate_c = 85
chip_temp_max_c = 95
boards = 3
fans = 4
fan_rpm_nominal = 4800
curve = [[2000, 75.0], [3000, 100.0], [3500, 110.0]]

[[profiles]]
name = "eco"
power_w = 2500
hashrate_ths = 87.5

[[profiles]]
name = "default"
power_w = 3000
hashrate_ths = 100
"""


def _point(name: str, address: int, type_: str, unit: str, extra: str = "") -> str:
    return (
        f'\n[[points]]\nname = "{name}"\naddress = {address}\ntype = "{type_}"\n'
        f'unit = "{unit}"\n{extra}'
    )


def _problems_meter(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(ProfileError) as info:
        load_meter_map("bad", directory=tmp_path)
    assert info.value.profile == "bad"
    assert str(info.value).startswith("profile bad: ")
    return info.value.problems


def _problems_rig(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(ProfileError) as info:
        load_rig_model("bad", directory=tmp_path)
    return info.value.problems


def test_good_rig_fixture_loads(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text(GOOD_RIG)
    rig = load_rig_model("ok", directory=tmp_path)
    assert rig.hashrate_at(2500) == 87.5
    assert [p.name for p in rig.profiles] == ["eco", "default"]


def test_meter_map_lists_every_problem(tmp_path: Path) -> None:
    text = (
        METER_HEAD.format(fc=4)
        + _point("power_w", 0, "float32", "W", "registers = 2\n")
        + _point("power_l1_w", 1, "float32", "W")  # overlaps power_w (0..1)
        + _point("power_l1_w", 10, "int16", "W")  # duplicate name
        + _point("voltage_l1_v", 20, "float32", "kV")  # unknown unit
        + _point("current_l1_a", 22, "uint16", "W")  # unit does not fit the quantity
        + _point("frequency_hz", 24, "uint16", "")  # not a MeterReading quantity
        + _point("energy_import_kwh", 26, "float24", "kWh")  # unknown type
        + _point("power_l2_w", 30, "int16", "W", "writable = true\n")  # FC4 + no bounds
        + _point("power_l3_w", 31, "int16", "W", "colour = 3\nscale = 0\n")
        + _point("energy_export_kwh", 40, "float32", "kWh", "registers = 1\n")
    )
    assert _problems_meter(tmp_path, text) == [
        "point voltage_l1_v: unknown unit 'kV' (known: , A, C, GHs, THs, V, W, Wh, kW, kWh, "
        "rpm, s)",
        "point current_l1_a: unit 'W' does not fit current_l1_a (use one of: A)",
        "point frequency_hz: unknown meter quantity 'frequency_hz' (known: power_w, "
        "power_l1_w, power_l2_w, power_l3_w, voltage_l1_v, voltage_l2_v, voltage_l3_v, "
        "current_l1_a, current_l2_a, current_l3_a, energy_import_kwh, energy_export_kwh)",
        "point energy_import_kwh: type 'float24' is not one of: int16, uint16, int32, "
        "uint32, int64, uint64, float32",
        "point power_l2_w: writable point in an input-register map (function code 4 is read only)",
        "point power_l2_w: writable point needs both min and max",
        "point power_l3_w: unknown key 'colour'",
        "point power_l3_w: scale must not be 0",
        "point energy_export_kwh: registers = 1 but float32 takes 2",
        "point power_l1_w: duplicate name",
        "point power_l1_w (1..2) overlaps power_w (0..1)",
    ]


def test_meter_map_header_problems(tmp_path: Path) -> None:
    text = (
        'vendor = "Test"\nfunction_code = 6\nbyte_order = "middle"\nword_order = "swapped"\n'
        "baud = 9600\n" + _point("voltage_l1_v", 0, "float32", "V")
    )
    assert _problems_meter(tmp_path, text) == [
        "unknown key 'baud'",
        "missing key 'model'",
        "function_code 6 is not 3 (holding) or 4 (input)",
        "missing key 'addressing': how the table's numbers map to the wire (wire, one_based, "
        "input_30001, holding_40001)",
        "byte_order 'middle' is not one of: big, little",
        "word_order 'swapped' is not one of: high_first, low_first",
        "a meter map needs a 'power_w' point",
    ]


def _head(fc: int, addressing: str) -> str:
    return METER_HEAD.format(fc=fc).replace('addressing = "wire"', f'addressing = "{addressing}"')


def test_manual_numbers_become_wire_addresses(tmp_path: Path) -> None:
    cases = [
        ("wire", 3, 3059, 3059),
        ("one_based", 3, 3060, 3059),
        ("input_30001", 4, 30053, 52),
        ("holding_40001", 3, 40001, 0),
    ]
    for i, (addressing, fc, number, wire) in enumerate(cases):
        text = _head(fc, addressing) + _point("power_w", number, "float32", "W")
        (tmp_path / f"ok{i}.toml").write_text(text)
        point = load_meter_map(f"ok{i}", directory=tmp_path).point("power_w")
        assert point is not None and point.address == wire, addressing


def test_addressing_problems(tmp_path: Path) -> None:
    assert _problems_meter(tmp_path, _head(3, "modicon") + _point("power_w", 0, "int16", "W")) == [
        "addressing 'modicon' is not one of: wire, one_based, input_30001, holding_40001"
    ]
    # 3xxxx numbers are input registers: they cannot describe a holding-register map
    text = (
        _head(3, "input_30001")
        + _point("power_w", 30053, "float32", "W")
        + _point("voltage_l1_v", 52, "float32", "V")  # a wire address in a 3xxxx table
        + _point("voltage_l2_v", 39999, "float32", "V")  # runs past 39999: still on the wire
    )
    assert _problems_meter(tmp_path, text) == [
        "addressing 'input_30001' numbers registers read with function_code 4",
        "point voltage_l1_v: address 52 outside 30001..39999 (addressing 'input_30001': 3xxxx "
        "input registers: wire = number - 30001)",
    ]
    # One-based numbers: 0 does not exist, and problems name the file's own numbers
    text = (
        _head(3, "one_based")
        + _point("power_w", 0, "float32", "W")
        + _point("power_l1_w", 3060, "float32", "kW")
        + _point("power_l2_w", 3061, "float32", "kW")
        + _point("energy_import_kwh", 65534, "int64", "Wh")
    )
    assert _problems_meter(tmp_path, text) == [
        "point power_w: address 0 outside 1..65536 (addressing 'one_based': register numbers "
        "from 1: wire = number - 1)",
        "point energy_import_kwh: int64 at 65534 (wire 65533) runs past wire address 65535",
        "point power_l2_w (3061..3062) overlaps power_l1_w (3060..3061)",
    ]


def test_meter_map_writable_bounds(tmp_path: Path) -> None:
    # Meters have no writable quantities in practice, but the rules are shared: use a rig map.
    head = METER_HEAD.format(fc=3)
    text = (
        head
        + _point("state", 0, "uint16", "", "min = 0\n")
        + _point("run", 1, "uint16", "", "writable = true\nmin = 1\nmax = 0\n")
        + _point("power_limit_w", 2, "uint16", "W", "writable = true\nmin = 0\nmax = 70000\n")
        + _point("uptime_s", 65535, "uint32", "s")
    )
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(ProfileError) as info:
        load_rig_register_map("bad", directory=tmp_path)
    assert info.value.problems == [
        "point state: min/max are only allowed on writable points",
        "point run: min 1 must be below max 0",
        "point power_limit_w: bound 70000 does not fit uint16 at scale 1",
        "point uptime_s: uint32 at 65535 runs past wire address 65535",
    ]


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text("")
    with pytest.raises(ProfileError) as info:
        load_meter_map("nope", directory=tmp_path)
    assert info.value.problems == [f"no meter profile {tmp_path / 'nope.toml'} (known: other)"]
    (tmp_path / "broken.toml").write_text("vendor = \n")
    with pytest.raises(ProfileError, match="invalid TOML"):
        load_meter_map("broken", directory=tmp_path)
    with pytest.raises(ProfileError, match="invalid rig profile name"):
        load_rig_model("../etc/passwd", directory=tmp_path)
    assert "missing key 'points'" in _problems_meter(tmp_path, METER_HEAD.format(fc=3))


def test_rig_model_lists_every_problem(tmp_path: Path) -> None:
    text = (
        GOOD_RIG.replace("sleep_power_w = 25", "sleep_power_w = 2500")
        .replace('modes = ["sleep_wake", "profiles"]', 'modes = ["sleep_wake", "hibernate"]')
        .replace('protocols = ["luxos"]', 'protocols = ["stratum"]')
        .replace("chip_temp_derate_c = 85", "chip_temp_derate_c = 99")
        .replace("boards = 3", "boards = 0\ncolour = 'red'")
        .replace("fan_rpm_nominal = 4800", "fan_rpm_nominal = 4800.5")
    )
    assert _problems_rig(tmp_path, text) == [
        "unknown key 'colour'",
        "fan_rpm_nominal must be an integer, got 4800.5",
        "unknown mode 'hibernate' (known: sleep_wake, profiles, power_target)",
        "unknown protocol 'stratum' (known: luxos, cgminer, stock, vnish, whatsminer, braiins,"
        " modbus, mqtt)",
        "boards must be positive",
        "sleep_power_w 2500 must be below min_power_w 2000",
        "chip_temp_derate_c 99 must be below chip_temp_max_c 95",
        "[[profiles]] given but mode 'profiles' is not declared",
    ]


def test_rig_curve_problems(tmp_path: Path) -> None:
    rising = GOOD_RIG.replace(
        "curve = [[2000, 75.0], [3000, 100.0], [3500, 110.0]]",
        "curve = [[2000, 75.0], [2500, 80.0], [3000, 100.0], [3500, 110.0]]",
    )
    assert _problems_rig(tmp_path, rising) == [
        "curve must be concave (diminishing returns): slope rises after 2500 W",
        "curve efficiency (TH/W) must not improve with power: at 3000 W",
    ]
    backwards = GOOD_RIG.replace(
        "curve = [[2000, 75.0], [3000, 100.0], [3500, 110.0]]",
        "curve = [[2000, 75.0], [1900, 80.0], [3500, 70.0], [3600]]",
    )
    assert _problems_rig(tmp_path, backwards) == [
        "curve[3] must be [power_w, hashrate_ths], got [3600]",
        "curve power must ascend: 1900 W after 2000 W",
    ]
    falling = GOOD_RIG.replace("[3500, 110.0]", "[3500, 90.0]")
    assert _problems_rig(tmp_path, falling) == [
        "curve hashrate must not fall: 90 TH/s at 3500 W after 100 TH/s at 3000 W"
    ]
    short = GOOD_RIG.replace(
        "curve = [[2000, 75.0], [3000, 100.0], [3500, 110.0]]",
        "curve = [[2100, 75.0], [3000, 100.0]]",
    )
    assert _problems_rig(tmp_path, short) == [
        "curve must cover [2000, 3500] W, it spans [2100, 3000] W"
    ]


def test_rig_profile_problems(tmp_path: Path) -> None:
    text = GOOD_RIG + (
        '\n[[profiles]]\nname = "default"\npower_w = 2900\nhashrate_ths = -1\nextra = 1\n'
        '\n[[profiles]]\nname = "default"\npower_w = 2800\nhashrate_ths = 97\n'
    )
    assert _problems_rig(tmp_path, text) == [
        "profile default: unknown key 'extra'",
        "profile default: hashrate_ths must be positive",
        "profile default: duplicate name",
        "profiles must ascend in power: default (2800 W) after default",
    ]


def test_rig_values_checked_against_the_curve(tmp_path: Path) -> None:
    # Only once the basics hold: the curve is the reference for nominal and profile values.
    text = (
        GOOD_RIG.replace("nominal_hashrate_ths = 100", "nominal_hashrate_ths = 120")
        .replace("power_w = 2500", "power_w = 3600")
        .replace("hashrate_ths = 100\n", "hashrate_ths = 90\n")
    )
    assert _problems_rig(tmp_path, text) == [
        "profiles must ascend in power: default (3000 W) after eco",
        "profile eco: 3600 W outside [2000, 3500] W",
        "profile default: 90 TH/s is more than 5% off the curve (100.0 TH/s)",
        "nominal_hashrate_ths 120 is more than 5% off the curve at nominal_power_w (100.0 TH/s)",
    ]


def test_power_target_needs_a_range(tmp_path: Path) -> None:
    text = (
        GOOD_RIG.replace('modes = ["sleep_wake", "profiles"]', 'modes = ["power_target"]')
        .replace("max_power_w = 3500", "max_power_w = 2000")
        .replace("nominal_power_w = 3000", "nominal_power_w = 2000")
    )
    problems = _problems_rig(tmp_path, text)
    assert "power_target mode needs min_power_w below max_power_w" in problems
    assert "[[profiles]] given but mode 'profiles' is not declared" in problems
