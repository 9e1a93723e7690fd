"""A writer process for the kill -9 test: publishes snapshots to a server that is down,
reports "SPOOLED <points>" once all of them sit in the spool, then waits to be killed.

usage: python sinks_child_writer.py DB_PATH URL SNAPSHOTS T0_S
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sinks_data import LIMIT, make_snapshot, open_spool, wait_until

from minerd.sinks import InfluxSink, InfluxSinkConfig, PointEncoder, SinkHub, V2Target, V2Writer


async def main(db_path: str, url: str, snapshots: int, t0_s: float) -> None:
    spool = open_spool(Path(db_path))
    writer = V2Writer(V2Target(url, "org", "bucket", "token"), timeout_s=2.0)
    config = InfluxSinkConfig(
        batch_size=50, flush_interval_s=0.02, rig_interval_s=0.0, max_backoff_s=0.2
    )
    sink = InfluxSink(writer, spool, PointEncoder("killed"), config)
    hub = SinkHub([sink])
    task = asyncio.create_task(hub.run())
    expected = 0
    for i in range(snapshots):
        snap = make_snapshot(t0_s + i, 3, grid_w=float(i))
        hub.publish_snapshot(snap, LIMIT, 1.0)
        expected += 2 + len(snap.rigs)
        await asyncio.sleep(0.005)
    await wait_until(lambda: spool.points >= expected, 60, "the spool")
    print(f"SPOOLED {spool.points}", flush=True)
    await task  # runs until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
