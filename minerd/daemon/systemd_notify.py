"""systemd's notify protocol (sd_notify), without libsystemd.

READY=1 once the first control cycle has run; WATCHDOG=1 only while the control loop keeps
cycling, so systemd restarts a daemon whose loop is stuck even if the process is alive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

from minerd.clock import elapsed_s

log = logging.getLogger("minerd.systemd")


class Notifier:
    def __init__(self, socket_path: str | None = None) -> None:
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
        # A leading '@' names a socket in the abstract namespace.
        self._address = "\0" + path[1:] if path.startswith("@") else path
        self._sock: socket.socket | None = None
        if self._address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, message: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode(), self._address)
        except OSError as e:
            log.warning("systemd notify failed: %s", e)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """Half of WATCHDOG_USEC, as systemd recommends; None when no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


async def feed_watchdog(
    notifier: Notifier,
    last_cycle_mono_s: Callable[[], float],
    interval_s: float,
    stall_after_s: float,
) -> None:
    """Send WATCHDOG=1 every interval while the control loop has cycled recently."""
    stalled = False
    while True:
        age_s = elapsed_s() - last_cycle_mono_s()
        if age_s <= stall_after_s:
            notifier.notify("WATCHDOG=1")
            if stalled:
                log.warning("control loop cycling again; watchdog fed")
            stalled = False
        elif not stalled:
            stalled = True
            log.error("control loop stalled for %.1fs: watchdog no longer fed", age_s)
        await asyncio.sleep(interval_s)
