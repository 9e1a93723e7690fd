"""OPTIONS and 405 answers name every method a path allows.

Starlette stops at the first route whose path matches, so a path served by two routes
(GET and DELETE /api/v1/quotas/{id}) answered with `Allow: GET` only. This middleware
collects the methods of all routes matching the path.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method of the routes whose path matches, plus OPTIONS; [] for an unknown path."""
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(scope)
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods.update(route_methods)
    return sorted(methods | {"OPTIONS"}) if methods else []


class AllowedMethods:
    """ASGI middleware: OPTIONS on a known path is 204 with Allow; a 405 gets the full Allow."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            methods = allowed_methods(self.routes, scope)
            if methods:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [(b"allow", ", ".join(methods).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return

        async def full_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = ", ".join(allowed_methods(self.routes, scope)).encode()
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", methods)]}
            await send(message)

        await self.app(scope, receive, full_allow)
