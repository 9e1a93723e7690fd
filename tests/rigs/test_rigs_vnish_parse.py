"""The Vnish REST parser reads the fixtures (tests/fixtures/firmware/vnish-web) as an
operator must see the rig: watts from power_consumption (never power_usage), hashrate in
the unit GET /info names, presets plain or wrapped, only tuned presets chosen."""

from __future__ import annotations

import pytest
from firmware_fixtures import load

from minerd.devices.vnish_parse import (
    Preset,
    choose_preset,
    current_preset,
    hashrate_ths,
    miner_state,
    parse_presets,
    power_w,
)

FIX = "vnish-web"


def test_power_is_power_consumption_not_power_usage() -> None:
    summary = load(FIX, "GET_summary")
    assert power_w(summary) == 2706
    assert summary["miner"]["power_usage"] == 28  # what pyasic would report as watts
    assert power_w(load(FIX, "GET_summary-stopped")) == 24
    assert power_w(load(FIX, "GET_summary-null")) is None  # miner not running: unknown


def test_hashrate_in_the_unit_info_names() -> None:
    summary = load(FIX, "GET_summary")
    unit = load(FIX, "GET_info")["hr_measure"]
    assert unit == "GH/s"
    assert hashrate_ths(summary, unit) == pytest.approx(97.36248)
    assert hashrate_ths(summary, "MH/s") == pytest.approx(0.09736248)
    assert hashrate_ths(summary, "N/A") is None
    assert miner_state(summary) == "mining"
    assert miner_state(load(FIX, "GET_summary-stopped")) == "stopped"
    assert miner_state(load(FIX, "GET_summary-null")) == ""


def test_presets_plain_or_wrapped() -> None:
    plain = parse_presets(load(FIX, "GET_autotune_presets"))
    assert [p.name for p in plain] == ["disabled", "1900", "2300", "2700", "3068", "3400", "3900"]
    assert plain[0] == Preset("disabled", None, False)
    assert [p.name for p in plain if p.tuned] == ["2300", "2700", "3068", "3400"]
    wrapped = parse_presets(load(FIX, "GET_autotune_presets-wrapped"))
    assert [(p.name, p.watts, p.tuned) for p in wrapped] == [
        ("2300", 2300.0, True),
        ("2700", 2700.0, True),
        ("3068", 3068.0, True),
    ]
    assert parse_presets({"unexpected": 1}) == []


@pytest.mark.parametrize(
    ("wanted_w", "name"),
    [(3068, "3068"), (3000, "2700"), (5000, "3400"), (1000, "2300"), (2300, "2300")],
)
def test_choose_the_highest_tuned_preset_at_or_below(wanted_w: float, name: str) -> None:
    presets = parse_presets(load(FIX, "GET_autotune_presets"))
    chosen = choose_preset(presets, wanted_w)
    assert chosen is not None and chosen.name == name  # never 1900/3900 (untuned)


def test_no_tuned_preset_chooses_none() -> None:
    assert (
        choose_preset([Preset("1900", 1900.0, False), Preset("disabled", None, False)], 3000)
        is None
    )


def test_running_preset_from_perf_summary_or_settings() -> None:
    assert current_preset(load(FIX, "GET_perf-summary")) == "2700"
    assert current_preset(load(FIX, "GET_settings")) == "2700"
    assert current_preset({"miner": None}) is None
