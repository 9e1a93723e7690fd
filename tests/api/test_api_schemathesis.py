"""Property-based tests against the OpenAPI document: with valid tokens of the right role,
no answer is a server error and every answer matches its documented status, content type,
headers and schema. A bounded number of examples per operation keeps this under a minute."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_site import SiteUnderTest, api_settings, bearer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from minerd.api import OPENAPI_URL, create_app
from minerd.model import Alert, Severity
from minerd.storage import AlertStore


class _StoreAlerts:
    def __init__(self, store: AlertStore) -> None:
        self.store = store

    def active(self) -> list[Alert]:
        return self.store.active()

    def history(self, from_s: float, to_s: float, limit: int) -> list[Alert]:
        return self.store.history(from_s, to_s, limit)

    def acknowledge(self, alert_id: str, by: str) -> Alert:
        return self.store.acknowledge(alert_id, by, 1_800_000_000.0)


# The schema is loaded at import (schemathesis parametrizes at collection time), from an
# app on a site in its own temp dir, removed when the module's tests are done.
_TMP = Path(tempfile.mkdtemp(prefix="minerd-api-fuzz-"))
atexit.register(shutil.rmtree, _TMP, True)  # also when the tests are deselected
_SITE = SiteUnderTest(_TMP / "fuzz.sqlite")
_SITE.stores.alerts.upsert(
    Alert("a-1", "meter_stale", Severity.CRITICAL, (), "stale", "", 1_799_999_000.0)
)
_APP = create_app(
    _SITE,
    api_settings(metrics_auth=True),
    lambda: b"minerd_up 1\n",
    _StoreAlerts(_SITE.stores.alerts),
)
schema = schemathesis.openapi.from_asgi(OPENAPI_URL, _APP)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _SITE.close()
    shutil.rmtree(_TMP, ignore_errors=True)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _role_for(method: str, path: str) -> str:
    """The role allowed to call an operation (grid writes quotas, operator the rest)."""
    if path.startswith("/api/v1/quotas") and method != "GET":
        return "grid"
    if path == "/api/v1/compliance":
        return "grid"
    return "operator"


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case: Any) -> None:
    op = case.operation
    headers = bearer(_role_for(op.method.upper(), op.path))
    case.call_and_validate(headers=headers, checks=CHECKS)
