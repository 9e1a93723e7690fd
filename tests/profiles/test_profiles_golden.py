"""Every shipped profile loads to exactly its golden expectation (tests/profiles/golden/).

After a deliberate profile change, regenerate with MINERD_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minerd.model import RegisterMap, RigModel
from minerd.profiles import (
    drivers_dir,
    list_meter_maps,
    list_rig_models,
    list_rig_register_maps,
    load_meter_map,
    load_rig_model,
    load_rig_register_map,
)

GOLDEN = Path(__file__).parent / "golden"


def _jsonable(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset):
        return sorted(_jsonable(v) for v in value)  # type: ignore[type-var]
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _check(kind: str, name: str, loaded: RigModel | RegisterMap) -> None:
    path = GOLDEN / kind / f"{name}.json"
    actual = _jsonable(loaded)
    if os.environ.get("MINERD_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(actual, indent=2) + "\n")
    assert path.exists(), f"no golden file {path}: run with MINERD_UPDATE_GOLDEN=1 and review"
    assert actual == json.loads(path.read_text())


def test_shipped_profiles_are_the_expected_set() -> None:
    # A new profile needs a golden file; a removed one must not leave a stale golden behind.
    assert list_rig_models() == sorted(p.stem for p in (GOLDEN / "rigs").glob("*.json"))
    assert list_meter_maps() == sorted(p.stem for p in (GOLDEN / "meters").glob("*.json"))
    assert list_rig_register_maps() == sorted(
        p.stem for p in (GOLDEN / "rig-registers").glob("*.json")
    )
    assert {"bitmain-s19jpro", "bitmain-s21", "microbt-m50s"} <= set(list_rig_models())
    assert {
        "eastron-sdm630",
        "janitza-umg604",
        "janitza-umg604-legacy",
        "schneider-iem3000",
        "generic-modbus-meter",
    } <= set(list_meter_maps())
    assert "container-plc-rig" in list_rig_register_maps()


@pytest.mark.parametrize("name", list_rig_models())
def test_rig_model_golden(name: str) -> None:
    _check("rigs", name, load_rig_model(name))


@pytest.mark.parametrize("name", list_meter_maps())
def test_meter_map_golden(name: str) -> None:
    _check("meters", name, load_meter_map(name))


@pytest.mark.parametrize("name", list_rig_register_maps())
def test_rig_register_map_golden(name: str) -> None:
    _check("rig-registers", name, load_rig_register_map(name))


@pytest.mark.parametrize("name", list_rig_models())
def test_rig_curve_gives_nominal_and_diminishing_returns(name: str) -> None:
    rig = load_rig_model(name)
    assert rig.hashrate_at(rig.nominal_power_w) == pytest.approx(rig.nominal_hashrate_ths, 0.05)
    effs = [p.hashrate_ths / p.power_w for p in rig.curve]
    assert effs == sorted(effs, reverse=True), "efficiency must be best at low power"
    assert rig.sleep_power_w < rig.min_power_w


def test_every_shipped_file_cites_its_source() -> None:
    for path in sorted(drivers_dir().rglob("*.toml")):
        head = path.read_text().splitlines()[0]
        assert head.startswith("# "), f"{path} must start with a comment naming its source"


def test_loads_are_cached() -> None:
    assert load_rig_model("bitmain-s21") is load_rig_model("bitmain-s21")
    assert load_meter_map("eastron-sdm630") is load_meter_map("eastron-sdm630")


def test_drivers_dir_is_the_top_level_folder_in_a_checkout() -> None:
    assert (drivers_dir() / "meters" / "eastron-sdm630.toml").is_file()
    assert (drivers_dir() / "rigs" / "registers" / "container-plc-rig.toml").is_file()


def _where(map_name: str, point: str) -> tuple[int, str, str, int]:
    m = load_meter_map(map_name)
    p = m.point(point)
    assert p is not None
    return p.address, p.type.value, p.unit, m.function_code


def test_meter_maps_match_the_reference_addresses() -> None:
    # Independent of the golden files: WIRE addresses from the project reference notes on
    # meters (firmware-apis.md section 7), by hand. The profiles write the manual's numbers.
    assert _where("eastron-sdm630", "voltage_l1_v") == (0, "float32", "V", 4)  # 30001
    assert _where("eastron-sdm630", "current_l3_a") == (10, "float32", "A", 4)  # 30011
    assert _where("eastron-sdm630", "power_w") == (52, "float32", "W", 4)  # 30053
    assert _where("eastron-sdm630", "energy_export_kwh") == (74, "float32", "kWh", 4)  # 30075
    assert _where("janitza-umg604", "voltage_l3_v") == (19004, "float32", "V", 3)
    assert _where("janitza-umg604", "power_l1_w") == (19020, "float32", "W", 3)
    assert _where("janitza-umg604", "power_w") == (19026, "float32", "W", 3)
    assert _where("janitza-umg604", "energy_import_kwh") == (19068, "float32", "Wh", 3)
    assert _where("janitza-umg604", "energy_export_kwh") == (19076, "float32", "Wh", 3)
    assert _where("janitza-umg604-legacy", "voltage_l3_v") == (1321, "float32", "V", 3)
    assert _where("janitza-umg604-legacy", "power_l3_w") == (1337, "float32", "W", 3)
    assert _where("janitza-umg604-legacy", "power_w") == (1369, "float32", "W", 3)
    assert _where("janitza-umg604-legacy", "energy_import_kwh") == (9851, "float32", "Wh", 3)
    assert _where("janitza-umg604-legacy", "energy_export_kwh") == (9863, "float32", "Wh", 3)
    # Schneider: manual "Register Address" minus one on the wire (mbmd iem3000.go)
    assert _where("schneider-iem3000", "current_l1_a") == (2999, "float32", "A", 3)
    assert _where("schneider-iem3000", "voltage_l1_v") == (3027, "float32", "V", 3)
    assert _where("schneider-iem3000", "power_w") == (3059, "float32", "kW", 3)
    assert _where("schneider-iem3000", "energy_import_kwh") == (3203, "int64", "Wh", 3)
    assert _where("schneider-iem3000", "energy_export_kwh") == (3207, "int64", "Wh", 3)
    generic = load_meter_map("generic-modbus-meter").point("power_w")
    assert generic is not None and (generic.type.value, generic.scale) == ("int32", 0.1)


def test_rig_models_match_the_spec_sheets() -> None:
    s19 = load_rig_model("bitmain-s19jpro")
    assert (s19.nominal_power_w, s19.nominal_hashrate_ths) == (3068, 104)
    s21 = load_rig_model("bitmain-s21")
    assert (s21.nominal_power_w, s21.nominal_hashrate_ths) == (3500, 200)
    m50s = load_rig_model("microbt-m50s")
    assert (m50s.nominal_power_w, m50s.nominal_hashrate_ths) == (3276, 126)
    assert s19.sleep_power_w == 25 and s19.wake_time_s == 10 and s19.sleep_time_s == 5
    assert [p.name for p in s19.profiles] == ["-2", "-1", "default", "+1"]


def test_drivers_dir_in_a_wheel_layout(tmp_path: Path) -> None:
    # A wheel ships drivers/ as minerd/drivers (pyproject force-include): simulate that tree.
    import minerd

    package = Path(minerd.__file__).parent
    shutil.copytree(package, tmp_path / "minerd", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(drivers_dir(), tmp_path / "minerd" / "drivers")
    code = (
        "from minerd.profiles import drivers_dir, load_meter_map\n"
        "print(drivers_dir())\n"
        "print(load_meter_map('eastron-sdm630').point('power_w').address)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(tmp_path / "minerd" / "drivers"), "52"]
