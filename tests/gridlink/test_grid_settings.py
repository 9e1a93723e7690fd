"""[iec104] and [openadr] in the config: off by default, clear errors when on but wrong."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from minerd.errors import ConfigError
from minerd.gridlink.tasks import build_grid_links
from minerd.settings import Settings, settings_from_dict

EXAMPLE = Path(__file__).parents[2] / "config" / "example-site.toml"


def raw(**sections: object) -> dict[str, object]:
    base: dict[str, object] = {
        "site": {"name": "s"},
        "grid": {"contracted_limit_kw": 500.0, "failsafe_limit_kw": 200.0},
        "meters": [
            {"name": "g", "profile": "x", "endpoint": "tcp://127.0.0.1:502", "role": "grid"}
        ],
    }
    base.update(sections)
    return base


def load(**sections: object) -> Settings:
    return settings_from_dict(raw(**sections), base_dir=Path("/"), check_profiles=False)


def problems(**sections: object) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(**sections)
    return err.value.problems


def test_off_by_default_and_no_task_built() -> None:
    settings = load()
    assert not settings.iec104.enabled and not settings.openadr.enabled
    links = build_grid_links(settings, service=None)  # type: ignore[arg-type]
    assert links.tasks == [] and links.iec104 is None and links.openadr is None


def test_enabled_without_the_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("c104", "openleadr") else real(name, *a),
    )
    found = problems(
        iec104={"enabled": True, "allowed_clients": ["10.0.0.5"]}, openadr={"enabled": True}
    )
    assert any(p.startswith("iec104.enabled: needs the c104 package") for p in found), found
    assert any(p.startswith("openadr.enabled: needs the openleadr package") for p in found)
    assert all("minerd[grid]" in p for p in found if ".enabled" in p)


def test_iec104_needs_allowed_clients_and_unique_addresses() -> None:
    found = problems(iec104={"enabled": True, "points": {"limit_kw": {"ioa": 1001}}})
    assert any(p.startswith("iec104.allowed_clients:") for p in found), found
    assert any(p.startswith("iec104.points.limit_kw: IOA 1001") for p in found), found
    bad_ip = problems(iec104={"enabled": True, "allowed_clients": ["scada.local"]})
    assert any("is not an IP address" in p for p in bad_ip)


def test_unknown_keys_are_named() -> None:
    found = problems(iec104={"enabld": True})
    assert any(p.startswith("iec104.enabld") for p in found), found


def test_openadr_levels_and_files() -> None:
    settings = load(openadr={"simple_level_kw": {"1": 300.0, "3": 0.0}})
    assert settings.openadr.simple_level_kw == {1: 300.0, 3: 0.0}
    found = problems(openadr={"enabled": True, "cert_file": "missing.pem"})
    assert any(p.startswith("openadr.cert_file") for p in found), found


def test_example_config_documents_both_sections_off() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    assert data["iec104"]["enabled"] is False
    assert data["openadr"]["enabled"] is False


BLOCK_EXTRAS = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("c104", "openleadr"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Block())
import minerd.daemon.app, minerd.daemon.components
from minerd.gridlink.tasks import build_grid_links
from minerd.settings import settings_from_dict
from pathlib import Path
raw = {
    "site": {"name": "s"},
    "grid": {"contracted_limit_kw": 500.0, "failsafe_limit_kw": 200.0},
    "meters": [{"name": "g", "profile": "x", "endpoint": "tcp://127.0.0.1:502", "role": "grid"}],
}
settings = settings_from_dict(raw, base_dir=Path("/"), check_profiles=False)
assert build_grid_links(settings, None).tasks == []
print("ok", [m for m in ("c104", "openleadr") if m in sys.modules])
"""


def test_the_daemon_builds_without_the_extras_when_both_are_off() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_EXTRAS], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok []"
