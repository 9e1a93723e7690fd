"""Deadlines on reading a request, so a client that never finishes one frees its socket.

uvicorn closes a keep-alive connection that stays silent, but a fresh connection that
never sends a byte, or trickles its headers or body (slowloris), is held forever. Here
every connection that waits for a request must deliver the headers within
header_timeout_s (from connect, or from the end of the previous response) and the body
within body_timeout_s after them. Time the application takes to answer is not limited.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from minerd.api.connections import ConnectionGate


class DeadlineConfig(uvicorn.Config):
    """uvicorn's config plus the request deadlines and the connection gate."""

    def __init__(
        self,
        *args: Any,
        header_timeout_s: float,
        body_timeout_s: float,
        gate: ConnectionGate,
        **kwargs: Any,
    ) -> None:
        kwargs["http"] = DeadlineH11Protocol
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.gate = gate


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline while a request is being read."""

    _deadline: asyncio.TimerHandle | None = None
    _seen_cycle: RequestResponseCycle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._config().header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return  # still waiting for headers: the deadline set before runs on
        if cycle is not self._seen_cycle:  # headers complete: now the body
            self._seen_cycle = cycle
            if cycle.more_body:
                self._arm(self._config().body_timeout_s)
            else:
                self._disarm()
        elif not cycle.more_body:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm(self._config().header_timeout_s)

    def _config(self) -> DeadlineConfig:
        config = self.config
        assert isinstance(config, DeadlineConfig)
        return config

    def _arm(self, delay_s: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        cycle = self.cycle
        reading = cycle is None or cycle.response_complete or cycle.more_body
        if not reading or self.transport.is_closing():
            return
        what = "body" if cycle is not None and not cycle.response_complete else "headers"
        host = self.client[0] if self.client else "unknown"
        self._config().gate.timed_out.event(f"{host} sent no complete request {what} in time")
        self.transport.close()
