"""Session fixtures: one real server of each kind, shared by the tests that need it.

Tests that stop or restart a server (outages) start their own with the start_* helpers
of tests/servers.py instead, so they never disturb the shared ones.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
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


TASKS_DUMP_BEFORE_TIMEOUT_S = 5.0


def _test_timeout_s(request: pytest.FixtureRequest) -> float:
    """The pytest-timeout limit of this test: its marker, else --timeout, else the ini's."""
    marker = request.node.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    option = request.config.getoption("timeout", None)
    if option is not None:
        return float(option)
    return float(request.config.getini("timeout") or 0.0)


def _print_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    print(f"--- {len(tasks)} asyncio tasks, just before the test's timeout ---", file=sys.stderr)
    for task in tasks:
        print(f"task {task.get_name()!r}:", file=sys.stderr)
        task.print_stack(file=sys.stderr)


def _dump_running_loops() -> None:
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running():
            obj.call_soon_threadsafe(_print_tasks, obj)


@pytest.fixture(autouse=True)
def _asyncio_tasks_printed_before_the_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    """pytest-timeout prints thread stacks only: a test hung on an idle event loop shows
    select() and names no coroutine. Shortly before the timeout, print every task's stack
    (in the failed test's captured stderr)."""
    timeout_s = _test_timeout_s(request)
    if timeout_s <= 2 * TASKS_DUMP_BEFORE_TIMEOUT_S:
        yield
        return
    timer = threading.Timer(timeout_s - TASKS_DUMP_BEFORE_TIMEOUT_S, _dump_running_loops)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
