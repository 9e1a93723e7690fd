"""`/metrics` series of the system clock against site time: its offset and the steps seen."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class ClockOffsetCollector(Collector):
    """Reads (wall minus site seconds, steps seen) from the daemon's clock on each scrape."""

    def __init__(self, status: Callable[[], tuple[float, int]]) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        offset_s, steps = self._status()
        yield GaugeMetricFamily(
            "minerd_clock_offset_seconds",
            "System (wall) clock minus minerd's site time; beyond 2 s it is a clock step",
            value=offset_s,
        )
        yield CounterMetricFamily(
            "minerd_clock_steps",
            "System clock steps seen since start (site time did not follow them)",
            value=steps,
        )
