"""One poller shard in its own process, for the shard kill -9 test.

argv: nats_url site shard_id n_rigs seed failsafe_limit_w. Its rigs are shard_id's part of
cluster_fleet.mixed_fleet(n_rigs, seed) (the test computes the same fleet, so it knows their
nominal power); they obey at once. Every 0.2 s it runs one ShardNode cycle. Prints
"shard <id> planned <W> rev <lease revision>" the first time it plans to a controller's budget,
so the test knows it is live before killing it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Sequence

import nats
from cluster_fleet import SHARDS, by_shard, mixed_fleet

from minerd.clock import system_clock
from minerd.cluster.nodes import ShardMeasures, ShardNode, ShardSnapshot
from minerd.cluster.safety import BudgetGate, BudgetSource, GateDecision
from minerd.control.planner import Plan, PlanConstraints, PlanRig
from minerd.model import RigState


class ObedientFleet:
    """The shard's rigs: each plan becomes the next snapshot."""

    def __init__(self, rigs: Sequence[PlanRig]) -> None:
        self.rigs = list(rigs)

    async def snapshot(self) -> ShardSnapshot:
        return ShardSnapshot(tuple(self.rigs), 0.0, len(self.rigs))

    async def apply(self, plan: Plan, decision: GateDecision) -> ShardMeasures | None:
        self.rigs = [
            dataclasses.replace(
                r,
                awake=sp.awake,
                power_w=sp.power_w,
                state=RigState.HASHING if sp.awake else RigState.SLEEPING,
            )
            for r, sp in zip(self.rigs, plan.setpoints, strict=True)
        ]
        return None


async def main(url: str, site: str, shard_id: str, n_rigs: int, seed: int, limit_w: float) -> None:
    nc = await nats.connect(url, allow_reconnect=False)
    fleet = ObedientFleet(by_shard(mixed_fleet(n_rigs, seed=seed))[shard_id])
    gate = BudgetGate(shard_id, limit_w / len(SHARDS))
    node = ShardNode(nc, site, shard_id, fleet, gate, PlanConstraints(), system_clock)
    await node.start()
    told = False
    while True:
        out = await node.cycle()
        if not told and out.decision.source is BudgetSource.BUDGET:
            told = True
            d = out.decision
            print(f"shard {shard_id} planned {out.plan.planned_power_w:.0f} rev {d.lease_revision}")
            sys.stdout.flush()
        await asyncio.sleep(0.2)


if __name__ == "__main__":
    url, site, shard, n, seed, limit = sys.argv[1:7]
    asyncio.run(main(url, site, shard, int(n), int(seed), float(limit)))
