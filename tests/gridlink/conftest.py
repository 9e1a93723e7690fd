"""Grid protocol tests: the real daemon on the simulated site, with a real peer (a c104
SCADA client, openleadr's own VTN) on loopback. The daemon-backed ones are slow."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "scenarios"))  # scenario_kit
sys.path.insert(0, str(HERE.parent / "api"))  # api_site: a real SiteService on real stores

PURE = {
    "test_openadr_events.py",
    "test_openadr_handle.py",
    "test_grid_settings.py",
    "test_iec104_points.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent == HERE and item.path.name not in PURE:
            item.add_marker(pytest.mark.slow)
