"""`/metrics` series of the daemon's own health: its database, and parts restarted after
a failure (the control loop never is: it sheds to the fail-safe limit and exits)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from minerd.storage import StorageHealth


class StorageCollector(Collector):
    def __init__(self, health: StorageHealth) -> None:
        self._health = health

    def collect(self) -> Iterable[Metric]:
        h = self._health
        yield GaugeMetricFamily(
            "minerd_storage_ok", "1 while the database takes writes, 0 while they fail", h.ok
        )
        errors = CounterMetricFamily(
            "minerd_storage_errors", "Database writes that failed", labels=["op"]
        )
        for op, n in sorted(h.error_counts().items()):
            errors.add_metric([op], n)
        yield errors


class RestartsCollector(Collector):
    def __init__(self, restarts: Callable[[], Mapping[str, int]]) -> None:
        self._restarts = restarts

    def collect(self) -> Iterable[Metric]:
        c = CounterMetricFamily(
            "minerd_component_restarts",
            "Times a part of the daemon failed and was started again",
            labels=["component"],
        )
        for name, n in sorted(self._restarts().items()):
            c.add_metric([name], n)
        yield c
