"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from minerd.api.context import ANY_ROLE, AUTH_RESPONSES, NOT_FOUND, Ctx, require
from minerd.api.problems import ApiError
from minerd.api.schemas import Health, Readiness

router = APIRouter()

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz", response_model=Health, summary="The process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready; reasons say why"}},
    summary="Meters fresh, storage writable, control running",
)
async def readyz(ctx: Ctx) -> Readiness | JSONResponse:
    ready, reasons = ctx.service.readiness()
    body = Readiness(ready=ready, reasons=list(reasons))
    if not ready:
        return JSONResponse(body.model_dump(), status_code=503)
    return body


async def _metrics(ctx: Ctx) -> Response:
    if ctx.metrics is None:
        raise ApiError(404, "metrics are not enabled in this daemon")
    # Rendering many series takes a while: keep it off the event loop.
    payload = await asyncio.to_thread(ctx.metrics)
    return Response(payload, media_type=PROMETHEUS_TEXT)


def metrics_router(auth_required: bool) -> APIRouter:
    """GET /metrics, with or without a token (config: api.metrics_auth)."""
    responses: dict[int | str, dict[str, object]] = {
        200: {"content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}},
        **NOT_FOUND,
    }
    if auth_required:
        responses.update(AUTH_RESPONSES)
    r = APIRouter()
    r.add_api_route(
        "/metrics",
        _metrics,
        methods=["GET"],
        dependencies=[Depends(require(*ANY_ROLE))] if auth_required else [],
        response_class=Response,
        responses=responses,
        summary="Prometheus metrics (text exposition format)",
    )
    return r
