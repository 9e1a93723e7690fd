"""Serve the app with uvicorn inside the daemon's event loop (the daemon owns signals)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from minerd.settings.models import ApiSettings

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 5.0


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


def uvicorn_config(app: FastAPI, api: ApiSettings) -> uvicorn.Config:
    """listen, TLS, and optional client certificates of the grid authority."""
    tls: dict[str, object] = {}
    if api.tls_cert_file is not None:
        tls["ssl_certfile"] = str(api.tls_cert_file)
        if api.tls_key_file is not None:
            tls["ssl_keyfile"] = str(api.tls_key_file)
        if api.client_ca_file is not None:
            tls["ssl_ca_certs"] = str(api.client_ca_file)
            tls["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
    return uvicorn.Config(
        app,
        host=api.host,
        port=api.port,
        lifespan="off",
        log_config=None,  # logging is configured by the daemon
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the client address feeds the auth throttle: never trust XFF
        timeout_graceful_shutdown=int(SHUTDOWN_TIMEOUT_S),
        **tls,  # type: ignore[arg-type]
    )


async def serve(
    app: FastAPI, api_settings: ApiSettings, started: asyncio.Event | None = None
) -> None:
    """Run until cancelled; sets `started` once the socket listens. A port that cannot be
    bound raises OSError naming the address instead of exiting the process."""
    server = _Server(uvicorn_config(app, api_settings), started)
    try:
        await server.serve()
    except asyncio.CancelledError:
        server.should_exit = True
        if getattr(server, "servers", None):  # listening, even if startup was not finished
            try:
                async with asyncio.timeout(SHUTDOWN_TIMEOUT_S + 1):
                    await server.shutdown()
            except TimeoutError:
                log.warning("api: shutdown did not finish in %.0f s", SHUTDOWN_TIMEOUT_S + 1)
        raise
    except SystemExit as exc:
        # uvicorn exits the process when it cannot bind; the daemon decides instead.
        raise OSError(f"api: cannot listen on {api_settings.listen}") from exc
    if not server.started:
        raise OSError(f"api: cannot listen on {api_settings.listen}")
