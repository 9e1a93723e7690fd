"""Real servers for tests: Mosquitto, VictoriaMetrics, InfluxDB 1.x, Alertmanager.

Each server runs from its Debian binary on a free loopback port in a temp dir and is stopped
by its PID. A missing binary fails the run with the command that installs it: a test that
needs a real server never skips silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

INSTALL_HINT = "install it with: sudo make deps (or apt-get install -y {package})"


# A port found free in the kernel's ephemeral range can be gone a moment later: every
# outgoing connection and every bind(0) of another test process takes its port from there.
# So ports a test binds by number come from below that range, each pytest-xdist worker from
# its own slice, handed out in turn (a port just released is not handed out again soon).
_PORTS_FROM = 20000
_SLICE = 2000
_cursor: list[int] = []


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    lo = _PORTS_FROM + (int(worker) if worker.isdigit() else 0) % 6 * _SLICE
    if lo + _SLICE > _ephemeral_low():  # no room below the ephemeral range here
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            return int(s.getsockname()[1])
    if not _cursor:
        _cursor.append(os.getpid() % _SLICE)
    for _ in range(_SLICE):
        port = lo + _cursor[0] % _SLICE
        _cursor[0] += 1
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {lo}-{lo + _SLICE - 1} on {host}")


def require_binary(name: str, package: str) -> str:
    for candidate in (name, f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        path = shutil.which(candidate)
        if path:
            return path
    pytest.fail(f"{name} not found; " + INSTALL_HINT.format(package=package), pytrace=False)


def _http_ok(url: str, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tcp_ok(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


class ServerProcess:
    """One server process: start, stop (by PID), restart on the same port and data dir."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        workdir: Path,
        port: int,
        ready: Callable[[], bool],
        scheme: str = "http",
        start_timeout_s: float = 30.0,
    ) -> None:
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = port
        self.scheme = scheme
        self._ready = ready
        self._start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    def start(self) -> ServerProcess:
        log = open(self.workdir / f"{self.name}.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: {self.log_tail()}")
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready in {self._start_timeout_s}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None
        # The port must be free again before a restart binds it.
        deadline = time.monotonic() + 5
        while _tcp_ok(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, chars: int = 2000) -> str:
        path = self.workdir / f"{self.name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def start_mosquitto(workdir: Path) -> ServerProcess:
    binary = require_binary("mosquitto", "mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
    )
    os.chmod(workdir, 0o755)
    os.chmod(conf, 0o644)
    srv = ServerProcess(
        "mosquitto",
        [binary, "-c", str(conf)],
        workdir,
        port,
        ready=lambda: _tcp_ok("127.0.0.1", port),
        scheme="mqtt",
    )
    return srv.start()


def start_victoria_metrics(workdir: Path) -> ServerProcess:
    binary = require_binary("victoria-metrics", "victoria-metrics")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        binary,
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={workdir / 'data'}",
        "-search.latencyOffset=0s",
        "-search.disableCache",
        "-loggerLevel=WARN",
    ]
    return ServerProcess(
        "victoria-metrics",
        argv,
        workdir,
        port,
        ready=lambda: _http_ok(f"http://127.0.0.1:{port}/health"),
    ).start()


def start_influxd(workdir: Path) -> ServerProcess:
    binary = require_binary("influxd", "influxdb")
    workdir.mkdir(parents=True, exist_ok=True)
    port, rpc_port = free_port(), free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{workdir}/meta"\n'
        f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
        "  query-log-enabled = false\n"
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n"
        "[continuous_queries]\n  enabled = false\n"
    )
    return ServerProcess(
        "influxd",
        [binary, "run", "-config", str(conf)],
        workdir,
        port,
        ready=lambda: _http_ok(f"http://127.0.0.1:{port}/ping"),
    ).start()


def start_alertmanager(workdir: Path) -> ServerProcess:
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "alertmanager.yml"
    # Short group waits so tests see grouping within seconds; a null receiver keeps it local.
    conf.write_text(
        "route:\n  receiver: 'null'\n  group_by: ['alertname', 'site', 'container']\n"
        "  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n"
        "receivers:\n  - name: 'null'\n"
    )
    argv = [
        binary,
        f"--config.file={conf}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    return ServerProcess(
        "alertmanager",
        argv,
        workdir,
        port,
        ready=lambda: _http_ok(f"http://127.0.0.1:{port}/-/ready"),
    ).start()


def influx_query(server: ServerProcess, database: str, query: str) -> dict[str, object]:
    """Run an InfluxQL query against influxd 1.x and return the decoded JSON."""
    import json
    import urllib.parse

    qs = urllib.parse.urlencode({"db": database, "q": query, "epoch": "ns"})
    with urllib.request.urlopen(f"{server.url}/query?{qs}", timeout=10) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


def influx_create_database(server: ServerProcess, database: str) -> None:
    import urllib.parse

    body = urllib.parse.urlencode({"q": f'CREATE DATABASE "{database}"'}).encode()
    with urllib.request.urlopen(f"{server.url}/query", data=body, timeout=10) as resp:
        assert resp.status == 200
    # influxd 1.6 can answer the CREATE before a write to the new database is accepted (a
    # write then gets 404 "database not found"): wait until SHOW DATABASES lists it.
    show = urllib.parse.urlencode({"q": "SHOW DATABASES"})
    for _ in range(100):
        with urllib.request.urlopen(f"{server.url}/query?{show}", timeout=10) as resp:
            if f'"{database}"' in resp.read().decode():
                return
        time.sleep(0.05)
    raise AssertionError(f"influxd never listed database {database!r} after CREATE")


def vm_export(server: ServerProcess, match: str, timeout_s: float = 5.0) -> list[dict[str, object]]:
    """Export series matching `match` from VictoriaMetrics, waiting for them to appear."""
    import json
    import urllib.parse

    deadline = time.monotonic() + timeout_s
    rows: list[dict[str, object]] = []
    while True:
        _http_ok(f"{server.url}/internal/force_flush", timeout_s=2)
        qs = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{server.url}/api/v1/export?{qs}", timeout=10) as resp:
            rows = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
