"""`/metrics` series of a site split over processes (issue 16): the controller's view of its
shards and its lease, or a shard's budget gate. Read from the role on each scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class ClusterStatus:
    role: str  # "controller" | "shard"
    # controller
    shards_fresh: int = 0
    shards_silent: int = 0  # counted at nominal
    budgets_sent: int = 0
    lease_held: bool = False
    lease_terms: int = 0
    shards_failsafe: tuple[str, ...] = ()  # live shards reporting their fail-safe share
    shards_late: tuple[str, ...] = ()  # live, not heard at the last cycle (not yet silent)
    shards_held: tuple[str, ...] = ()  # late ones whose falling share was held (late_split)
    held_w: float = 0.0  # what the held shards are counted at, off the heard shards' budget
    # shard
    shard_id: str = ""
    in_failsafe: bool = False
    missed_cycles: int = 0
    budgets_ignored: int = 0  # fenced (older lease revision or another store) or replayed
    store_switches: int = 0  # budgets of a new lease store taken on the fail-safe share
    # both
    bad_messages: int = 0


class ClusterMetricsCollector(Collector):
    def __init__(self, status: Callable[[], ClusterStatus]) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        s = self._status()
        yield CounterMetricFamily(
            "minerd_cluster_bad_messages",
            "Cluster messages refused as malformed or not of this site",
            value=s.bad_messages,
        )
        if s.role == "controller":
            shards = GaugeMetricFamily(
                "minerd_cluster_shards",
                "Shards by state at the last controller cycle (silent: counted at nominal)",
                labels=["state"],
            )
            shards.add_metric(["fresh"], s.shards_fresh)
            shards.add_metric(["silent"], s.shards_silent)
            yield shards
            yield CounterMetricFamily(
                "minerd_cluster_budgets_sent", "Budgets sent to shards", value=s.budgets_sent
            )
            yield GaugeMetricFamily(
                "minerd_cluster_lease_held",
                "1 while this controller holds the site's lease and sends budgets",
                value=1.0 if s.lease_held else 0.0,
            )
            yield CounterMetricFamily(
                "minerd_cluster_lease_terms",
                "Times this controller took the lease",
                value=s.lease_terms,
            )
            yield GaugeMetricFamily(
                "minerd_cluster_shards_failsafe",
                "Live shards planning to their fail-safe share (no budget for 3 cycles)",
                value=len(s.shards_failsafe),
            )
            # Late shards are also counted as fresh above: they are live, not yet silent.
            yield GaugeMetricFamily(
                "minerd_cluster_shards_late",
                "Live shards not heard at the last controller cycle (not yet silent)",
                value=len(s.shards_late),
            )
            yield GaugeMetricFamily(
                "minerd_cluster_shards_held",
                "Late shards whose falling share was held at the last controller cycle "
                "(the shards heard took the cut)",
                value=len(s.shards_held),
            )
            yield GaugeMetricFamily(
                "minerd_cluster_held_watts",
                "What the held shards are counted at, taken off the heard shards' budget",
                value=s.held_w,
            )
            return
        yield GaugeMetricFamily(
            "minerd_cluster_shard_failsafe",
            "1 while this shard plans to its fail-safe share (no budget from the controller)",
            value=1.0 if s.in_failsafe else 0.0,
        )
        yield GaugeMetricFamily(
            "minerd_cluster_budget_missed_cycles",
            "Cycles since this shard last heard a budget",
            value=s.missed_cycles,
        )
        yield CounterMetricFamily(
            "minerd_cluster_budgets_ignored",
            "Budgets this shard refused: an older lease revision or another lease store "
            "(fenced), or a replay",
            value=s.budgets_ignored,
        )
        yield CounterMetricFamily(
            "minerd_cluster_store_switches",
            "Times this shard took a new lease store's budgets (the old store was deleted "
            "or wiped), each after falling to its fail-safe share",
            value=s.store_switches,
        )
