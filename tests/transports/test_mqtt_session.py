"""MqttSession against a real Mosquitto: dispatch, request/reply, reconnect and resubscribe."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from servers import ServerProcess, start_mosquitto

from minerd.errors import DeviceTimeout, DeviceUnreachable
from minerd.transports.mqtt import MqttSession, topic_matches


@pytest.mark.parametrize(
    ("pattern", "topic", "ok"),
    [
        ("rigs/+/telemetry", "rigs/r1/telemetry", True),
        ("rigs/+/telemetry", "rigs/r1/x/telemetry", False),
        ("rigs/#", "rigs/r1/telemetry", True),
        ("rigs/#", "rigs", True),
        ("rigs/r1", "rigs/r1", True),
        ("rigs/r1", "rigs/r2", False),
        ("#", "$SYS/broker", False),
        ("+/a", "x", False),
    ],
)
def test_topic_matches(pattern: str, topic: str, ok: bool) -> None:
    assert topic_matches(pattern, topic) is ok


async def _until(cond: object, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not cond():  # type: ignore[operator]  # noqa: ASYNC110 - polls a plain flag
            await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_wildcard_handlers_receive_messages(mosquitto: ServerProcess) -> None:
    got: list[tuple[str, bytes]] = []
    async with MqttSession("127.0.0.1", mosquitto.port, name="t1") as s:
        await s.subscribe("t1/+/telemetry", lambda t, p: got.append((t, p)))
        await s.wait_connected(5)
        await s.publish("t1/rig-1/telemetry", b'{"x":1}', qos=1)
        await s.publish("t1/rig-2/other", b"no")
        await s.publish("t1/rig-3/telemetry", "text", qos=1)
        await _until(lambda: len(got) >= 2)
        await asyncio.sleep(0.1)
    assert got == [("t1/rig-1/telemetry", b'{"x":1}'), ("t1/rig-3/telemetry", b"text")]


@pytest.mark.asyncio
async def test_request_reply_correlated_by_id(mosquitto: ServerProcess) -> None:
    async with (
        MqttSession("127.0.0.1", mosquitto.port, name="asker") as asker,
        MqttSession("127.0.0.1", mosquitto.port, name="peer") as peer,
    ):
        loop = asyncio.get_running_loop()

        def answer(topic: str, payload: bytes) -> None:
            body = json.loads(payload)
            rig = topic.split("/")[1]
            reply = json.dumps({"id": body["id"], "ok": True, "rig": rig, "n": body["n"]})
            # Reply out of order (later requests first) to prove correlation by id.
            loop.call_later(
                0.05 * (5 - body["n"]),
                lambda: asyncio.ensure_future(peer.publish(f"t2/{rig}/reply", reply, qos=1)),
            )

        await peer.subscribe("t2/+/cmd", answer, qos=1)
        await peer.wait_connected(5)
        await asyncio.sleep(0.1)
        replies = await asyncio.gather(
            *(
                asker.request(
                    f"t2/r{n}/cmd", {"n": n}, f"t2/r{n}/reply", 3.0, reply_pattern="t2/+/reply"
                )
                for n in range(5)
            )
        )
    assert [r["n"] for r in replies] == [0, 1, 2, 3, 4]
    assert [r["rig"] for r in replies] == [f"r{n}" for n in range(5)]
    assert len({r["id"] for r in replies}) == 5


@pytest.mark.asyncio
async def test_request_without_peer_times_out_naming_device(mosquitto: ServerProcess) -> None:
    async with MqttSession("127.0.0.1", mosquitto.port, name="t3") as s:
        await s.wait_connected(5)
        with pytest.raises(
            DeviceTimeout, match=r"rig-9 at 127\.0\.0\.1:.*no reply on t3/rig-9/reply"
        ):
            await s.request(
                "t3/rig-9/cmd", {"action": "sleep"}, "t3/rig-9/reply", 0.3, device="rig-9"
            )


@pytest.mark.asyncio
async def test_reconnect_and_resubscribe_after_broker_restart(tmp_path: Path) -> None:
    broker = start_mosquitto(tmp_path / "mq")
    got: list[bytes] = []
    try:
        async with MqttSession(
            "127.0.0.1", broker.port, name="t4", backoff_min_s=0.1, backoff_max_s=0.5
        ) as s:
            await s.subscribe("t4/#", lambda t, p: got.append(p))
            await s.wait_connected(5)
            await s.publish("t4/a", b"1", qos=1)
            await _until(lambda: got == [b"1"])

            await asyncio.to_thread(broker.stop)
            await _until(lambda: not s.connected)
            with pytest.raises(DeviceUnreachable, match=r"t4 at 127\.0\.0\.1"):
                await s.publish("t4/a", b"lost")

            await asyncio.to_thread(broker.start)
            await s.wait_connected(10)
            assert s.connects >= 2
            await s.publish("t4/b", b"2", qos=1)
            await _until(lambda: got == [b"1", b"2"])
    finally:
        broker.stop()


@pytest.mark.asyncio
async def test_no_broker_publish_unreachable_wait_times_out() -> None:
    from servers import free_port

    async with MqttSession("127.0.0.1", free_port(), name="t5", backoff_min_s=0.05) as s:
        with pytest.raises(DeviceTimeout, match="broker not connected"):
            await s.wait_connected(0.3)
        with pytest.raises(DeviceUnreachable):
            await s.publish("x", b"y")


async def _retained(port: int, topic: str) -> bytes:
    """What a fresh subscriber sees on topic (the retained message)."""
    got: list[bytes] = []
    async with MqttSession("127.0.0.1", port, name="reader") as r:
        await r.subscribe(topic, lambda t, p: got.append(p), qos=1)
        await _until(lambda: bool(got))
    return got[0]


@pytest.mark.asyncio
async def test_from_url_session_rejoins_a_restarted_broker(tmp_path: Path) -> None:
    """The shared helper: hooks run again after a restart, the will stays set, and a clean
    stop publishes the will itself (a broker sends none on a clean disconnect)."""
    broker = start_mosquitto(tmp_path / "mq")
    hooks: list[int] = []
    try:
        s = MqttSession.from_url(
            broker.url,
            name="t6",
            backoff_min_s=0.1,
            backoff_max_s=0.5,
            will_topic="t6/status",
            will_payload=b"offline",
            will_on_stop=True,
        )

        async def online() -> None:
            await s.publish("t6/status", b"online", qos=1, retain=True)
            hooks.append(s.connects)

        s.on_connect(online)
        async with s:
            await _until(lambda: hooks == [1])
            assert await _retained(broker.port, "t6/status") == b"online"

            await asyncio.to_thread(broker.restart)  # no persistence: retained state is gone
            await _until(lambda: len(hooks) == 2, 20)
            assert hooks == [1, 2] and not s.failing
            assert s.last_error  # why the first connection ended
            assert await _retained(broker.port, "t6/status") == b"online"
        assert not s.connected
        assert await _retained(broker.port, "t6/status") == b"offline"
    finally:
        broker.stop()


@pytest.mark.asyncio
async def test_fail_fast_wait_reports_the_last_error() -> None:
    from servers import free_port

    port = free_port()
    async with MqttSession.from_url(f"mqtt://127.0.0.1:{port}", name="t7", backoff_min_s=5) as s:
        # Without fail_fast the wait runs to its timeout; with it, the refusal comes back.
        with pytest.raises(DeviceUnreachable, match=rf"t7 at 127\.0\.0\.1:{port}") as info:
            await s.wait_connected(30, fail_fast=True)
        assert s.failing and info.value.message == s.last_error != ""
