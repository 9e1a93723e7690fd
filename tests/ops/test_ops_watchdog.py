"""systemd's notify protocol as the unit uses it (Type=notify, WatchdogSec=).

1. The real daemon (`minerd run` on a config written by `minerd sim --write-config`) under a
   NOTIFY_SOCKET this test owns: READY=1 after the first cycle, then WATCHDOG=1 at half of
   WATCHDOG_USEC; frozen (SIGSTOP) it sends nothing, thawed it resumes; SIGTERM: STOPPING=1.
2. minerd.systemd_notify's feeder over a real AF_UNIX datagram socket: it stops feeding when
   the control loop stops cycling although the process and its event loop are alive (the case
   systemd cannot see by itself), and resumes when the loop does.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from servers import free_port

from minerd.systemd_notify import Notifier, feed_watchdog

MINERD = str(Path(sys.executable).with_name("minerd"))
WATCHDOG_USEC = 2_000_000  # the daemon feeds every 1 s


class NotifySocket:
    """The receiving end systemd would own: datagrams with their arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []

    def collect(self, seconds: float) -> list[tuple[float, str]]:
        """Receive for `seconds`; return what came in that window."""
        got: list[tuple[float, str]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            got.append((time.monotonic(), data.decode()))
        self.messages += got
        return got

    def wait_for(self, text: str, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for at, msg in self.collect(min(0.5, deadline - time.monotonic())):
                if text in msg.split("\n"):
                    return at
        raise AssertionError(f"no {text!r} within {timeout_s}s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sim_config(tmp_path: Path) -> Iterator[Path]:
    config = tmp_path / "site.toml"
    argv = [
        MINERD,
        "sim",
        "--rigs=4",
        "--port=0",
        f"--meter-port={free_port()}",
        f"--plc-port={free_port()}",
        f"--control=127.0.0.1:{free_port()}",
        f"--write-config={config}",
        f"--api-listen=127.0.0.1:{free_port()}",
    ]
    sim = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30.0
        while not (config.exists() and Path(f"{config}.tokens").exists()):
            assert sim.poll() is None, sim.communicate()[0].decode()[-2000:]
            assert time.monotonic() < deadline, "the simulator wrote no config"
            time.sleep(0.1)
        yield config
    finally:
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()


def test_daemon_notifies_ready_and_feeds_the_watchdog(sim_config: Path, tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC=str(WATCHDOG_USEC))
    env.pop("WATCHDOG_PID", None)
    daemon = subprocess.Popen(
        [MINERD, "run", "-c", str(sim_config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        ready_at = notify.wait_for("READY=1", 30.0)
        fed = [at for at, m in notify.collect(3.5) if m == "WATCHDOG=1"]
        assert len(fed) >= 3, notify.messages
        gaps = [b - a for a, b in itertools.pairwise(fed)]
        assert all(0.5 < g < 1.6 for g in gaps), gaps
        assert fed[0] - ready_at < 1.5

        # Frozen, the process feeds nothing: systemd would kill it at WatchdogSec.
        daemon.send_signal(signal.SIGSTOP)
        notify.collect(0.3)  # a datagram already in flight
        assert notify.collect(2.5) == []
        daemon.send_signal(signal.SIGCONT)
        notify.wait_for("WATCHDOG=1", 3.0)

        daemon.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", 10.0)
        assert daemon.wait(15) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        out = daemon.communicate()[0].decode()
        notify.close()
    assert "ready: first control cycle done" in out


@pytest.mark.asyncio
async def test_watchdog_stops_while_the_control_loop_is_stalled(tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "wd.sock")
    notify.sock.setblocking(False)
    loop = asyncio.get_running_loop()
    last_cycle = [loop.time()]
    stalled = asyncio.Event()

    async def control_loop() -> None:
        # Cycles every 50 ms until told to stall; the event loop itself keeps running.
        while not stalled.is_set():
            last_cycle[0] = loop.time()
            await asyncio.sleep(0.05)

    async def received(seconds: float) -> list[tuple[float, str]]:
        out: list[tuple[float, str]] = []
        end = loop.time() + seconds
        while loop.time() < end:
            try:
                data = await asyncio.wait_for(loop.sock_recv(notify.sock, 4096), end - loop.time())
            except TimeoutError:
                break
            out.append((loop.time(), data.decode()))
        return out

    notifier = Notifier(str(notify.path))
    assert notifier.enabled
    control = asyncio.create_task(control_loop())
    feeder = asyncio.create_task(
        feed_watchdog(notifier, lambda: last_cycle[0], interval_s=0.1, stall_after_s=0.4)
    )
    try:
        cycling = await received(0.6)
        assert len(cycling) >= 4 and {m for _, m in cycling} == {"WATCHDOG=1"}

        stalled.set()
        stalled_at = loop.time()
        during = await received(1.2)
        # Fed at most until the loop has been quiet for stall_after_s (plus one interval).
        assert during, "fed right after the last cycle"
        assert all(at - stalled_at <= 0.4 + 0.15 for at, _ in during), during
        assert not await received(0.5)

        stalled.clear()
        control = asyncio.create_task(control_loop())
        resumed = await received(0.5)
        assert len(resumed) >= 2
    finally:
        for task in (control, feeder):
            task.cancel()
        await asyncio.gather(control, feeder, return_exceptions=True)
        notifier.close()
        notify.close()


def test_notifier_reaches_an_abstract_socket() -> None:
    name = f"minerd-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    notifier = Notifier("@" + name)
    try:
        assert notifier.notify("READY=1")
        assert sock.recv(64) == b"READY=1"
    finally:
        notifier.close()
        sock.close()
    assert not Notifier("").enabled and not Notifier("").notify("READY=1")
