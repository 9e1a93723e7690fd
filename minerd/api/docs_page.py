"""`/docs`: Swagger UI served from this daemon, so it works on a site network without Internet.

FastAPI's default page loads Swagger UI from a CDN. Its files come here from the
`swagger-ui-bundle-v2` package (Swagger UI's own dist files, Apache-2.0), read once on first
use and served under `/static/swagger-ui/`; only the three files the page needs are served.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html

ASSET_PREFIX = "/static/swagger-ui"
_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


_assets: dict[str, _Asset] = {}
_lock = threading.Lock()


def _dist() -> Traversable:
    """The package's vendor/swagger-ui-<version>/ folder (found, so any version works)."""
    vendor = resources.files("swagger_ui_bundle").joinpath("vendor")
    found = sorted(e.name for e in vendor.iterdir() if e.name.startswith("swagger-ui-"))
    if not found:
        raise FileNotFoundError("swagger_ui_bundle ships no vendor/swagger-ui-* folder")
    return vendor.joinpath(found[-1])


def _asset(name: str) -> _Asset | None:
    content_type = _FILES.get(name)
    if content_type is None:
        return None
    with _lock:
        asset = _assets.get(name)
        if asset is None:
            body = _dist().joinpath(name).read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            asset = _assets[name] = _Asset(body, content_type, etag)
    return asset


def docs_router(openapi_url: str, title: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            swagger_js_url=f"{ASSET_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSET_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{ASSET_PREFIX}/favicon-32x32.png",
        )

    @router.get(ASSET_PREFIX + "/{name}")
    async def swagger_asset(name: str, request: Request) -> Response:
        # Only the listed files: no path is ever joined from the request. The first read
        # (a 1.5 MB file, hashed) goes to a thread: the loop also runs control.
        asset = _assets.get(name) or await asyncio.to_thread(_asset, name)
        if asset is None:
            return Response(status_code=404, content=b"not found\n", media_type="text/plain")
        headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(content=asset.body, media_type=asset.content_type, headers=headers)

    return router
