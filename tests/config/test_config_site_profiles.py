"""Site-local device profiles: [site] profiles_dir, file names and paths, checked on load."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minerd.errors import ConfigError
from minerd.settings import load_settings

FIXTURES = Path(__file__).parent / "fixtures"
SITE_PROFILES = FIXTURES / "site-profiles"
REPO = Path(__file__).parents[2]

SITE = """
[site]
name = "t"
{site_extra}

[grid]
contracted_limit_kw = 500
failsafe_limit_kw = 300

[[meters]]
name = "grid-main"
profile = "{meter}"
endpoint = "tcp://127.0.0.1:1502"
role = "grid"

[[rigs]]
name = "acme"
driver = "luxos"
profile = "{rig}"
hosts = ["127.0.0.1"]
"""


def _config(tmp_path: Path, meter: str, rig: str, profiles_dir: str | None = "profiles") -> Path:
    shutil.copytree(SITE_PROFILES, tmp_path / "profiles")
    extra = f'profiles_dir = "{profiles_dir}"' if profiles_dir is not None else ""
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(site_extra=extra, meter=meter, rig=rig))
    return path


def test_site_profiles_by_name_and_file_name_resolve_to_the_site_files(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, "acme-em1", "acme-m1.toml"))
    assert settings.site.profiles_dir == tmp_path / "profiles"
    assert settings.meters[0].profile == str(tmp_path / "profiles/meters/acme-em1.toml")
    assert settings.rigs[0].profile == str(tmp_path / "profiles/rigs/acme-m1.toml")


def test_shipped_profiles_still_load_with_a_profiles_dir(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, "eastron-sdm630", "bitmain-s21.toml"))
    assert settings.meters[0].profile == "eastron-sdm630"
    assert settings.rigs[0].profile == "bitmain-s21"


def test_a_site_file_overrides_the_shipped_profile_of_the_same_name(tmp_path: Path) -> None:
    path = _config(tmp_path, "eastron-sdm630", "acme-m1")
    shutil.copy(SITE_PROFILES / "rigs/acme-m1.toml", tmp_path / "profiles/rigs/bitmain-s21.toml")
    path.write_text(path.read_text().replace('"acme-m1"', '"bitmain-s21"'))
    settings = load_settings(path)
    assert settings.rigs[0].profile == str(tmp_path / "profiles/rigs/bitmain-s21.toml")


def test_absolute_and_relative_paths_are_accepted_without_profiles_dir(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        str(tmp_path / "profiles/meters/acme-em1.toml"),
        "profiles/rigs/acme-m1.toml",
        profiles_dir=None,
    )
    settings = load_settings(path)
    assert settings.meters[0].profile == str(tmp_path / "profiles/meters/acme-em1.toml")
    assert settings.rigs[0].profile == str(tmp_path / "profiles/rigs/acme-m1.toml")


def test_an_invalid_site_profile_is_reported_naming_its_file(tmp_path: Path) -> None:
    path = _config(tmp_path, "acme-em1", "acme-m1")
    rig_file = tmp_path / "profiles/rigs/acme-m1.toml"
    rig_file.write_text(rig_file.read_text().replace("nominal_power_w = 3000", ""))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.problems == [
        f"rigs[0].profile: rig profile {rig_file} is invalid: missing key 'nominal_power_w'"
    ]


def test_broken_toml_and_missing_files_name_the_file(tmp_path: Path) -> None:
    path = _config(tmp_path, "acme-em1", "/nowhere/acme-m9.toml")
    meter_file = tmp_path / "profiles/meters/acme-em1.toml"
    meter_file.write_text("vendor = \n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    meter_problem, rig_problem = info.value.problems
    assert meter_problem.startswith(
        f"meters[0].profile: meter profile {meter_file} is invalid: {meter_file}: invalid TOML"
    )
    assert rig_problem == (
        "rigs[0].profile: rig profile /nowhere/acme-m9.toml is invalid:"
        " no rig profile file /nowhere/acme-m9.toml"
    )


def test_unknown_name_lists_site_and_shipped_profiles_and_where_it_looked(tmp_path: Path) -> None:
    path = _config(tmp_path, "acme-em1", "acme-m2")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    (problem,) = info.value.problems
    assert problem.startswith("rigs[0].profile: unknown rig profile 'acme-m2' (known: acme-m1, ")
    assert "bitmain-s21" in problem
    assert problem.endswith(f"; looked in {tmp_path / 'profiles/rigs'} and the shipped profiles")


def test_a_missing_profiles_dir_is_a_problem(tmp_path: Path) -> None:
    path = _config(tmp_path, "eastron-sdm630", "bitmain-s21", profiles_dir="no-such-dir")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.problems == [f"site.profiles_dir: {tmp_path / 'no-such-dir'} is not a folder"]


def test_check_summary_names_the_site_profile_files(tmp_path: Path) -> None:
    path = _config(tmp_path, "acme-em1", "acme-m1")
    proc = subprocess.run(
        [sys.executable, "-m", "minerd", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    rig_file = tmp_path / "profiles/rigs/acme-m1.toml"
    assert f"  acme: 1 x acme-m1 ({rig_file}) via luxos" in out
    assert "  acme-m1: 1" in out
    assert f"site profiles: {tmp_path / 'profiles'} (searched before the shipped ones)" in out


def test_check_into_a_closed_pipe_exits_quietly() -> None:
    """`minerd check ... | head`: the reader is gone before the summary is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "minerd", "check", "-c", "config/example-site.toml"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin"},
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == ""
