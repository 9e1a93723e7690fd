"""Serve the app with uvicorn inside the daemon's event loop (the daemon owns signals).

The API gets a bounded share of the process's file descriptors: at most
[api] max_connections, and never more than RLIMIT_NOFILE leaves after what rigs, meters
and storage need. Connections beyond the cap are closed at accept; a connection that does
not deliver a request in time is closed (minerd.api.deadlines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Generator
from typing import Any

import uvicorn
from fastapi import FastAPI

from minerd.api.connections import (
    ConnectionGate,
    GatedListener,
    bind_listeners,
    connection_cap,
    is_accept_resource_error,
    open_files_limit,
)
from minerd.api.deadlines import DeadlineConfig
from minerd.settings.models import ApiSettings

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 5.0
MAX_HEADER_BYTES = 16_384  # request line and headers; larger ones get 400 from h11


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers, telling the caller when it listens."""

    def __init__(self, config: uvicorn.Config, started: asyncio.Event | None) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # SIGINT/SIGTERM belong to the daemon, which cancels this task

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets=sockets)  # type: ignore[arg-type]
        if self.started and self._started_event is not None:
            self._started_event.set()


def uvicorn_config(
    app: FastAPI, api: ApiSettings, gate: ConnectionGate | None = None
) -> DeadlineConfig:
    """listen, TLS, optional client certificates of the grid authority, and the limits."""
    tls: dict[str, object] = {}
    if api.tls_cert_file is not None:
        tls["ssl_certfile"] = str(api.tls_cert_file)
        if api.tls_key_file is not None:
            tls["ssl_keyfile"] = str(api.tls_key_file)
        if api.client_ca_file is not None:
            tls["ssl_ca_certs"] = str(api.client_ca_file)
            tls["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return DeadlineConfig(
        app,
        header_timeout_s=api.header_timeout_s,
        body_timeout_s=api.body_timeout_s,
        gate=gate or ConnectionGate(api.max_connections),
        host=api.host,
        port=api.port,
        lifespan="off",
        log_config=None,  # logging is configured by the daemon
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the client address feeds the auth throttle: never trust XFF
        timeout_graceful_shutdown=int(SHUTDOWN_TIMEOUT_S),
        timeout_keep_alive=api.keep_alive_s,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        **tls,
    )


async def serve(
    app: FastAPI,
    api_settings: ApiSettings,
    started: asyncio.Event | None = None,
    *,
    reserved_fds: int = 0,
) -> None:
    """Run until cancelled; sets `started` once the socket listens. `reserved_fds` are the
    descriptors kept for control (minerd.api.connections.reserved_fds). A port that cannot
    be bound raises OSError naming the address instead of exiting the process."""
    cap = connection_cap(api_settings.max_connections, reserved_fds, open_files_limit())
    gate = ConnectionGate(cap)
    try:
        listeners = bind_listeners(api_settings.host, api_settings.port, gate)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(f"api: cannot listen on {api_settings.listen}: {reason}") from exc
    server = _Server(uvicorn_config(app, api_settings, gate), started)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def quiet_accept_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # asyncio reports each failed accept with a traceback; the gate logs them per interval.
        if is_accept_resource_error(context, listeners):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(quiet_accept_errors)
    log.info("api: listening on %s, at most %d connections", api_settings.listen, cap)
    try:
        await _serve(server, listeners, api_settings)
    finally:
        if loop.get_exception_handler() is quiet_accept_errors:
            loop.set_exception_handler(previous)
        for sock in listeners:
            sock.close()


async def _serve(server: _Server, listeners: list[GatedListener], api: ApiSettings) -> None:
    sockets: list[Any] = list(listeners)
    try:
        await server.serve(sockets=sockets)
    except asyncio.CancelledError:
        server.should_exit = True
        if getattr(server, "servers", None):  # listening, even if startup was not finished
            try:
                async with asyncio.timeout(SHUTDOWN_TIMEOUT_S + 1):
                    await server.shutdown(sockets=sockets)
            except TimeoutError:
                log.warning("api: shutdown did not finish in %.0f s", SHUTDOWN_TIMEOUT_S + 1)
        raise
    except SystemExit as exc:
        # uvicorn exits the process when it cannot start; the daemon decides instead.
        raise OSError(f"api: cannot listen on {api.listen}") from exc
    if not server.started:
        raise OSError(f"api: cannot listen on {api.listen}")
