"""Alerts technicians can act on: rules over fleet snapshots, hysteresis, container grouping,
state in SQLite, delivery to Alertmanager, a signed webhook, MQTT and the log."""

from minerd.alerts.catalog import ALL_RULES, RULES_BY_NAME, RuleSpec, Scope
from minerd.alerts.changes import AlertChange, AlertNotFound, ChangeKind
from minerd.alerts.channels import SIGNATURE_HEADER, sign
from minerd.alerts.config import DEFAULT_TIMINGS, AlertThresholds, DeliverySettings, RuleTiming
from minerd.alerts.engine import AlertEngine
from minerd.alerts.facts import SiteFacts
from minerd.alerts.identity import alert_id, fingerprint

__all__ = [
    "ALL_RULES",
    "DEFAULT_TIMINGS",
    "RULES_BY_NAME",
    "SIGNATURE_HEADER",
    "AlertChange",
    "AlertEngine",
    "AlertNotFound",
    "AlertThresholds",
    "ChangeKind",
    "DeliverySettings",
    "RuleSpec",
    "RuleTiming",
    "Scope",
    "SiteFacts",
    "alert_id",
    "fingerprint",
    "sign",
]
