"""The harness itself: every real server starts, answers, and stops by its PID."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from pathlib import Path

from servers import (
    ServerProcess,
    influx_create_database,
    influx_query,
    start_mosquitto,
    vm_export,
)


def test_victoria_metrics_accepts_v2_write_and_exports(victoria_metrics: ServerProcess) -> None:
    now_ns = time.time_ns()
    body = f"harness,site=t value=42 {now_ns}\n".encode()
    req = urllib.request.Request(
        f"{victoria_metrics.url}/api/v2/write?org=o&bucket=b&precision=ns", data=body
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 204
    rows = vm_export(victoria_metrics, '{__name__="harness_value"}')
    assert rows and rows[0]["values"] == [42]


def test_influxd_v1_write_and_influxql(influxd: ServerProcess) -> None:
    influx_create_database(influxd, "harness")
    req = urllib.request.Request(
        f"{influxd.url}/write?db=harness", data=b"m,site=t power_w=7 1700000000000000000\n"
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 204
    data = influx_query(influxd, "harness", "SELECT power_w FROM m")
    text = json.dumps(data)
    assert '"power_w"' in text and "7" in text


def test_alertmanager_answers_v2_api(alertmanager: ServerProcess) -> None:
    with urllib.request.urlopen(f"{alertmanager.url}/api/v2/status", timeout=5) as resp:
        status = json.loads(resp.read())
    assert status["cluster"]["status"] in {"disabled", "ready", "settling"}


def test_mosquitto_stops_by_pid_and_restarts_on_same_port(tmp_path: Path) -> None:
    srv = start_mosquitto(tmp_path)
    port, pid = srv.port, srv.pid
    srv.stop()
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
    srv.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        assert srv.port == port
    finally:
        srv.stop()
