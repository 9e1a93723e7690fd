"""Rig groups of the firmware families (issue 13): drivers, logins from files or env, ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from minerd.errors import ConfigError
from minerd.settings import settings_from_dict


def _site(group: dict[str, Any]) -> dict[str, Any]:
    return {
        "site": {"name": "t", "timezone": "UTC"},
        "grid": {"contracted_limit_kw": 5000, "failsafe_limit_kw": 3000, "margin_kw": 50},
        "meters": [
            {
                "name": "grid-main",
                "profile": "eastron-sdm630",
                "endpoint": "tcp://127.0.0.1:1502",
                "role": "grid",
            }
        ],
        "rigs": [{"name": "g", "profile": "bitmain-s19jpro", "hosts": ["10.0.0.1"], **group}],
    }


def _load(group: dict[str, Any], tmp_path: Path, environ: dict[str, str] | None = None) -> Any:
    return settings_from_dict(_site(group), base_dir=tmp_path, environ=environ or {})


def _problems(group: dict[str, Any], tmp_path: Path, environ: dict[str, str] | None = None) -> Any:
    with pytest.raises(ConfigError) as info:
        _load(group, tmp_path, environ)
    return info.value.problems


@pytest.mark.parametrize(
    ("driver", "username"),
    [("stock", "root"), ("vnish", ""), ("whatsminer", "super"), ("braiins", "root")],
)
def test_family_driver_reads_its_password_file(driver: str, username: str, tmp_path: Path) -> None:
    (tmp_path / "rig.password").write_text("s3cret-pw\n")
    s = _load({"driver": driver, "password_file": "rig.password"}, tmp_path)
    group = s.rigs[0]
    assert group.driver == driver
    assert group.password_value == "s3cret-pw"
    assert group.username_value == username
    assert group.password_file == tmp_path / "rig.password"
    assert "s3cret-pw" not in repr(group) and "s3cret-pw" not in str(s)


def test_password_from_env_and_explicit_username(tmp_path: Path) -> None:
    s = _load(
        {"driver": "braiins", "password_env": "BOS_PW", "username": "ops", "grpc_port": 50052},
        tmp_path,
        environ={"BOS_PW": "from-env"},
    )
    assert (s.rigs[0].password_value, s.rigs[0].username_value) == ("from-env", "ops")
    assert s.rigs[0].grpc_port == 50052


def test_ports_default_per_family(tmp_path: Path) -> None:
    g = _load({"driver": "stock"}, tmp_path).rigs[0]
    assert (g.port, g.web_port, g.api_port, g.grpc_port) == (4028, 80, 4433, 50051)
    assert g.password_value is None


def test_unknown_driver_lists_the_families(tmp_path: Path) -> None:
    (p,) = _problems({"driver": "antminer"}, tmp_path)
    assert p.startswith("rigs[0].driver: Input should be")
    for fam in ("'stock'", "'vnish'", "'whatsminer'", "'braiins'"):
        assert fam in p


def test_port_of_another_family_is_refused(tmp_path: Path) -> None:
    assert _problems({"driver": "stock", "grpc_port": 50051}, tmp_path) == [
        "rigs[0].grpc_port: driver 'stock' has no grpc_port (it uses web_port)"
    ]
    assert _problems({"driver": "luxos", "web_port": 80}, tmp_path) == [
        "rigs[0].web_port: driver 'luxos' has no web_port"
    ]


def test_port_out_of_range(tmp_path: Path) -> None:
    assert _problems({"driver": "vnish", "web_port": 70000}, tmp_path) == [
        "rigs[0].web_port: Input should be less than or equal to 65535 (got 70000)"
    ]


def test_inline_password_refused_for_login_families(tmp_path: Path) -> None:
    assert _problems({"driver": "vnish", "password": "admin"}, tmp_path) == [
        "rigs[0].password: driver 'vnish' reads its password from password_file or"
        " password_env, never inline"
    ]


def test_login_keys_refused_where_the_driver_has_no_login(tmp_path: Path) -> None:
    assert sorted(_problems({"driver": "cgminer", "password_env": "X"}, tmp_path)) == [
        "rigs[0].password_env: driver 'cgminer' takes no password"
    ]
    assert _problems({"driver": "vnish", "username": "root"}, tmp_path) == [
        "rigs[0].username: driver 'vnish' takes no username"
    ]


def test_missing_password_sources_are_named(tmp_path: Path) -> None:
    assert _problems({"driver": "stock", "password_env": "NOPE"}, tmp_path) == [
        "rigs[0].password_env: environment variable NOPE is not set"
    ]
    assert _problems({"driver": "stock", "password_file": "none.pw"}, tmp_path) == [
        f"rigs[0].password_file: file not found: {tmp_path / 'none.pw'}"
    ]
    assert _problems(
        {"driver": "whatsminer", "password_file": "a", "password_env": "B"}, tmp_path
    ) == [
        "rigs[0].password_env: set only one of password, password_file, password_env"
        " (also rigs[0].password_file)"
    ]


def test_luxos_keeps_its_inline_password_and_may_use_a_file(tmp_path: Path) -> None:
    assert _load({"driver": "luxos", "password": "lux"}, tmp_path).rigs[0].password_value == "lux"
    (tmp_path / "lux.pw").write_text("lux-file")
    g = _load({"driver": "luxos", "password_file": "lux.pw"}, tmp_path).rigs[0]
    assert g.password_value == "lux-file"
