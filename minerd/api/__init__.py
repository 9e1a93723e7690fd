"""HTTP API: the quota API for the grid authority and the site API for operators.

    app = create_app(site, settings.api, metrics=render_metrics, alerts=alerts_view)
    await serve(app, settings.api, started)      # inside the daemon's TaskGroup

MQTT quota input: minerd.api.mqtt_quota.run_mqtt_quota_input.
"""

from __future__ import annotations

from minerd.api.alerts_view import AlertsView, EngineAlertsView
from minerd.api.app import OPENAPI_URL, create_app
from minerd.api.auth import FailureThrottle, Role, hash_token
from minerd.api.server import serve

__all__ = [
    "OPENAPI_URL",
    "AlertsView",
    "EngineAlertsView",
    "FailureThrottle",
    "Role",
    "create_app",
    "hash_token",
    "serve",
]
