"""A real aiohttp server on 127.0.0.1 for tests that play a remote HTTP endpoint (a price
feed, an InfluxDB write API): the routes given, on a port the OS picks, stopped on exit."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

from aiohttp import web


@contextlib.asynccontextmanager
async def local_http(routes: Iterable[web.RouteDef]) -> AsyncIterator[str]:
    """Serves `routes` (e.g. [web.get("/x", handler)]); yields "http://127.0.0.1:<port>"."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
