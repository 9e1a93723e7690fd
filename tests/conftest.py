"""Session fixtures: one real server of each kind, shared by the tests that need it.

Tests that stop or restart a server (outages) start their own with the start_* helpers
of tests/servers.py instead, so they never disturb the shared ones.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import (
    ServerProcess,
    start_alertmanager,
    start_influxd,
    start_mosquitto,
    start_victoria_metrics,
)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_victoria_metrics(tmp_path_factory.mktemp("vm"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_influxd(tmp_path_factory.mktemp("influxd"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_alertmanager(tmp_path_factory.mktemp("alertmanager"))
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _minerd_log_handlers_end_with_the_test() -> Iterator[None]:
    """A CLI run in-process (minerd.cli.main) binds a log handler to that test's captured
    stderr; left on the root logger, every later log line fails on the closed stream and
    prints '--- Logging error ---' into another test's output."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_minerd", False):
            root.removeHandler(handler)
