"""Reading the acks of the MQTT quota and award inputs from a real broker, for the tests."""

from __future__ import annotations

import asyncio
import json

import aiomqtt


async def next_ack(client: aiomqtt.Client) -> dict[str, object]:
    """The next message on the subscribed ack topic, as a JSON object (10 s at most)."""
    async with asyncio.timeout(10):
        async for message in client.messages:
            payload = message.payload
            assert isinstance(payload, bytes | bytearray)
            value = json.loads(payload)
            assert isinstance(value, dict)
            return value
    raise AssertionError("no ack")


async def publish_until_acked(
    client: aiomqtt.Client, topic: str, payload: str
) -> dict[str, object]:
    """Publish until the first ack ({} if none in 50 tries): the input may still be connecting,
    and the order's reference or idempotency key makes the repeats harmless."""
    for _ in range(50):
        await client.publish(topic, payload, qos=1)
        try:
            async with asyncio.timeout(0.3):
                return await next_ack(client)
        except TimeoutError:
            continue
    return {}
