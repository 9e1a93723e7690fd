"""Retained state on a real Mosquitto, republished after a broker restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiomqtt
import pytest
from servers import ServerProcess, start_mosquitto
from sinks_data import LIMIT, T0_S, make_snapshot, running, wait_until

from minerd.sinks import MqttSink, MqttSinkConfig, SinkHub


async def retained(srv: ServerProcess, topic: str, timeout_s: float = 3.0) -> bytes:
    """What a fresh subscriber sees on `topic` (the retained message)."""
    async with aiomqtt.Client("127.0.0.1", srv.port) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(timeout_s):
            async for msg in client.messages:
                assert msg.retain
                payload = msg.payload
                assert isinstance(payload, bytes)
                return payload
    raise AssertionError("no message")


@pytest.mark.asyncio
async def test_retained_state_survives_broker_restart(tmp_path: Path) -> None:
    srv = await asyncio.to_thread(start_mosquitto, tmp_path)
    try:
        config = MqttSinkConfig.from_url(srv.url, per_rig_state=True, max_backoff_s=0.3)
        sink = MqttSink("site-1", config)
        hub = SinkHub([sink])
        async with running(hub):
            hub.publish_snapshot(make_snapshot(T0_S, 4, grid_w=512_000.0), LIMIT, 900_000.0)
            await wait_until(lambda: sink.published >= 6, 30, "first publications")
            state = json.loads(await retained(srv, "minerd/site-1/state"))
            assert state["power_w"] == 512_000 and state["limit_w"] == 1_000_000
            assert state["rigs"] == {
                "hashing": 3,
                "sleeping": 1,
                "offline": 0,
                "fault": 0,
                "unknown": 0,
            }
            assert await retained(srv, "minerd/site-1/status") == b"online"
            rig = json.loads(await retained(srv, "minerd/site-1/rigs/rig-00003"))
            assert rig["state"] == "sleeping"

            # persistence is off: the restarted broker has forgotten every retained message.
            await asyncio.to_thread(srv.restart)
            await wait_until(lambda: sink.connects >= 2, 30, "the reconnect")
            state = json.loads(await retained(srv, "minerd/site-1/state"))
            assert state["power_w"] == 512_000
            assert await retained(srv, "minerd/site-1/status") == b"online"
            assert json.loads(await retained(srv, "minerd/site-1/rigs/rig-00000"))["state"] == (
                "hashing"
            )

            # A change after the restart goes out as usual.
            hub.publish_snapshot(make_snapshot(T0_S + 1, 4, grid_w=480_000.0), LIMIT, 9e5)
            await wait_until(lambda: sink.stats().queued == 0, 30, "the publication")
            await asyncio.sleep(0.2)
            state = json.loads(await retained(srv, "minerd/site-1/state"))
            assert state["power_w"] == 480_000
        # A clean stop sends no last will: the sink says offline itself.
        assert await retained(srv, "minerd/site-1/status") == b"offline"
    finally:
        await asyncio.to_thread(srv.stop)


CHILD = """
import asyncio, sys
from minerd.sinks import MqttSink, MqttSinkConfig
async def main():
    sink = MqttSink("site-will", MqttSinkConfig.from_url(sys.argv[1]))
    task = asyncio.create_task(sink.run())
    while not sink.connected:
        await asyncio.sleep(0.02)
    print("CONNECTED", flush=True)
    await task
asyncio.run(main())
"""


@pytest.mark.asyncio
async def test_last_will_says_offline_when_killed(mosquitto: ServerProcess) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        mosquitto.url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 20)
        assert line.strip() == b"CONNECTED"
        assert await retained(mosquitto, "minerd/site-will/status") == b"online"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    # The broker publishes the will as soon as it sees the connection die.
    for _ in range(50):
        if await retained(mosquitto, "minerd/site-will/status") == b"offline":
            break
        await asyncio.sleep(0.1)
    assert await retained(mosquitto, "minerd/site-will/status") == b"offline"
