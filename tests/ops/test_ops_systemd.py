"""The systemd unit, sysusers and tmpfiles files, checked by systemd's own tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD_DIR / "minerd.service"
EXEC_START = "ExecStart=/usr/bin/minerd run -c /etc/minerd/site.toml"


def tool(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(path).exists():
        pytest.skip(f"{name} is not installed")
    return path


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert EXEC_START in text
    # The binary is not installed here: point ExecStart at one that exists, change nothing else.
    copy = tmp_path / "minerd.service"
    copy.write_text(text.replace(EXEC_START, "ExecStart=/bin/true"))
    done = subprocess.run(
        [tool("systemd-analyze"), "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, output
    assert output == "", output


def test_unit_runs_sandboxed_with_watchdog() -> None:
    s = unit_settings()
    expected = {
        "Type": ["notify"],
        "WatchdogSec": ["30s"],
        "Restart": ["on-failure"],
        "User": ["minerd"],
        "StateDirectory": ["minerd"],
        "ConfigurationDirectory": ["minerd"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "NoNewPrivileges": ["yes"],
        "CapabilityBoundingSet": [""],
        "AmbientCapabilities": [""],
        "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
    }
    for key, value in expected.items():
        assert s.get(key) == value, key
    assert int(s["LimitNOFILE"][0]) >= 20_000


def test_unit_security_exposure_is_low(tmp_path: Path) -> None:
    copy = tmp_path / "minerd.service"
    copy.write_text(UNIT.read_text().replace(EXEC_START, "ExecStart=/bin/true"))
    done = subprocess.run(
        [tool("systemd-analyze"), "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert m is not None, done.stdout[-2000:] + done.stderr[-2000:]
    assert float(m.group(1)) <= 2.0, done.stdout[-3000:]


@pytest.mark.skipif(os.geteuid() != 0, reason="creating users and chown need root")
def test_sysusers_and_tmpfiles_create_the_user_and_directories(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(
        [tool("systemd-sysusers"), f"--root={root}", str(SYSTEMD_DIR / "minerd.sysusers.conf")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    passwd = (root / "etc" / "passwd").read_text()
    m = re.search(r"^minerd:x:(\d+):(\d+):[^:]*:/var/lib/minerd:/usr/sbin/nologin$", passwd, re.M)
    assert m is not None, passwd
    uid, gid = int(m.group(1)), int(m.group(2))
    subprocess.run(
        [
            tool("systemd-tmpfiles"),
            f"--root={root}",
            "--create",
            str(SYSTEMD_DIR / "minerd.tmpfiles.conf"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    etc, state = (root / "etc" / "minerd").stat(), (root / "var" / "lib" / "minerd").stat()
    assert (etc.st_uid, etc.st_gid, etc.st_mode & 0o777) == (0, gid, 0o750)
    assert (state.st_uid, state.st_gid, state.st_mode & 0o777) == (uid, gid, 0o750)
