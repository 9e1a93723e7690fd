"""Fixtures of the API tests: a real site on a temp SQLite file and its app."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).parent))

from api_site import SiteUnderTest, api_settings

from minerd.api import create_app


def metrics_text() -> bytes:
    return b"# TYPE minerd_up gauge\nminerd_up 1\n"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[SiteUnderTest]:
    s = SiteUnderTest(tmp_path / "minerd.sqlite")
    yield s
    s.close()


@pytest.fixture
def app(site: SiteUnderTest) -> FastAPI:
    return create_app(site, api_settings(), metrics_text, None)


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
