"""systemd's notify protocol as the unit uses it (Type=notify, WatchdogSec=).

1. The real daemon (`minerd run` on a config written by `minerd sim --write-config`) under a
   NOTIFY_SOCKET this test owns: READY=1 after the first cycle, then WATCHDOG=1 again and
   again; frozen (SIGSTOP) it sends nothing, thawed it resumes; SIGTERM: STOPPING=1. What it
   waits for is bounded generously and never timed: a busy machine may delay any of it.
2. The feeding interval is half of WATCHDOG_USEC (watchdog_interval_s).
3. minerd.daemon.systemd_notify's feeder over a real AF_UNIX datagram socket, on virtual time
   (tests/virtual_loop.py), so its cadence is asserted exactly: it stops feeding when the
   control loop stops cycling although the process and its event loop are alive (the case
   systemd cannot see by itself), and resumes when the loop does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from servers import free_port
from virtual_loop import run_virtual
from waiting import wait_until_sync

from minerd.daemon.systemd_notify import Notifier, feed_watchdog, watchdog_interval_s

MINERD = str(Path(sys.executable).with_name("minerd"))
WATCHDOG_USEC = 2_000_000  # the daemon feeds every 1 s


class NotifySocket:
    """The receiving end systemd would own: the datagrams, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def receive(self, timeout_s: float) -> str | None:
        """The next datagram, or None if none came within timeout_s."""
        self.sock.settimeout(timeout_s)
        try:
            msg = self.sock.recv(4096).decode()
        except TimeoutError:
            return None
        self.messages.append(msg)
        return msg

    def drain(self) -> list[str]:
        """What is queued now."""
        out = []
        while (msg := self.receive(0.001)) is not None:
            out.append(msg)
        return out

    def wait_for(self, text: str, timeout_s: float, max_messages: int = 200) -> None:
        """Until a datagram says `text`; each must come within timeout_s (a generous bound)."""
        for _ in range(max_messages):
            msg = self.receive(timeout_s)
            if msg is None:
                break
            if text in msg.split("\n"):
                return
        raise AssertionError(f"no {text!r}; got {self.messages}")

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
        wait_until_sync(
            lambda: (
                sim.poll() is not None or (config.exists() and Path(f"{config}.tokens").exists())
            ),
            60.0,
            "the simulator to write its config",
        )
        assert sim.poll() is None, sim.communicate()[0].decode()[-2000:]
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
        notify.wait_for("READY=1", 60.0)
        # Fed again and again (every 1 s: its interval is test_watchdog_interval_is_half_...).
        fed = [notify.receive(30.0) for _ in range(3)]
        assert fed == ["WATCHDOG=1"] * 3, notify.messages

        # Frozen, the process feeds nothing: systemd would kill it at WatchdogSec.
        daemon.send_signal(signal.SIGSTOP)
        wait_until_sync(lambda: process_state(daemon.pid) == "T", 30.0, "the daemon to stop")
        notify.drain()  # sent before it stopped
        assert notify.receive(2.5) is None  # alive, it would have fed twice in 2.5 s
        daemon.send_signal(signal.SIGCONT)
        notify.wait_for("WATCHDOG=1", 30.0)

        daemon.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", 10.0)
        assert daemon.wait(15) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        out = daemon.communicate()[0].decode()
        notify.close()
    assert "ready: first control cycle done" in out


def process_state(pid: int) -> str:
    """R, S, T (stopped), ... from /proc/<pid>/stat."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    assert watchdog_interval_s() == 1.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 1.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert watchdog_interval_s() is None
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval_s() is None


def test_watchdog_stops_while_the_control_loop_is_stalled(tmp_path: Path) -> None:
    run_virtual(watchdog_stops_while_the_control_loop_is_stalled(tmp_path))


async def watchdog_stops_while_the_control_loop_is_stalled(tmp_path: Path) -> None:
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
        # Every 100 ms of virtual time: the feeder's cadence exactly, whatever the machine.
        assert 6 <= len(cycling) <= 7 and {m for _, m in cycling} == {"WATCHDOG=1"}, cycling

        stalled.set()
        stalled_at = loop.time()
        during = await received(1.2)
        # Fed at most until the loop has been quiet for stall_after_s (plus one interval).
        assert during, "fed right after the last cycle"
        assert all(at - stalled_at <= 0.4 + 0.1 + 1e-6 for at, _ in during), during
        assert not await received(0.5)

        stalled.clear()
        control = asyncio.create_task(control_loop())
        resumed = await received(0.5)
        assert len(resumed) >= 4, resumed
    finally:
        for task in (control, feeder):
            task.cancel()
        await asyncio.gather(control, feeder, return_exceptions=True)
        notifier.close()
        notify.close()


def test_notifier_reaches_an_abstract_socket() -> None:
    name = f"minerd-test-{os.getpid()}-{uuid.uuid4().hex}"
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
