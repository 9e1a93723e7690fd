"""cgminer API listeners: one TCP server per rig on its own loopback address.

Listening sockets are made by hand (bind + listen, then loop.create_server(sock=...)) so that
tens of thousands of them start without a getaddrinfo round trip each.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

from minerd.clock import Clock
from minerd.sim import cgminer
from minerd.sim.rig import RigSim

log = logging.getLogger(__name__)

SLOW_REPLY_S = 2.0  # wall seconds a "slow" rig waits before answering
HUNG_HOLD_S = 300.0  # a hung rig drops the connection after this many wall seconds
MAX_REQUEST_BYTES = 65_536
# What a "reads_hang" rig still answers: LuxOS's session and control commands. Everything
# else (summary, stats, power, profileget... and their "+" batches) hangs.
CONTROL_COMMANDS = frozenset({"logon", "logoff", "session", "curtail", "profileset"})
LISTEN_BACKLOG = 64


class CgminerConnection(asyncio.Protocol):
    def __init__(
        self, rig: RigSim, clock: Clock, counter: list[int], live: set[asyncio.Transport]
    ) -> None:
        self._rig = rig
        self._clock = clock
        self._counter = counter
        self._live = live
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._done = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._live.add(transport)
        down_from_s, down_until_s = self._rig.api_down_s
        if down_from_s <= self._clock.now_s() < down_until_s:  # miner process restarting
            transport.abort()
            return
        if "hung" in self._rig.faults:
            self._hang()

    def _hang(self) -> None:
        """Never answer; drop the connection after HUNG_HOLD_S."""
        assert self._transport is not None
        self._done = True
        self._timer = asyncio.get_running_loop().call_later(HUNG_HOLD_S, self._transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._live.discard(self._transport)
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._buf += data
        if len(self._buf) > MAX_REQUEST_BYTES:
            self._finish_error(cgminer.CODE_INVALID_JSON, "Request too large")
            return
        text = self._buf.strip(b"\x00 \r\n\t")
        if text.endswith(b"}"):
            self._try_parse(text, final=False)

    def eof_received(self) -> bool:
        if not self._done:
            self._try_parse(self._buf.strip(b"\x00 \r\n\t"), final=True)
        return True  # keep the write side open until the reply went out

    def _try_parse(self, text: bytes, final: bool) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            if final:
                self._finish_error(cgminer.CODE_INVALID_JSON, "Invalid JSON")
            return
        hooked = (
            cgminer.handle_request(self._rig, request, self._clock.now_s())
            if isinstance(request, dict)
            else None
        )
        if hooked is not None:  # a family's own request (Whatsminer v2 token, privileged)
            self._send(cgminer.encode(hooked))
            return
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            self._finish_error(cgminer.CODE_INVALID_JSON, "Missing JSON 'command'")
            return
        if "reads_hang" in self._rig.faults and request["command"].strip() not in CONTROL_COMMANDS:
            self._hang()
            return
        parameter = request.get("parameter", "")
        now_s = self._clock.now_s()
        reply = cgminer.handle(self._rig, request["command"].strip(), str(parameter), now_s)
        self._send(cgminer.encode(reply))

    def _finish_error(self, code: int, msg: str) -> None:
        self._send(cgminer.encode(cgminer.error(self._rig, self._clock.now_s(), code, msg)))

    def _send(self, payload: bytes) -> None:
        self._done = True
        self._counter[0] += 1
        if "broken_json" in self._rig.faults:
            payload = cgminer.break_json(payload, self._counter[0])
        if "slow" in self._rig.faults:
            self._timer = asyncio.get_running_loop().call_later(SLOW_REPLY_S, self._write, payload)
        else:
            self._write(payload)

    def _write(self, payload: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(payload)
        transport.close()


def bind_listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class ServerBook:
    """One listening server per rig on its own loopback address, for any of the rig's APIs:
    a rig reopened after 'offline' gets the port it had, and closing them all also ends the
    connections and handler tasks still open. A family's listeners subclass it and open."""

    def __init__(self) -> None:
        self._servers: dict[str, asyncio.Server] = {}
        self._ports: dict[str, int] = {}
        self.live: set[asyncio.Transport] = set()  # open connections (protocol servers)
        self.tasks: set[asyncio.Task[None]] = set()  # running handlers (stream servers)

    def bind(self, rig_id: str, host: str, port: int) -> socket.socket:
        """The rig's listening socket: on the port it had before, else on port."""
        return bind_listener(host, self._ports.get(rig_id, port))

    def add(self, rig_id: str, server: asyncio.Server, sock: socket.socket) -> int:
        self._servers[rig_id] = server
        bound = int(sock.getsockname()[1])
        self._ports[rig_id] = bound
        return bound

    def bound_port(self, rig_id: str) -> int:
        """The port the rig's server was last bound to (open or not)."""
        return self._ports[rig_id]

    def port_of(self, rig_id: str) -> int | None:
        return self._ports.get(rig_id) if rig_id in self._servers else None

    def is_open(self, rig_id: str) -> bool:
        return rig_id in self._servers

    def close(self, rig_id: str) -> None:
        server = self._servers.pop(rig_id, None)
        if server is not None:
            server.close()

    async def close_all(self) -> None:
        servers = list(self._servers.values())
        self._servers.clear()
        for server in servers:
            server.close()
        for transport in list(self.live):
            transport.abort()
        for task in list(self.tasks):
            task.cancel()
        for server in servers:
            await server.wait_closed()


class RigListeners(ServerBook):
    """The TCP listeners of some rigs; 'offline' closes a rig's listener, clearing reopens it."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self._counter = [0]

    @property
    def replies(self) -> int:
        return self._counter[0]

    def port_of(self, rig_id: str) -> int:
        return self.bound_port(rig_id)  # the fleet asks for it while the rig is offline too

    async def open(self, rig: RigSim) -> int:
        loop = asyncio.get_running_loop()
        sock = self.bind(rig.rig_id, rig.plan.host, rig.plan.port)
        live = self.live
        server = await loop.create_server(
            lambda: CgminerConnection(rig, self._clock, self._counter, live), sock=sock
        )
        return self.add(rig.rig_id, server, sock)
