"""The backup timer and service: verified by systemd-analyze, and the service's command line
is one `minerd backup` accepts."""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from minerd.cli import backup

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
SERVICE = SYSTEMD_DIR / "minerd-backup.service"
TIMER = SYSTEMD_DIR / "minerd-backup.timer"


def _exec_start() -> str:
    (line,) = [ln for ln in SERVICE.read_text().splitlines() if ln.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")


def test_backup_units_verify_without_warnings(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The binary is not installed here: point ExecStart at one that exists, change nothing else.
    (tmp_path / SERVICE.name).write_text(SERVICE.read_text().replace(_exec_start(), "/bin/true"))
    shutil.copy(TIMER, tmp_path / TIMER.name)
    done = subprocess.run(
        [analyze, "verify", SERVICE.name, TIMER.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    output = (done.stdout + done.stderr).strip()
    assert (done.returncode, output) == (0, "")


def test_backup_service_runs_minerd_backup_with_options_it_has() -> None:
    argv = shlex.split(_exec_start())
    assert argv[:2] == ["/usr/bin/minerd", "backup"]
    parser = argparse.ArgumentParser(prog="minerd backup", exit_on_error=False)
    backup.add_arguments(parser)
    args = parser.parse_args(argv[2:])
    assert (args.config, args.dir, args.keep_days) == (
        Path("/etc/minerd/site.toml"),
        Path("/var/backups/minerd"),
        14.0,
    )
    tmpfiles = (SYSTEMD_DIR / "minerd.tmpfiles.conf").read_text().split()
    assert "/var/backups/minerd" in tmpfiles  # the folder exists before the first run
