"""`/metrics` series of the daemon's own health: its database, and parts restarted after
a failure (the control loop never is: it sheds to the fail-safe limit and exits)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

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


class CycleCounts(Protocol):
    """What the control cycle counts of its own timing (runtime.cycle.ControlCycle)."""

    @property
    def cycles_skipped(self) -> int: ...

    @property
    def wakes_coalesced(self) -> int: ...


class CycleCollector(Collector):
    """Cycles the loop could not run on time: intervals passed while one long cycle ran,
    and wakes (an operator cut, a new quota) served by the next cycle instead of their own.
    A rising skipped count means the cycle is slower than its interval."""

    def __init__(self, cycle: Callable[[], CycleCounts]) -> None:
        self._cycle = cycle  # looked up each scrape: a cluster role swaps the site's cycle

    def collect(self) -> Iterable[Metric]:
        c = self._cycle()
        yield CounterMetricFamily(
            "minerd_control_cycles_skipped",
            "Control intervals that passed while a longer cycle ran",
            c.cycles_skipped,
        )
        yield CounterMetricFamily(
            "minerd_control_wakes_coalesced",
            "Wakes during a running cycle, served at once by the next one",
            c.wakes_coalesced,
        )
