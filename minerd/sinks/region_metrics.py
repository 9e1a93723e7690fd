"""`/metrics` series of a site under a regional coordinator (issue 16 item 3): its
allocation, the lease, and the allocations it refused. Read from the region role on each
scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class RegionStatus:
    lease_valid: bool
    allocation_kw: float | None  # None: no valid lease
    lease_remaining_s: float  # 0 when none
    accepted: int  # allocations taken
    refused: int  # fenced, replayed or stale
    bad_messages: int  # malformed, or not for this site
    offers_sent: int


class RegionMetricsCollector(Collector):
    def __init__(self, status: Callable[[], RegionStatus]) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        s = self._status()
        yield GaugeMetricFamily(
            "minerd_region_lease_valid",
            "1 while the site holds a valid regional allocation (0: fail-safe limit)",
            value=1.0 if s.lease_valid else 0.0,
        )
        if s.allocation_kw is not None:
            yield GaugeMetricFamily(
                "minerd_region_allocation_kw",
                "The regional allocation in force (an import limit, the lower wins)",
                value=s.allocation_kw,
            )
        yield GaugeMetricFamily(
            "minerd_region_lease_remaining_seconds",
            "Time left on the regional allocation's lease",
            value=s.lease_remaining_s,
        )
        yield CounterMetricFamily(
            "minerd_region_allocations_accepted", "Allocations taken", value=s.accepted
        )
        yield CounterMetricFamily(
            "minerd_region_allocations_refused",
            "Allocations refused: an older coordinator revision (fenced), a replay, or stale",
            value=s.refused,
        )
        yield CounterMetricFamily(
            "minerd_region_bad_messages",
            "Allocation messages refused as malformed or not for this site",
            value=s.bad_messages,
        )
        yield CounterMetricFamily(
            "minerd_region_offers_sent", "Offers published to the coordinator", value=s.offers_sent
        )
