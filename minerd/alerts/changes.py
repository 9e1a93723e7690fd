"""What the engine reports after an evaluation, and its JSON form for the outbox and channels."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from minerd.errors import MinerdError
from minerd.model import Alert, Severity


class ChangeKind(StrEnum):
    FIRED = "fired"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True)
class AlertChange:
    kind: ChangeKind
    alert: Alert


class AlertNotFound(MinerdError):
    """No alert with this id (the API answers 404)."""

    def __init__(self, alert_id: str) -> None:
        self.alert_id = alert_id
        super().__init__(f"no alert {alert_id!r}")


def alert_to_json_obj(a: Alert) -> dict[str, object]:
    return {
        "id": a.alert_id,
        "rule": a.rule,
        "severity": a.severity.value,
        "labels": dict(a.labels),
        "summary": a.summary,
        "description": a.description,
        "starts_at_s": a.starts_at_s,
        "ends_at_s": a.ends_at_s,
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at_s": a.acknowledged_at_s,
        "extra": dict(a.extra),
    }


def _opt_float(v: object) -> float | None:
    return None if v is None else float(str(v))


def _pairs(v: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, dict):
        raise ValueError(f"expected an object, got {type(v).__name__}")
    return tuple(sorted((str(k), str(x)) for k, x in v.items()))


def alert_from_json_obj(o: dict[str, object]) -> Alert:
    by = o.get("acknowledged_by")
    return Alert(
        alert_id=str(o["id"]),
        rule=str(o["rule"]),
        severity=Severity(str(o["severity"])),
        labels=_pairs(o["labels"]),
        summary=str(o["summary"]),
        description=str(o["description"]),
        starts_at_s=float(str(o["starts_at_s"])),
        ends_at_s=_opt_float(o.get("ends_at_s")),
        acknowledged_by=None if by is None else str(by),
        acknowledged_at_s=_opt_float(o.get("acknowledged_at_s")),
        extra=_pairs(o.get("extra", {})),
    )


def change_to_json(c: AlertChange) -> str:
    """The outbox payload and the webhook / MQTT body (compact, key order fixed)."""
    return json.dumps(
        {"version": 1, "kind": c.kind.value, "alert": alert_to_json_obj(c.alert)},
        separators=(",", ":"),
    )


def change_from_json(text: str) -> AlertChange:
    o = json.loads(text)
    if not isinstance(o, dict) or not isinstance(o.get("alert"), dict):
        raise ValueError("not an alert change")
    return AlertChange(ChangeKind(str(o["kind"])), alert_from_json_obj(o["alert"]))
