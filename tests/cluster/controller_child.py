"""A site controller in its own process, for the kill -9 test.

argv: nats_url site controller_id rig_budget_w ttl_s. Holds (or waits for) the lease, and
every 0.2 s splits rig_budget_w over the shards it hears. Prints "leader <revision>" each
time it takes the lease, so the test knows whom it is about to kill.
"""

from __future__ import annotations

import asyncio
import sys

import nats
from cluster_fleet import SHARDS

from minerd.clock import system_clock
from minerd.cluster.lease import ControllerLease, lease_store
from minerd.cluster.nodes import ControllerNode

FAILSAFE_LIMIT_W = 400_000.0


async def main(url: str, site: str, name: str, budget_w: float, ttl_s: float) -> None:
    nc = await nats.connect(url, allow_reconnect=False)
    lease = ControllerLease(
        await lease_store(nc.jetstream(), site, ttl_s), name, ttl_s, system_clock
    )
    node = ControllerNode(nc, site, name, lease, SHARDS, FAILSAFE_LIMIT_W, system_clock)
    await node.start()
    terms = 0
    async with asyncio.TaskGroup() as tg:
        tg.create_task(lease.keep(0.2))
        while True:
            await node.cycle(budget_w)
            if lease.terms != terms:
                terms = lease.terms
                print(f"leader {lease.revision}", flush=True)
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    url, site, name, budget, ttl = sys.argv[1:6]
    asyncio.run(main(url, site, name, float(budget), float(ttl)))
