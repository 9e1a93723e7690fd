"""The operator cap's log line says "cleared", never "set to None kW"."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from minerd.runtime.site import Site


def _set(cap_kw: float | None) -> list[float | None]:
    applied: list[float | None] = []
    fake = SimpleNamespace(cycle=SimpleNamespace(set_operator_cap=applied.append))
    Site.set_operator_cap(fake, cap_kw, "ops-anna")  # type: ignore[arg-type]
    return applied


def test_operator_cap_log_says_set_and_cleared(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="minerd"):
        assert _set(650.0) == [650.0]
        assert _set(None) == [None]
    lines = [r.getMessage() for r in caplog.records if "operator cap" in r.getMessage()]
    assert lines == ["operator cap set to 650 kW by ops-anna", "operator cap cleared by ops-anna"]
