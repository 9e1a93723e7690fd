"""`/metrics` series of wrong API tokens: how many, and how many were answered 429."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class AuthFailuresCollector(Collector):
    """Reads (wrong tokens, of which refused with 429) from the API's brake on each scrape."""

    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        failures, refused = self._counts()
        c = CounterMetricFamily(
            "minerd_api_auth_failures",
            "Requests with a wrong or malformed API token, by answer",
            labels=["answer"],
        )
        c.add_metric(["401"], failures - refused)
        c.add_metric(["429"], refused)
        yield c
