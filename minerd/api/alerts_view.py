"""What the API needs of alerting: a small view the daemon's alert engine is adapted to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from minerd.model import Alert
from minerd.storage import AlertStore, NotFoundError


class AlertsView(Protocol):
    def active(self) -> Sequence[Alert]:
        """Firing alerts, oldest first."""
        ...

    def history(self, from_s: float, to_s: float, limit: int) -> Sequence[Alert]:
        """Alerts firing at some instant of [from_s, to_s), newest first."""
        ...

    def acknowledge(self, alert_id: str, by: str) -> Alert:
        """Record who took the alert (the first acknowledgement is kept).
        Raises minerd.storage.NotFoundError for an unknown id."""
        ...


class AlertEngineLike(Protocol):
    def active(self) -> list[Alert]: ...

    def acknowledge(self, alert_id_: str, by: str) -> Alert: ...


class EngineAlertsView:
    """AlertsView over an alert engine (live state, acknowledgement) and the alert store
    (history). An unknown id is refused here, before the engine sees it."""

    def __init__(self, engine: AlertEngineLike, store: AlertStore) -> None:
        self._engine = engine
        self._store = store

    def active(self) -> Sequence[Alert]:
        return self._engine.active()

    def history(self, from_s: float, to_s: float, limit: int) -> Sequence[Alert]:
        return self._store.history(from_s, to_s, limit)

    def acknowledge(self, alert_id: str, by: str) -> Alert:
        known = self._store.get(alert_id) is not None or any(
            a.alert_id == alert_id for a in self._engine.active()
        )
        if not known:
            raise NotFoundError("alert", alert_id)
        return self._engine.acknowledge(alert_id, by)
