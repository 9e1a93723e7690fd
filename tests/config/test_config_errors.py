"""Each fixture config holds one kind of mistake; the loader must name it exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerd.errors import ConfigError
from minerd.settings import load_settings

FIXTURES = Path(__file__).parent / "fixtures"
METER_PROFILES = (
    "eastron-sdm630, generic-modbus-meter, janitza-umg604, janitza-umg604-legacy, schneider-iem3000"
)
RIG_PROFILES = "bitmain-s19jpro, bitmain-s21, microbt-m50s"

CASES: dict[str, list[str]] = {
    "bad_cidr": ["rigs[0].hosts: '10.0.0.0/33' is not a valid network"],
    "unknown_profile": [
        f"meters[1].profile: unknown meter profile 'foo' (known: {METER_PROFILES})",
        f"rigs[0].profile: unknown rig profile 'bitmain-s99' (known: {RIG_PROFILES})",
    ],
    "duplicate_names": ["meters[1].name: duplicate name 'grid-main' (also meters[0])"],
    "negative_limit": [
        "grid.contracted_limit_kw: Input should be greater than or equal to 0 (got -5)"
    ],
    "failsafe_above_contracted": [
        "grid.failsafe_limit_kw: 6000 is above grid.contracted_limit_kw 5000"
    ],
    "missing_token_file": [
        f"api.tokens[0].sha256_file: file not found: {FIXTURES / 'secrets/missing.sha256'}"
    ],
    "port_out_of_range": [
        "rigs[0].port: Input should be greater than or equal to 1 (got 0)",
        "api.listen: '127.0.0.1:70000': port 70000 is out of range 1..65535",
    ],
    "unknown_key": ["grid.margn_kw: unknown key (did you mean 'margin_kw'?)"],
    "wrong_type": [
        "control.interval_s: Input should be a valid number, unable to parse string as a"
        " number (got 'fast')",
        "control.max_wakes_per_cycle: Input should be a valid integer, got a number with a"
        " fractional part (got 2.5)",
    ],
    "missing_csv": [f"rigs[0].csv: file not found: {FIXTURES / 'no-such-rigs.csv'}"],
    "overlapping_hosts": [
        "rigs[1].hosts: 10.0.0.5 overlaps rigs[0].hosts",
        "rigs[2].csv: 10.0.1.1 overlaps rigs[1].hosts",
    ],
    "bad_endpoint": [
        "meters[0].endpoint: 'http://127.0.0.1:1502' is not a valid endpoint;"
        " expected tcp://host:port"
    ],
    "many_mistakes": [
        "site.timezone: unknown time zone 'Mars/Olympus'",
        "grid.failsafe_limit_kw: 6000 is above grid.contracted_limit_kw 5000",
        "meters[0].endpoint: 'tcp://127.0.0.1' is not a valid endpoint; expected tcp://host:port",
        f"meters[0].profile: unknown meter profile 'foo' (known: {METER_PROFILES})",
        "meters[1].colour: unknown key",
        "meters[1].name: duplicate name 'grid-main' (also meters[0])",
        "rigs[1].interval_s: Input should be greater than 0 (got -1)",
        "rigs[1].hosts: '10.0.0.0/33' is not a valid network",
        "rigs[1].hosts: 10.0.0.5 overlaps rigs[0].hosts",
        "api.tokens[0].role: Input should be 'grid', 'operator' or 'viewer' (got 'admin')",
        "api.tokens[0].sha256: must be 64 hexadecimal characters (a SHA-256 digest)",
        "storage.pth: unknown key (did you mean 'path'?)",
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_fixture_reports_exact_problems(name: str) -> None:
    path = FIXTURES / f"{name}.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert sorted(info.value.problems) == sorted(CASES[name])
    assert info.value.source == str(path)


def test_config_many_mistakes_keeps_file_order() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(FIXTURES / "many_mistakes.toml", environ={})
    assert info.value.problems == CASES["many_mistakes"]


def test_config_missing_config_file() -> None:
    path = FIXTURES / "does-not-exist.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.problems == [f"config file not found: {path}"]


def test_config_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[site]\nname = "x\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    # tomllib's wording varies between Python releases; the line number must be there.
    [problem] = info.value.problems
    assert problem.startswith("invalid TOML: Illegal character")
    assert "(at line 2, column" in problem


def test_config_missing_sections_and_wrong_shapes(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('grid = 5\nmeters = {name = "x"}\n[sitee]\nname = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.problems == [
        "site: missing required section",
        "grid: expected a table [grid] (got 5)",
        "meters: expected an array of tables [[meters]] (got {'name': 'x'})",
        "sitee: unknown key (did you mean 'site'?)",
    ]


def test_config_infinite_limit_and_mqtt_needs(tmp_path: Path) -> None:
    base = (FIXTURES / "minimal.toml").read_text().replace("5000", "inf")
    path = tmp_path / "site.toml"
    path.write_text(
        base
        + """
[[rigs]]
name = "m"
driver = "mqtt"
profile = "bitmain-s21"
hosts = ["10.0.0.1"]

[alerts]
mqtt = true
"""
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.problems == [
        "grid.contracted_limit_kw: Input should be a finite number (got inf)",
        "rigs[0].driver: 'mqtt' needs [mqtt] enabled = true",
        "alerts.mqtt: needs [mqtt] enabled = true",
    ]


def test_config_invalid_profile_named_at_every_key_and_loaded_once() -> None:
    from minerd.errors import ProfileError
    from minerd.settings.checks import ProfileChecker

    loads: list[str] = []

    def load(name: str) -> object:
        loads.append(name)
        raise ProfileError(name, ["points[2].address: overlaps points[1]"])

    checker = ProfileChecker("rig", ["broken", "fine"], load)
    assert checker.check("rigs[0].profile", "broken") == [
        "rigs[0].profile: rig profile 'broken' is invalid: points[2].address: overlaps points[1]"
    ]
    assert checker.check("rigs[4].profile", "broken") == [
        "rigs[4].profile: rig profile 'broken' is invalid: points[2].address: overlaps points[1]"
    ]
    assert checker.check("rigs[5].profile", 7) == []  # a wrong type is reported by pydantic
    assert loads == ["broken"]


def test_config_modbus_rig_register_map(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        (FIXTURES / "minimal.toml").read_text()
        + """
[[rigs]]
name = "plc"
driver = "modbus"
profile = "bitmain-s19jpro"
hosts = ["10.0.0.1"]
port = 502
register_map = "nope"
"""
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.problems == [
        "rigs[0].register_map: unknown rig register map profile 'nope' (known: container-plc-rig)"
    ]
    path.write_text(path.read_text().replace('register_map = "nope"\n', ""))
    assert load_settings(path).rigs[0].register_map == "container-plc-rig"


def test_config_array_item_that_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        'meters = [1, {name = "g", profile = "eastron-sdm630", endpoint = "tcp://h:1",'
        ' role = "grid"}]\n[site]\nname = "x"\n[grid]\ncontracted_limit_kw = 1\n'
        "failsafe_limit_kw = 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.problems == ["meters[0]: expected a table (got 1)"]
