"""What every route reaches through the app: the site, auth, alerts and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from minerd.api.alerts_view import AlertsView
from minerd.api.auth import Authenticator, Principal, Role
from minerd.api.problems import ErrorBody
from minerd.runtime.award_view import AwardView
from minerd.runtime.economics_status import EconomicsView
from minerd.runtime.energy_view import EnergyView
from minerd.runtime.service import SiteService
from minerd.settings.models import ApiSettings


@dataclass(frozen=True)
class ApiContext:
    service: SiteService
    settings: ApiSettings
    auth: Authenticator
    metrics: Callable[[], bytes] | None
    alerts: AlertsView | None
    timezone: str = "UTC"  # [site] timezone: how pages should show times
    award_interval_s: float = 3600.0  # [awards] interval_s: an award's default length
    awards: AwardView | None = None  # the award of the interval in progress; None: not run
    economics: EconomicsView | None = None  # [economics] (price-aware dispatch); None: off
    energy: EnergyView | None = None  # the award's pace (EnergyTracker); None: not run


def context(request: Request) -> ApiContext:
    ctx = request.app.state.minerd
    assert isinstance(ctx, ApiContext)
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]

# Declares the Bearer scheme in the OpenAPI document; the header is checked by require().
bearer = HTTPBearer(auto_error=False, description="API token (role grid, operator or viewer)")


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a token of one of these roles and returns who it is."""
    allowed = frozenset(roles)

    async def dependency(
        request: Request,
        ctx: Ctx,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        # On the loop, not in a worker thread: a wrong token's delay is an await, and the
        # check itself is a few hashes.
        authorization = request.headers.get("authorization")
        who = await ctx.auth.check(client_address(request), authorization, allowed)
        if who.role is Role.GRID:
            # Any authenticated call of the grid authority is its heartbeat (in memory:
            # no disk write per request).
            ctx.service.note_grid_contact()
        return who

    return dependency


ANY_ROLE = (Role.GRID, Role.OPERATOR, Role.VIEWER)
GridUser = Annotated[Principal, Depends(require(Role.GRID))]
OperatorUser = Annotated[Principal, Depends(require(Role.OPERATOR))]
Reader = Annotated[Principal, Depends(require(Role.OPERATOR, Role.VIEWER))]
SiteReader = Annotated[Principal, Depends(require(*ANY_ROLE))]
ComplianceReader = Annotated[Principal, Depends(require(Role.GRID, Role.OPERATOR))]

_E = {"model": ErrorBody}
# Documented on every authenticated route so clients (and schemathesis) know them.
AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {**_E, "description": "the body is not valid JSON"},
    401: {**_E, "description": "missing or invalid token"},
    403: {**_E, "description": "the token's role may not do this"},
    413: {**_E, "description": "request body too large"},
    422: {**_E, "description": "invalid input; `field` names it"},
    429: {**_E, "description": "too many wrong tokens from this address; see Retry-After"},
    503: {**_E, "description": "storage unavailable"},
}
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {**_E, "description": "no such item"}}
CONFLICT: dict[int | str, dict[str, object]] = {
    409: {**_E, "description": "idempotency key or reference reused for another quota"}
}
