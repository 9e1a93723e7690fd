"""The controller's late and held shards on /metrics, beside its silent ones.

The late-shard site of test_cluster_late_shard (real ShardNodes and ControllerNode on an
in-memory bus, a ManualClock): LATE stops reporting and the budget is cut, so its share is
held; the controller's ClusterRole status and its /metrics collector say so, then the shard
turns silent and the late and held series go back to 0.
"""

from __future__ import annotations

import pytest
from cluster_fleet import SHARDS
from prometheus_client import CollectorRegistry, generate_latest
from test_cluster_late_shard import LATE, SITE, Site, warm

from minerd.daemon.cluster_role import ClusterRole
from minerd.settings.cluster import ClusterSettings
from minerd.sinks.cluster_metrics import ClusterMetricsCollector


def scrape(role: ClusterRole) -> dict[str, float]:
    """The controller's /metrics series as one scrape gives them, by name and labels."""
    registry = CollectorRegistry()
    registry.register(ClusterMetricsCollector(role.status))
    out: dict[str, float] = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


@pytest.mark.asyncio
async def test_late_and_held_shards_reach_the_status_and_metrics() -> None:
    site = Site()
    settings = ClusterSettings(role="controller", shards=SHARDS, site=SITE)
    role = ClusterRole(settings, SITE, site.clock, controller=site.ctrl)
    await warm(site, 0.7 * site.total_nominal_w)
    quiet = scrape(role)
    assert quiet["minerd_cluster_shards_late"] == 0.0
    assert quiet["minerd_cluster_shards_held"] == 0.0
    assert quiet["minerd_cluster_held_watts"] == 0.0

    site.dead.add(LATE)  # it stops reporting; its rigs keep their last plan
    low_w = 0.5 * site.total_nominal_w
    out = await site.round_(low_w)  # late and cut: its share is held
    assert out.late_shards == (LATE,) and out.held_shards == (LATE,) and out.held_w > 0.0
    st = role.status()
    assert st.shards_late == (LATE,) and st.shards_held == (LATE,)
    assert st.held_w == pytest.approx(out.held_w)
    m = scrape(role)
    assert m["minerd_cluster_shards_late"] == 1.0
    assert m["minerd_cluster_shards_held"] == 1.0
    assert m["minerd_cluster_held_watts"] == pytest.approx(out.held_w)
    assert m['minerd_cluster_shards{state="fresh"}'] == float(len(SHARDS))  # late is live
    assert m['minerd_cluster_shards{state="silent"}'] == 0.0

    outs = [await site.round_(low_w) for _ in range(3)]
    assert outs[-1].silent_shards == (LATE,)  # silent now: counted at nominal, not held
    m = scrape(role)
    assert m['minerd_cluster_shards{state="silent"}'] == 1.0
    assert m["minerd_cluster_shards_late"] == 0.0
    assert m["minerd_cluster_shards_held"] == 0.0
    assert m["minerd_cluster_held_watts"] == 0.0
