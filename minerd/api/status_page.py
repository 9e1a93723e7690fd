"""The built-in status page: `/` and its assets under `/static/`, shipped inside the package.

For sites without Grafana. The page itself needs no token; its script calls the JSON API
with a token the user pastes once (kept in the browser's localStorage, or passed as
`#token=...` in the URL fragment, which never reaches the server's logs).

Assets are read once, at import, from the package (importlib.resources), so they work from
a wheel or a zip and no request reads the disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Request, Response

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

# Everything comes from this origin; the token must not leak to other sites or frames.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _load_assets() -> dict[str, Asset]:
    assets: dict[str, Asset] = {}
    folder = resources.files("minerd.api").joinpath("static")
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        content_type = _CONTENT_TYPES.get(suffix)
        if content_type is None or not entry.is_file():
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        assets[entry.name] = Asset(body, content_type, etag)
    return assets


ASSETS = _load_assets()

router = APIRouter(include_in_schema=False)


def _serve(name: str, request: Request) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        return Response(status_code=404, content=b"not found\n", media_type="text/plain")
    headers = {**_SECURITY_HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(content=asset.body, media_type=asset.content_type, headers=headers)


@router.get("/")
async def index(request: Request) -> Response:
    return _serve("index.html", request)


@router.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    # Only the files found at import are served: no path is ever joined from the request.
    return _serve(name, request)
