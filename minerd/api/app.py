"""The FastAPI application: quota API for the grid authority, site API for operators."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from minerd import __version__
from minerd.api import (
    routes_awards,
    routes_health,
    routes_ops,
    routes_prices,
    routes_quotas,
    routes_settlement,
    routes_site,
    status_page,
)
from minerd.api.alerts_view import AlertsView
from minerd.api.allowed_methods import AllowedMethods
from minerd.api.auth import Authenticator, FailureThrottle, TokenBook
from minerd.api.body_limit import BodyLimit
from minerd.api.context import ApiContext
from minerd.api.docs_page import docs_router
from minerd.api.problems import install_error_handlers
from minerd.api.request_metrics import ObserveRequest, RequestMetrics
from minerd.runtime.award_view import AwardView
from minerd.runtime.economics_status import EconomicsView
from minerd.runtime.energy_view import EnergyView
from minerd.runtime.service import SiteService
from minerd.settings.models import ApiSettings

OPENAPI_URL = "/api/v1/openapi.json"

DESCRIPTION = """\
Quota API for the grid authority and site API for operators.

Authenticate with `Authorization: Bearer <token>`. Roles: **grid** (quotas, compliance,
site), **operator** (everything readable, operator cap, maintenance, alert
acknowledgement), **viewer** (read only). Times are ISO 8601 with an offset; answers are
in UTC. Errors are `{"error": "...", "field": "..."}`.
"""


def create_app(
    service: SiteService,
    api: ApiSettings,
    metrics: Callable[[], bytes] | None = None,
    alerts: AlertsView | None = None,
    *,
    throttle: FailureThrottle | None = None,
    observe_request: ObserveRequest | None = None,
    timezone: str = "UTC",
    award_interval_s: float = 3600.0,
    awards: AwardView | None = None,
    economics: EconomicsView | None = None,
    energy: EnergyView | None = None,
) -> FastAPI:
    """Build the app. `metrics` renders Prometheus text (called in a worker thread);
    `alerts` is None when alerting is off. `throttle` defaults to 10 bad tokens per
    minute per client address, then 60 s of 429. `observe_request(route, method, status,
    duration_s)` is told about every request (PrometheusSink.observe_api_request)."""
    app = FastAPI(
        title=f"minerd {service.site_name}",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # docs_router: Swagger UI from local files, not a CDN
        redoc_url=None,
    )
    app.state.minerd = ApiContext(
        service=service,
        settings=api,
        auth=Authenticator(TokenBook(api.tokens), throttle or FailureThrottle()),
        metrics=metrics,
        alerts=alerts,
        timezone=timezone,
        award_interval_s=award_interval_s,
        awards=awards,
        economics=economics,
        energy=energy,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    routers = (
        routes_health.router,
        routes_health.metrics_router(api.metrics_auth),
        routes_site.router,
        routes_quotas.router,
        routes_awards.router,
        routes_settlement.router,
        routes_ops.router,
        routes_prices.router,
        status_page.router,  # GET /: the embedded status page, no auth
        docs_router(OPENAPI_URL, f"minerd {service.site_name}"),  # GET /docs, no auth
    )
    for router in routers:
        app.include_router(router)
    app.add_middleware(AllowedMethods, routes=[route for r in routers for route in r.routes])
    if observe_request is not None:
        app.add_middleware(RequestMetrics, observe=observe_request)
    return app
