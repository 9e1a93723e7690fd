"""Every scenario runs the real daemon on a simulated site in real (or scaled) time: slow.

`make test` runs them; `make test-fast` (pytest -m "not slow") leaves them out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)
