"""`[firmware.<family>]` tables in rig profiles: reaction times per firmware, validated."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from minerd.errors import ProfileError
from minerd.model import ControlMode, RigProtocol
from minerd.profiles import load_rig_model

HEAD = """
vendor = "Test"
model = "R1"
nominal_power_w = 3000
nominal_hashrate_ths = 100
sleep_power_w = 25
min_power_w = 2000
max_power_w = 3500
modes = ["sleep_wake"]
protocols = ["luxos", "stock"]
wake_time_s = 10
sleep_time_s = 5
chip_temp_derate_c = 85
chip_temp_max_c = 95
boards = 3
fans = 4
fan_rpm_nominal = 4800
curve = [[2000, 75.0], [3000, 100.0], [3500, 110.0]]
"""

STOCK = """
[firmware.stock]
sleep_time_s = 45
wake_time_s = 90
command_timeout_s = 40
modes = ["sleep_wake"]
"""


def _load(tmp_path: Path, text: str) -> object:
    (tmp_path / "r.toml").write_text(HEAD + text)
    return load_rig_model("r", directory=tmp_path)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, text)
    return info.value.problems


def test_family_table_gives_its_reaction_and_others_fall_back(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(HEAD + STOCK)
    rig = load_rig_model("r", directory=tmp_path)
    stock = rig.reaction(RigProtocol.STOCK)
    assert (stock.sleep_time_s, stock.wake_time_s, stock.command_timeout_s) == (45, 90, 40)
    assert stock.modes == {ControlMode.SLEEP_WAKE}
    lux = rig.reaction(RigProtocol.LUXOS)  # no table: the top-level times
    assert (lux.sleep_time_s, lux.wake_time_s) == (5, 10)
    assert rig.reaction(RigProtocol.CGMINER).modes == frozenset()  # read only


def test_power_steps_and_power_target(tmp_path: Path) -> None:
    text = """
[firmware.vnish]
sleep_time_s = 15
wake_time_s = 30
command_timeout_s = 10
modes = ["sleep_wake", "profiles"]
power_steps_w = [2000, 2500, 3000]
power_change_s = 60

[firmware.braiins]
sleep_time_s = 5
wake_time_s = 30
command_timeout_s = 10
modes = ["sleep_wake", "power_target"]
power_change_s = 10
"""
    (tmp_path / "r.toml").write_text(HEAD + text)
    rig = load_rig_model("r", directory=tmp_path)
    assert rig.reaction(RigProtocol.VNISH).power_steps_w == (2000, 2500, 3000)
    # a family may do more than the model's (LuxOS) modes
    assert ControlMode.POWER_TARGET in rig.reaction(RigProtocol.BRAIINS).modes


def test_every_problem_is_named(tmp_path: Path) -> None:
    text = """
[firmware.stock]
sleep_time_s = -1
wake_time_s = "slow"
command_timeout_s = 0
modes = ["hibernate"]
colour = "red"

[firmware.vnish]
sleep_time_s = 15
wake_time_s = 30
command_timeout_s = 10
modes = ["sleep_wake", "profiles"]
power_steps_w = [3000, 2500, 9000]

[firmware.braiins]
sleep_time_s = 5
wake_time_s = 30
command_timeout_s = 10
modes = ["power_target"]

[firmware.antos]
sleep_time_s = 1

[firmware.modbus]
sleep_time_s = 1
"""
    known = "luxos, cgminer, stock, vnish, whatsminer, braiins"
    assert sorted(_problems(tmp_path, text)) == sorted(
        [
            "firmware.stock: unknown key 'colour'",
            "firmware.stock: wake_time_s must be a number, got 'slow'",
            "firmware.stock: sleep_time_s must not be negative",
            "firmware.stock: command_timeout_s must be positive",
            "firmware.stock: unknown mode 'hibernate' (known: sleep_wake, profiles, power_target)",
            "firmware.vnish: power_steps_w must ascend: 2500 W after 3000 W",
            "firmware.vnish: mode 'profiles' needs power_steps_w (the autotune presets in watts)",
            "firmware.braiins: mode 'power_target' needs power_change_s (how long a new target"
            " takes)",
            f"firmware.antos: unknown family (known: {known})",
            f"firmware.modbus: unknown family (known: {known})",
        ]
    )


def test_power_step_outside_the_model(tmp_path: Path) -> None:
    text = STOCK.replace("[firmware.stock]", "[firmware.vnish]") + "power_steps_w = [20, 4000]\n"
    assert sorted(_problems(tmp_path, text)) == [
        "firmware.vnish: power_steps_w: 20 W outside [25, 3500] W",
        "firmware.vnish: power_steps_w: 4000 W outside [25, 3500] W",
    ]


def test_firmware_must_be_tables(tmp_path: Path) -> None:
    assert _problems(tmp_path, 'firmware = "stock"\n') == [
        "firmware must be a table of [firmware.<family>] tables"
    ]


def test_shipped_stock_profiles_allow_the_slow_cgi(tmp_path: Path) -> None:
    # set_miner_conf.cgi answers after ~21 s (firmware-apis.md 3.5): a shorter timeout
    # would report false failures.
    for name in ("bitmain-s19jpro", "bitmain-s21"):
        r = load_rig_model(name).reaction(RigProtocol.STOCK)
        assert r.command_timeout_s >= 35
        assert r.sleep_time_s > load_rig_model(name).reaction(RigProtocol.LUXOS).sleep_time_s


def test_model_for_family_carries_the_family_times_and_modes() -> None:
    base = load_rig_model("bitmain-s19jpro")
    stock = base.for_family(RigProtocol.STOCK)
    assert (stock.sleep_time_s, stock.wake_time_s) == (45, 90)
    assert stock.modes == {ControlMode.SLEEP_WAKE}  # no LuxOS profiles on stock firmware
    assert (stock.name, stock.nominal_power_w) == (base.name, base.nominal_power_w)
    assert base.for_family(RigProtocol.LUXOS) == base  # LuxOS as before
    # no table: the times stay, but plain cgminer is read only, so the planner gets no modes
    assert base.for_family(RigProtocol.CGMINER) == replace(base, modes=frozenset())
