"""`minerd quota schedule FILE.csv`: a file without its header row is refused naming line 1,
before anything is sent (the URL points nowhere)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerd.cli import quota_cli

NOWHERE = "http://127.0.0.1:9"  # discard port: nothing is sent when the file is refused


def _schedule(path: Path) -> int:
    return quota_cli.main(["quota", "--url", NOWHERE, "--token", "t0ken", "schedule", str(path)])


def test_schedule_csv_without_header_names_line_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "day-ahead.csv"
    path.write_text(
        "2026-12-01T00:00:00+05:00,2026-12-01T01:00:00+05:00,400\n"
        "2026-12-01T01:00:00+05:00,2026-12-01T02:00:00+05:00,380\n"
    )
    assert _schedule(path) == quota_cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err == (
        f"minerd quota: {path}:1: no header row: line 1 must be start,end,limit_kw (it is"
        " '2026-12-01T00:00:00+05:00,2026-12-01T01:00:00+05:00,400')\n"
    )


def test_schedule_csv_header_missing_a_column_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "day-ahead.csv"
    path.write_text("start,end,limit\n2026-12-01T00:00:00Z,2026-12-01T01:00:00Z,400\n")
    assert _schedule(path) == quota_cli.EXIT_USAGE
    assert capsys.readouterr().err == (
        f"minerd quota: {path}:1: header row lacks limit_kw (need start,end,limit_kw)\n"
    )


def test_schedule_csv_bad_value_names_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "day-ahead.csv"
    path.write_text(
        "start,end,limit_kw\n"
        "2026-12-01T00:00:00Z,2026-12-01T01:00:00Z,400\n"
        "2026-12-01T01:00:00Z,2026-12-01T02:00:00Z,lots\n"
    )
    assert _schedule(path) == quota_cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith(f"minerd quota: {path}:3: ")


def test_empty_schedule_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "day-ahead.csv"
    path.write_text("")
    assert _schedule(path) == quota_cli.EXIT_USAGE
    assert "empty; expected a header row start,end,limit_kw" in capsys.readouterr().err
