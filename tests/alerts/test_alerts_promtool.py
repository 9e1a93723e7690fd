"""minerd's own Prometheus alerting rules pass promtool's check and their unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from servers import require_binary

RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "prometheus"


def test_promtool_check_rules() -> None:
    promtool = require_binary("promtool", "prometheus")
    out = subprocess.run(
        [promtool, "check", "rules", "minerd-rules.yml"],
        cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 8 rules found" in out.stdout


def test_promtool_test_rules() -> None:
    promtool = require_binary("promtool", "prometheus")
    out = subprocess.run(
        [promtool, "test", "rules", "minerd-rules.test.yml"],
        cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
