"""`promtool check metrics` accepts the whole /metrics exposition (base units, names)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from sinks_data import LIMIT, T0_S, make_snapshot

from minerd.sinks import PrometheusSink, SinkHub


def test_metrics_pass_promtool_check_and_energy_is_in_joules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    prom = PrometheusSink("s1")
    SinkHub([prom]).publish_snapshot(make_snapshot(T0_S, 8, grid_w=600_000.0), LIMIT, 950_000.0)
    text = prom.render_metrics()
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, b"")
    line = next(
        ln for ln in text.decode().splitlines() if ln.startswith("minerd_meter_energy_import_")
    )
    name, value = line.split("{")[0], float(line.rsplit(" ", 1)[1])
    assert name == "minerd_meter_energy_import_joules_total"
    assert value == 123456.5 * 3_600_000.0  # the meter's kWh register in sinks_data
