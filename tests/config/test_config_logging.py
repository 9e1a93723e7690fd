"""logfmt and JSON log lines, and the warn-once-then-debug helper."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from minerd.cli.logging_setup import configure_logging
from minerd.repeated_log import RepeatedLog, clear, warn_once


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging("logfmt", "debug", stream=buf)
    yield buf
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def test_config_logfmt_line(stream: io.StringIO) -> None:
    log = logging.getLogger("minerd.test")
    log.info("meter read", extra={"device": "grid-main", "power_w": 1200.5, "ok": True})
    log.warning('said "hi"\nthere', extra={"empty": ""})
    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info logger=minerd.test "
        r'msg="meter read" device=grid-main power_w=1200.5 ok=true',
        first,
    )
    assert second.endswith('level=warning logger=minerd.test msg="said \\"hi\\"\\nthere" empty=""')


def test_config_json_lines(stream: io.StringIO) -> None:
    configure_logging("json", "info", stream=stream)
    log = logging.getLogger("minerd.test")
    log.debug("hidden")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed", extra={"rig": "10.0.0.5"})
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"], record["msg"], record["rig"]) == (
        "error",
        "minerd.test",
        "failed",
        "10.0.0.5",
    )
    assert "RuntimeError: boom" in record["exc"]
    # reconfiguring replaced the logfmt handler instead of adding a second one
    assert sum(getattr(h, "_minerd", False) for h in logging.getLogger().handlers) == 1


def test_config_repeated_log_warns_once_then_debug(stream: io.StringIO) -> None:
    log = logging.getLogger("minerd.test.repeat")
    repeats = RepeatedLog(log)
    assert repeats.warning("rig:a", "rig unreachable", extra={"rig": "a"}) is True
    assert repeats.warning("rig:a", "rig unreachable", extra={"rig": "a"}) is False
    assert repeats.warning("rig:b", "rig unreachable") is True
    assert repeats.warning("rig:a", "rig answers garbage", kind="protocol") is True
    assert repeats.active("rig:a") and repeats.active_keys() == ["rig:a", "rig:b"]
    assert repeats.clear("rig:a", "rig reachable again", extra={"rig": "a"}) is True
    assert repeats.clear("rig:a", "again") is False
    assert repeats.warning("rig:a", "rig unreachable") is True
    levels = [re.search(r"level=(\w+)", ln)[1] for ln in stream.getvalue().splitlines()]  # type: ignore[index]
    assert levels == ["warning", "debug", "warning", "warning", "info", "warning"]
    assert "repeat=2" in stream.getvalue().splitlines()[1]
    assert "repeats=1" in stream.getvalue().splitlines()[4]


def test_config_warn_once_module_functions(stream: io.StringIO) -> None:
    log = logging.getLogger("minerd.test.once")
    assert warn_once(log, "sink:influx", "influx down") is True
    assert warn_once(log, "sink:influx", "influx down") is False
    assert clear(log, "sink:influx", "influx back") is True
    assert clear(log, "sink:influx") is False
    levels = [re.search(r"level=(\w+)", ln)[1] for ln in stream.getvalue().splitlines()]  # type: ignore[index]
    assert levels == ["warning", "debug", "info"]
