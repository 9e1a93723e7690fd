"""tests/cluster: one nats-server per test module (tests that kill it start their own)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from nats_server import start_nats_server
from servers import ServerProcess


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_nats_server(tmp_path_factory.mktemp("nats"))
    yield srv
    srv.stop()
