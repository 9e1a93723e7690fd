"""Count and time every request by route template (bounded labels, never the raw path)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minerd.clock import elapsed_s

log = logging.getLogger(__name__)

# (route template, method, status, duration_s), e.g. PrometheusSink.observe_api_request
ObserveRequest = Callable[[str, str, int, float], None]


class RequestMetrics:
    def __init__(self, app: ASGIApp, observe: ObserveRequest) -> None:
        self.app = app
        self.observe = observe
        self._warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = elapsed_s()
        status = 500  # what the client gets if the app raises before answering

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            try:
                self.observe(str(route), str(scope.get("method", "")), status, elapsed_s() - t0)
            except Exception as exc:  # metrics must never break an answer
                log.log(logging.DEBUG if self._warned else logging.WARNING, "api metrics: %s", exc)
                self._warned = True
