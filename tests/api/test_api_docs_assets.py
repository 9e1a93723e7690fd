"""/docs assets: the first read of a Swagger UI file happens off the event loop (it is a
1.5 MB file, hashed), later ones come from memory."""

from __future__ import annotations

import threading

import httpx
import pytest
from fastapi import FastAPI

from minerd.api import docs_page


@pytest.mark.asyncio
async def test_the_first_asset_read_runs_in_a_thread_then_comes_from_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(docs_page, "_assets", {})
    real = docs_page._asset
    threads: list[str] = []

    def spy(name: str) -> docs_page._Asset | None:
        threads.append(threading.current_thread().name)
        return real(name)

    monkeypatch.setattr(docs_page, "_asset", spy)
    app = FastAPI()
    app.include_router(docs_page.docs_router("/openapi.json", "minerd"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        url = f"{docs_page.ASSET_PREFIX}/swagger-ui.css"
        first = await http.get(url)
        second = await http.get(url)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content and first.content
    assert len(threads) == 1 and threads[0] != threading.main_thread().name
