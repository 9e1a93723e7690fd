"""Site-local profiles on an installed wheel: what an operator gets from `pip install minerd`.

The wheel is built from this checkout, installed with --no-deps into a fresh venv, and the
venv is given the project's installed dependencies through a .pth file (offline and fast).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
SITE_PROFILES = Path(__file__).parent / "fixtures" / "site-profiles"

SITE = """
[site]
name = "installed"
profiles_dir = "profiles"

[grid]
contracted_limit_kw = 500
failsafe_limit_kw = 300

[[meters]]
name = "grid-main"
profile = "acme-em1.toml"
endpoint = "tcp://127.0.0.1:1502"
role = "grid"

[[rigs]]
name = "acme"
driver = "luxos"
profile = "acme-m1"
hosts = ["127.0.0.1-3"]

[[rigs]]
name = "s21"
driver = "luxos"
profile = "bitmain-s21"
hosts = ["127.0.1.1"]
"""


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding the built wheel of minerd; returns the venv's bin folder."""
    pytest.importorskip("hatchling")  # the build backend, used without build isolation
    root = tmp_path_factory.mktemp("wheel")
    built = _run(
        sys.executable,
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"),
        *("-w", root / "dist", REPO),
        cwd=root,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("minerd-*.whl")
    venv = root / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    assert made.returncode == 0, made.stderr
    venv_python = venv / "bin" / "python"
    added = _run(
        sys.executable,
        *("-m", "pip", "--python", venv_python, "install", "-q", "--no-deps", "--no-index"),
        wheel,
        cwd=root,
    )
    assert added.returncode == 0, added.stderr
    # The project's dependencies, without the project itself: a .pth in the new venv names
    # this interpreter's site-packages (its own .pth files, e.g. the editable hook, are not
    # read from there, so `import minerd` finds only the installed wheel).
    purelib = sysconfig.get_paths()["purelib"]
    venv_purelib = _run(
        venv_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root
    ).stdout.strip()
    Path(venv_purelib, "project-deps.pth").write_text(purelib + "\n")
    return venv / "bin"


def test_wheel_minerd_is_the_installed_copy_with_its_drivers(
    installed: Path, tmp_path: Path
) -> None:
    proc = _run(
        installed / "python",
        "-c",
        "import minerd; from minerd.profiles import drivers_dir; print(minerd.__file__);"
        " print(drivers_dir())",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    module_file, drivers = proc.stdout.splitlines()
    venv = installed.parent
    assert Path(module_file).is_relative_to(venv)
    assert Path(drivers).is_relative_to(venv)
    assert (Path(drivers) / "rigs" / "bitmain-s21.toml").is_file()


def test_wheel_check_accepts_site_meter_and_rig_profiles(installed: Path, tmp_path: Path) -> None:
    shutil.copytree(SITE_PROFILES, tmp_path / "profiles")
    (tmp_path / "site.toml").write_text(SITE)
    proc = _run(installed / "minerd", "check", "-c", "site.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    meter_file = tmp_path / "profiles" / "meters" / "acme-em1.toml"
    rig_file = tmp_path / "profiles" / "rigs" / "acme-m1.toml"
    assert f"  grid-main: grid acme-em1 ({meter_file}) tcp://127.0.0.1:1502 unit 1" in out
    assert f"  acme: 3 x acme-m1 ({rig_file}) via luxos" in out
    assert "  s21: 1 x bitmain-s21 via luxos" in out


def test_wheel_check_names_the_broken_site_profile_file(installed: Path, tmp_path: Path) -> None:
    shutil.copytree(SITE_PROFILES, tmp_path / "profiles")
    rig_file = tmp_path / "profiles" / "rigs" / "acme-m1.toml"
    rig_file.write_text(rig_file.read_text().replace("[2000, 110.0], ", "[1000, 110.0], "))
    (tmp_path / "site.toml").write_text(SITE)
    proc = _run(installed / "minerd", "check", "-c", "site.toml", cwd=tmp_path)
    assert proc.returncode == 2
    problems = proc.stderr.splitlines()[1:]
    assert problems, proc.stderr
    assert all(
        p.startswith(f"rigs[0].profile: rig profile {rig_file} is invalid: ") for p in problems
    )


def test_wheel_installs_the_docs_the_systemd_unit_points_at(installed: Path) -> None:
    """Documentation=file:///usr/share/doc/minerd/... is <prefix>/share/doc/minerd/... of a
    /usr install: the same file must be under the venv's prefix after pip install."""
    unit = (REPO / "systemd" / "minerd.service").read_text()
    docs = [ln.split("=", 1)[1] for ln in unit.splitlines() if ln.startswith("Documentation=")]
    assert docs, "the unit names its documentation"
    prefix = installed.parent
    for uri in docs:
        assert uri.startswith("file:///usr/"), uri
        relative = uri.removeprefix("file:///usr/")
        assert (prefix / relative).is_file(), f"{uri}: not installed by the wheel"
    assert (prefix / "share" / "doc" / "minerd" / "families").is_dir()
