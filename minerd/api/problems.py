"""API errors: one JSON shape, {"error": "...", "field": "..."}, for every failure."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from minerd.clock import elapsed_s
from minerd.errors import MinerdError, QuotaError, StorageError
from minerd.storage import NotFoundError
from minerd.storage import QuotaConflict as QuotaConflict  # the store decides: HTTP 409

log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    field: str
    error: str


class ErrorBody(BaseModel):
    """Every error answer. `field` names the offending input ("limit_kw", "blocks.2.end")."""

    error: str
    field: str | None = None
    problems: list[FieldProblem] | None = None


class ApiError(Exception):
    """Raised by routes and dependencies; rendered as ErrorBody with this status."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers
        super().__init__(message)


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    problems: list[FieldProblem] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=message, field=field, problems=problems)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


# Where a parameter came from is noise to a client: "limit_kw", not "body.limit_kw".
_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def _field_path(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_message(err: dict[str, object]) -> str:
    msg = str(err.get("msg", "invalid value"))
    # pydantic prefixes messages of custom validators with "Value error, ".
    return msg.removeprefix("Value error, ")


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.field, exc.headers)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        FieldProblem(field=_field_path(tuple(e.get("loc", ()))), error=_validation_message(e))
        for e in exc.errors()
    ]
    if not problems:
        return error_response(422, "invalid request")
    first = problems[0]
    return error_response(
        422,
        f"{first.field}: {first.error}",
        first.field,
        problems=problems if len(problems) > 1 else None,
    )


async def _on_http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, str(exc.detail), headers=headers)


async def _on_quota(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuotaError)
    status = 409 if isinstance(exc, QuotaConflict) else 422
    return error_response(status, f"{exc.field}: {exc.message}", exc.field)


async def _on_not_found(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFoundError)
    return error_response(404, str(exc))


_STORAGE_LOG_EVERY_S = 60.0
_storage_logged_at_s = -math.inf


async def _on_storage(_: Request, exc: Exception) -> JSONResponse:
    # A full disk answers every retry with 503: one line a minute, not one per request
    # (storage health already warns when writes start failing).
    global _storage_logged_at_s
    now_s = elapsed_s()  # real seconds: a log rate limit
    if now_s - _storage_logged_at_s >= _STORAGE_LOG_EVERY_S:
        _storage_logged_at_s = now_s
        log.error("storage failed while answering a request: %s", exc)
    else:
        log.debug("storage failed while answering a request: %s", exc)
    return error_response(503, f"storage unavailable: {exc}", headers={"Retry-After": "5"})


async def _on_minerd(_: Request, exc: Exception) -> JSONResponse:
    log.error("request failed: %s", exc)
    return error_response(500, str(exc))


async def _on_bug(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error answering %s %s", request.method, request.url.path)
    return error_response(500, f"internal error ({type(exc).__name__}); see the daemon log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(QuotaError, _on_quota)
    app.add_exception_handler(NotFoundError, _on_not_found)
    app.add_exception_handler(StorageError, _on_storage)
    app.add_exception_handler(MinerdError, _on_minerd)
    app.add_exception_handler(Exception, _on_bug)
