"""The API's share of file descriptors: a connection cap enforced at accept.

uvicorn's limit_concurrency answers 503 but keeps every socket it accepted, so idle
connections could take the descriptors that rigs and meters need. Here the listening
socket itself counts the connections it hands out (released when asyncio closes them,
whether or not a TLS handshake ever finished) and closes any beyond the cap at once.
Failed accepts (EMFILE and friends) are logged once per interval, not per attempt.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("minerd.api.connections")

# Descriptors the daemon needs besides rig and meter links: stdio, the SQLite file, its WAL
# and shm, the event loop, sink and MQTT connections, alert channels, worker threads.
FIXED_RESERVE_FDS = 64
MIN_API_CONNECTIONS = 4  # below this the API is useless; the start-up log says why
# Accepts closed at once per wake-up of the listener, so a flood never holds the loop.
MAX_REFUSED_PER_WAKE = 64
# After an out-of-descriptors accept, asyncio stops watching the listener for 1 s.
ACCEPT_PAUSE_S = 0.9  # asyncio retries after 1 s: be ready by then
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def reserved_fds(
    rigs: int, meters: int, poll_concurrency: int, command_concurrency: int, kept: int = 0
) -> int:
    """Descriptors kept for control: one per concurrent rig read and command, one per meter
    link, those rig drivers hold open between polls (`kept`), and the fixed rest."""
    return (
        min(rigs, poll_concurrency)
        + min(rigs, command_concurrency)
        + meters
        + kept
        + FIXED_RESERVE_FDS
    )


def open_files_limit() -> int | None:
    """The soft RLIMIT_NOFILE; None when unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(max_connections: int, reserved: int, limit: int | None) -> int:
    """At most max_connections, and never more than the descriptors left after the reserve."""
    if limit is None:
        return max_connections
    spare = limit - reserved
    if spare >= max_connections:
        return max_connections
    cap = max(spare, MIN_API_CONNECTIONS)
    log.warning(
        "api: open-files limit %d leaves %d descriptors after %d reserved for rigs, meters "
        "and storage; the API takes at most %d connections ([api] max_connections = %d): "
        "raise LimitNOFILE",
        limit,
        spare,
        reserved,
        cap,
        max_connections,
    )
    return cap


class IntervalLog:
    """A repeating event: logged at `level` the first time, then at DEBUG, and once more at
    `level` per interval_s saying how many happened since."""

    def __init__(
        self,
        message: str,
        interval_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        level: int = logging.WARNING,
    ) -> None:
        self._message = message
        self._interval_s = interval_s
        self._level = level
        self._now = monotonic
        self._warned_at: float | None = None
        self._since = 0
        self.total = 0

    def event(self, detail: str) -> None:
        self.total += 1
        self._since += 1
        now = self._now()
        if self._warned_at is None:
            log.log(self._level, "%s: %s", self._message, detail)
        elif now - self._warned_at >= self._interval_s:
            log.log(
                self._level,
                "%s: %s (%d times since %.0f s ago)",
                self._message,
                detail,
                self._since,
                now - self._warned_at,
            )
        else:
            log.debug("%s: %s", self._message, detail)
            return
        self._warned_at = now
        self._since = 0


class ConnectionGate:
    """Counts the API's open connections against its cap."""

    def __init__(self, cap: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.cap = cap
        self._now = monotonic
        self._open: set[int] = set()
        self._serial = 0
        self.paused_until = 0.0
        self.refused = IntervalLog(
            f"api: connection refused, {cap} already open", monotonic=monotonic
        )
        self.accept_failed = IntervalLog("api: cannot accept a connection", monotonic=monotonic)
        # Browsers open spare connections they may never use: not worth a warning.
        self.timed_out = IntervalLog(
            "api: connection closed", monotonic=monotonic, level=logging.INFO
        )

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self) -> int | None:
        """A ticket for one more connection, or None when the cap is reached."""
        if len(self._open) >= self.cap:
            return None
        self._serial += 1
        self._open.add(self._serial)
        return self._serial

    def release(self, ticket: int) -> None:
        self._open.discard(ticket)

    def paused(self) -> bool:
        return self._now() < self.paused_until

    def out_of_resources(self, exc: OSError) -> None:
        # asyncio stops watching the listener for a second but keeps calling accept() for
        # the rest of its batch (once per backlog slot); refuse those calls cheaply.
        self.paused_until = self._now() + ACCEPT_PAUSE_S
        self.accept_failed.event(f"{exc.strerror or exc}")


class GatedConnection(socket.socket):
    """An accepted connection that gives its ticket back when closed."""

    _gate: ConnectionGate | None = None
    _ticket = 0

    def close(self) -> None:
        self._release()
        super().close()

    def detach(self) -> int:
        self._release()
        return super().detach()

    def __del__(self) -> None:  # never closed (should not happen): still free the slot
        self._release()

    def _release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.release(self._ticket)


class GatedListener(socket.socket):
    """A listening socket whose accept() enforces the gate; asyncio calls it as usual."""

    gate: ConnectionGate

    def accept(self) -> tuple[socket.socket, Any]:
        gate = self.gate
        if gate.paused():
            raise BlockingIOError(errno.EAGAIN, "accept paused: out of descriptors")
        for _ in range(MAX_REFUSED_PER_WAKE):
            try:
                fd, address = self._accept()  # type: ignore[attr-defined]
            except OSError as exc:
                if exc.errno in RESOURCE_ERRNOS:
                    gate.out_of_resources(exc)
                raise
            ticket = gate.admit()
            if ticket is not None:
                try:
                    conn = GatedConnection(self.family, self.type, self.proto, fileno=fd)
                except OSError:
                    gate.release(ticket)
                    socket.close(fd)
                    raise
                conn._gate, conn._ticket = gate, ticket
                return conn, address
            socket.close(fd)
            gate.refused.event(f"from {_host(address)}")
        raise BlockingIOError(errno.EAGAIN, "more refusals on the next wake-up")


def _host(address: Any) -> str:
    return str(address[0]) if isinstance(address, tuple) and address else str(address)


def is_accept_resource_error(context: dict[str, Any], listeners: list[GatedListener]) -> bool:
    """Whether an event-loop error report is asyncio's 'out of system resource' on accept
    of one of our listeners (the gate has already logged it)."""
    exc = context.get("exception")
    sock = context.get("socket")
    if not isinstance(exc, OSError) or exc.errno not in RESOURCE_ERRNOS or sock is None:
        return False
    try:
        fd = sock.fileno()
    except (AttributeError, OSError):
        return False
    return any(listener.fileno() == fd for listener in listeners)


def bind_listeners(host: str, port: int, gate: ConnectionGate) -> list[GatedListener]:
    """Bound (not yet listening) sockets for every address of host, as asyncio would."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[GatedListener] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _canon, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = GatedListener(family, kind, proto)
            listeners.append(sock)
            sock.gate = gate
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.setblocking(False)
    except OSError:
        for sock in listeners:
            sock.close()
        raise
    return listeners
