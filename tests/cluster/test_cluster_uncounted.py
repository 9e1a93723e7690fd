"""A split site's rigs counted at nominal, then answering again (issue 16, the cluster side of
LoopInputs.uncounted_w): each shard's aggregate carries a running total of what its rigs
stopped being counted at, and the controller takes the rise of it once, as it takes a silent
shard heard again at what it counts now. The controller's closed loop then takes back at once
what it gave other rigs for that difference (control.loop), as one process does.

In process and deterministic: the 4 real ShardNodes and ControllerNode of the late-shard
harness, on its in-memory bus and ManualClock.
"""

from __future__ import annotations

import dataclasses

import pytest
from nats.aio.client import Client
from test_cluster_late_shard import STALE_CYCLES, Site, warm
from test_cluster_messages import aggregate

from minerd.clock import system_clock
from minerd.cluster.nodes import ControllerNode

SHARD = "s2"


def counted_w(site: Site, shard: str) -> float:
    return next(a.counted_power_w for a in site.ctrl.live_aggregates() if a.shard_id == shard)


@pytest.mark.asyncio
async def test_rigs_answering_again_are_taken_once_even_from_an_aggregate_not_heard() -> None:
    site = Site()
    budget_w = 0.7 * site.total_nominal_w
    await warm(site, budget_w)
    site.ctrl.take_uncounted_w()  # the shards first heard: from the never-heard count
    assert site.ctrl.take_uncounted_w() == 0.0

    fleet = site.fleets[SHARD]
    hung = [i for i, r in enumerate(fleet.rigs) if r.awake][:6]
    drawing_w = {i: fleet.rigs[i].power_w for i in hung}
    for i in hung:  # reads hang: counted at nominal from the next snapshot
        fleet.rigs[i] = dataclasses.replace(fleet.rigs[i], unresponsive=True)
    await site.round_(budget_w)
    assert site.ctrl.take_uncounted_w() == 0.0

    # They answer again, drawing what they drew all along. The aggregate of that cycle is
    # lost on the way (the controller never hears it); the next one still carries it.
    for i in hung:
        fleet.rigs[i] = dataclasses.replace(fleet.rigs[i], unresponsive=False, power_w=drawing_w[i])
    site.bus.delay.add(SHARD)
    await site.round_(budget_w)
    site.bus.delay.clear()
    site.bus._kept.clear()  # dropped, not late
    await site.round_(budget_w)
    want_w = sum(fleet.rigs[i].model.nominal_power_w - drawing_w[i] for i in hung)
    assert want_w > 1000.0  # awake rigs below nominal: a real difference
    assert site.ctrl.take_uncounted_w() == pytest.approx(want_w)
    assert site.ctrl.take_uncounted_w() == 0.0  # taken once


@pytest.mark.asyncio
async def test_a_silent_shard_heard_again_is_uncounted_from_its_nominal() -> None:
    site = Site()
    budget_w = 0.7 * site.total_nominal_w
    await warm(site, budget_w)
    site.ctrl.take_uncounted_w()
    site.dead.add(SHARD)
    for _ in range(STALE_CYCLES + 1):
        out = await site.round_(budget_w)
        site.ctrl.take_uncounted_w()
    assert SHARD in out.silent_shards  # counted at its nominal power

    site.dead.clear()
    await site.round_(budget_w)
    uncounted_w = site.ctrl.take_uncounted_w()
    assert uncounted_w == pytest.approx(site.nominal_w[SHARD] - counted_w(site, SHARD))
    assert uncounted_w > 0.2 * site.nominal_w[SHARD]  # at 70 %, well under nominal


def test_a_restarted_shard_process_counts_its_new_total_from_zero() -> None:
    node = ControllerNode(Client(), "site1", "c1", None, ("s1",), 100_000.0, system_clock)
    a = aggregate(200)
    node.hear(dataclasses.replace(a, seq=40, uncounted_total_w=9_000.0))
    assert node.take_uncounted_w() == 0.0  # first heard: its history is not this cycle's
    node.hear(dataclasses.replace(a, seq=41, uncounted_total_w=9_500.0))
    assert node.take_uncounted_w() == pytest.approx(500.0)
    node.hear(dataclasses.replace(a, seq=1, uncounted_total_w=700.0))  # a new process
    assert node.take_uncounted_w() == pytest.approx(700.0)
