"""parse_reading against every firmware fixture (tests/fixtures/firmware): what an operator
with that rig must see. One row per fixture; a new fixture without a row fails."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from firmware_fixtures import families, has, load

from minerd.devices.rig_cgminer import (
    normalise_model_type,
    parse_reading,
    parse_temps,
    profile_for_model_type,
    version_model_hint,
)
from minerd.model import RigState
from minerd.profiles import load_rig_model


@dataclass(frozen=True)
class Expect:
    profile: str  # the rig group's profile it is read with
    hashrate_ths: float
    boards: tuple[int, int]  # ok, total
    chip_max_c: float | None
    fans: int | None  # fan_rpm_min
    state: RigState
    reason: str = ""
    power_w: float | None = None  # reported (not estimated) power
    model: str = ""  # normalised Type; "" when the fixture has no version reply with one


S19J, S21, M50S = "bitmain-s19jpro", "bitmain-s21", "microbt-m50s"
HASHING = RigState.HASHING

EXPECT = {
    # S9: slots 6-8 of 16, fans in fan5/fan6, summary GHS 5s as a string, Type with newline
    "antminer-s9": Expect(S19J, 13.50421, (3, 3), 82.0, 5880, HASHING, model="Antminer S9"),
    # S17 Pro: 16 slots, 3 used; strings; "0-0-0-0" empties; 4 of 8 fan slots fitted
    "antminer-s17": Expect(S19J, 53.51407, (3, 3), 80.0, 5820, HASHING, model="Antminer S17 Pro"),
    # asleep: Mode 254, every chain_acn 0, fan_num 0, miner_count 3: not dead boards
    "antminer-s17plus-sleeping": Expect(
        S19J, 0.0, (3, 3), None, 0, RigState.SLEEPING, "asleep", model="Antminer S17+"
    ),
    "antminer-s19": Expect(S19J, 95.05773, (3, 3), 71.0, 5400, HASHING, model="Antminer S19"),
    # slot 1 dead: miner_count 2, chain_acn1 0, chain_acs1 ""
    "antminer-s19-dead-board": Expect(
        S19J,
        63.39101,
        (2, 3),
        72.0,
        5400,
        RigState.FAULT,
        "dead board: 1 of 3",
        model="Antminer S19",
    ),
    # 4 slots, the 4th empty: 3 of 3, not 3 of 4
    "antminer-s19j-pro": Expect(
        S19J, 104.05773, (3, 3), 74.0, 5400, HASHING, model="Antminer S19j Pro"
    ),
    "antminer-s19j-pro-overheat": Expect(
        S19J,
        101.95773,
        (3, 3),
        98.0,
        6060,
        RigState.FAULT,
        "overheat 98C",
        model="Antminer S19j Pro",
    ),
    # "2--1-20-22" temperatures; GHS av in exponent form
    "antminer-s19pro-cold-start": Expect(
        S19J, 35.95773, (3, 3), 28.0, 5400, HASHING, model="Antminer S19 Pro"
    ),
    "antminer-s21": Expect(S21, 200.05773, (3, 3), 67.0, 4950, HASHING, model="Antminer S21"),
    "vnish-s17plus": Expect(S19J, 73.20132, (3, 3), 78.0, 5400, HASHING, model="Antminer S17+"),
    "vnish-s19": Expect(S19J, 95.95773, (3, 3), 71.0, 5400, HASHING, model="Antminer S19"),
    "braiins-bmminer": Expect(S19J, 13.80421, (3, 3), 80.0, 5880, HASHING, model="Antminer S9"),
    # MH/s keys; no chain slots in stats: boards from the profile
    "bosminer-plus": Expect(S19J, 13.911872987654321, (3, 3), None, None, HASHING),
    # LuxOS: GHS keys, chain_rate4 "0", numeric temps (power comes from its `power` command)
    "luxos-s19kpro": Expect(
        S19J, 120.26912, (3, 3), 68.0, 5400, HASHING, model="Antminer S19k Pro"
    ),
    # btminer v2: MH/s keys, STATS data in STATS[0], power and chip temp in summary
    "whatsminer-m50s-v2": Expect(M50S, 126.01187712, (3, 3), 83.5, 5490, HASHING, power_w=3271),
}


def test_every_fixture_has_a_row() -> None:
    assert sorted(EXPECT) == families()


@pytest.mark.parametrize("family", sorted(EXPECT))
def test_fixture_reads_as_the_rig_is(family: str) -> None:
    e = EXPECT[family]
    model = load_rig_model(e.profile)
    stats = load(family, "stats")
    r = parse_reading(family, 50.0, model, load(family, "summary"), stats)
    assert r.hashrate_ths == pytest.approx(e.hashrate_ths, rel=1e-9)
    assert (r.boards_ok, r.boards_total) == e.boards
    assert r.chip_temp_max_c == e.chip_max_c
    assert r.fan_rpm_min == e.fans
    assert (r.state, r.reason) == (e.state, e.reason)
    if e.power_w is None:
        assert r.power_estimated
    else:
        assert not r.power_estimated and r.power_w == e.power_w
    if has(family, "version"):
        hint = version_model_hint(load(family, "version"))
        assert hint.split(" / ")[0] == (e.model or hint.split(" / ")[0])
        if e.model:
            assert hint.startswith(e.model + " / ")


def test_version_hint_names_third_party_firmware() -> None:
    assert version_model_hint(load("vnish-s17plus", "version")) == "Antminer S17+ / vnish 2.0.3"
    assert version_model_hint(load("antminer-s9", "version")) == "Antminer S9 / BMMiner"
    assert version_model_hint(load("luxos-s19kpro", "version")) == "Antminer S19k Pro / LUXminer"


def test_temperature_strings_with_negatives_and_empties() -> None:
    assert parse_temps("2--1-20-22") == [2.0, -1.0, 20.0, 22.0]
    assert parse_temps("73-45-64-65") == [73.0, 45.0, 64.0, 65.0]
    assert parse_temps("-5-3") == [-5.0, 3.0]
    assert parse_temps("25-61") == [25.0, 61.0]
    assert parse_temps("-") == []
    assert parse_temps("0-0-0-0") == [0.0, 0.0, 0.0, 0.0]
    assert parse_temps("71.5") == [71.5] and parse_temps(-83) == [-83.0]


def test_model_types_as_firmware_sends_them() -> None:
    assert normalise_model_type("Antminer S17+ (vnish 2.0.3)") == "Antminer S17+"
    assert normalise_model_type("Antminer S9\nV1.3.58") == "Antminer S9"
    assert normalise_model_type("Antminer S9 Pro (v5.1) ") == "Antminer S9 Pro"
    assert normalise_model_type("Antminer S9 Hiveon") == "Antminer S9"
    assert normalise_model_type("Bitmain Antminer S21") == "Antminer S21"
    assert normalise_model_type(None) == ""
    assert profile_for_model_type("Antminer S19j Pro") == S19J
    assert profile_for_model_type("antminer s21") == S21
    assert profile_for_model_type("M50S") == M50S
    assert profile_for_model_type("Antminer S19k Pro") is None


def test_unknown_or_other_model_is_one_clear_warning(caplog: pytest.LogCaptureFixture) -> None:
    model = load_rig_model(S19J)
    with caplog.at_level(logging.WARNING, logger="minerd.devices.rig_cgminer"):
        for _ in range(3):
            r = parse_reading(
                "lux-7",
                0.0,
                model,
                load("luxos-s19kpro", "summary"),
                load("luxos-s19kpro", "stats"),
            )
            assert r.state is HASHING
        parse_reading(
            "s21-3", 0.0, model, load("antminer-s21", "summary"), load("antminer-s21", "stats")
        )
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # once per rig and model, not once per read
    assert "lux-7" in warnings[0] and "'Antminer S19k Pro'" in warnings[0]
    assert "no profile in drivers/rigs fits it" in warnings[0]
    assert "s21-3" in warnings[1] and "profile bitmain-s21 fits it" in warnings[1]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="minerd.devices.rig_cgminer"):
        parse_reading(
            "ok-1",
            0.0,
            model,
            load("antminer-s19j-pro", "summary"),
            load("antminer-s19j-pro", "stats"),
        )
    assert not caplog.records  # the model it is configured as: nothing to say


def test_stats_hashrate_when_summary_has_none() -> None:
    # A summary without hashrate keys: the chains' rates in rate_unit (GH) are summed.
    model = load_rig_model(S19J)
    summary = {"STATUS": [{"STATUS": "S"}], "SUMMARY": [{"Elapsed": 10}]}
    stats = load("antminer-s19j-pro", "stats")
    stats["STATS"][1].pop("GHS 5s")
    stats["STATS"][1].pop("GHS av")
    r = parse_reading("r", 0.0, model, summary, stats)
    assert r.hashrate_ths == pytest.approx((34712.50 + 34655.21 + 34690.02) / 1000)
    stats["STATS"][1]["rate_unit"] = "TH"
    r = parse_reading("r", 0.0, model, summary, stats)
    assert r.hashrate_ths == pytest.approx(34712.50 + 34655.21 + 34690.02)
