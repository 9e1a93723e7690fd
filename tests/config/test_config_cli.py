"""`minerd check` as a subprocess: exit codes, summary, every problem on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from minerd.cli import entry as cli

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parents[2]


def _minerd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minerd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_config_cli_check_example_exits_0_with_summary() -> None:
    proc = _minerd("check", "-c", "config/example-site.toml")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "config/example-site.toml: ok"
    assert "site: example-site (Asia/Almaty)" in out
    assert "meters: 3" in out
    assert "rigs: 421 in 3 groups" in out
    # by model: a /24 is 254 hosts; a /25 plus one address is 127; the CSV has 40 rows
    assert out[out.index("rigs: 421 in 3 groups") + 1 :][:3] == [
        "  bitmain-s19jpro: 127",
        "  bitmain-s21: 254",
        "  microbt-m50s: 40",
    ]
    assert "  api: http://127.0.0.1:8080 (1 tokens)" in out
    assert "  metrics: http://127.0.0.1:8080/metrics" in out
    assert "  mqtt: off" in out
    assert proc.stderr == ""


def test_config_cli_check_reports_every_problem_and_exits_2() -> None:
    proc = _minerd("check", "-c", str(FIXTURES / "many_mistakes.toml"))
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0] == f"{FIXTURES / 'many_mistakes.toml'}: 12 problems"
    assert lines[1:4] == [
        "site.timezone: unknown time zone 'Mars/Olympus'",
        "grid.failsafe_limit_kw: 6000 is above grid.contracted_limit_kw 5000",
        "meters[0].endpoint: 'tcp://127.0.0.1' is not a valid endpoint; expected tcp://host:port",
    ]
    assert lines[-1] == "storage.pth: unknown key (did you mean 'path'?)"
    assert proc.stdout == ""


def test_config_cli_check_missing_file_exits_2() -> None:
    proc = _minerd("check", "-c", "nope.toml")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["nope.toml: 1 problem", "config file not found: nope.toml"]


def test_config_cli_usage_errors_exit_2() -> None:
    proc = _minerd("check")
    assert proc.returncode == 2
    assert "the following arguments are required: -c/--config" in proc.stderr
    proc = _minerd("--log-format", "xml", "check", "-c", "x")
    assert proc.returncode == 2
    assert "invalid choice: 'xml'" in proc.stderr


def test_config_cli_run_with_bad_config_exits_2_before_importing_app() -> None:
    proc = _minerd("run", "-c", str(FIXTURES / "bad_cidr.toml"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"{FIXTURES / 'bad_cidr.toml'}: rigs[0].hosts: '10.0.0.0/33' is not a valid network"
    ]


def test_config_cli_lazy_command_parses_with_module_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fake_cmd_module.py").write_text(
        "def add_arguments(p):\n"
        "    p.add_argument('--speed', type=float, default=1.0)\n"
        "def run(args):\n"
        "    print(f'speed={args.speed} log={args.log_format}')\n"
        "    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.LAZY_COMMANDS, "fake", ("fake_cmd_module", "a test command"))
    assert cli.main(["--log-format", "json", "fake", "--speed", "10"]) == 3
    assert capsys.readouterr().out == "speed=10.0 log=json\n"
    with pytest.raises(SystemExit) as info:
        cli.main(["fake", "--bogus"])
    assert info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_config_cli_check_does_not_import_the_daemon() -> None:
    code = (
        "import sys; from minerd.cli import entry as cli; rc = cli.main(['check', '-c', "
        f"{str(FIXTURES / 'minimal.toml')!r}]); "
        "heavy = [m for m in ('minerd.daemon', 'minerd.sim', 'fastapi', 'pymodbus') "
        "if m in sys.modules]; print('heavy', heavy); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "heavy []"


def test_config_cli_lazy_command_without_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.LAZY_COMMANDS, "ghost", ("minerd.no_such_module", "missing"))
    assert cli.main(["ghost"]) == 2
    assert capsys.readouterr().err == (
        "minerd: command 'ghost' is not available (No module named 'minerd.no_such_module')\n"
    )
