"""Rigs that speak JSON over an MQTT broker.

Telemetry on <prefix>/<rig>/telemetry every TELEMETRY_INTERVAL_S wall seconds; commands on
<prefix>/<rig>/cmd; replies on <prefix>/<rig>/reply. The schema is in docs/simulator.md.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiomqtt

from minerd.cancelling import raise_if_cancelled
from minerd.clock import Clock
from minerd.sim.cgminer import break_json
from minerd.sim.rig import RigSim
from minerd.transports.mqtt_url import parse_mqtt_url

log = logging.getLogger(__name__)

TELEMETRY_INTERVAL_S = 1.0
SLOW_REPLY_S = 2.0
CONNECT_TIMEOUT_S = 5.0


def telemetry(rig: RigSim, now_s: float) -> dict[str, object]:
    v = rig.view(now_s)
    return {
        "id": rig.rig_id,
        "ts": round(now_s, 3),
        "model": rig.model.name,
        "state": v.state.value,
        "awake": v.awake,
        "power_w": round(v.power_w, 1),
        "hashrate_ths": round(v.hashrate_ths, 3),
        "chip_temp_c": max(v.chip_temps_c),
        "fan_rpm_min": min(v.fan_rpms),
        "boards_ok": v.boards_ok,
        "boards_total": rig.model.boards,
        "profile": rig.profile,
        "power_limit_w": rig.power_limit_w,
        "uptime_s": round(v.uptime_s, 1),
    }


def execute(rig: RigSim, command: object, now_s: float) -> dict[str, object]:
    """Apply one command object; the reply says whether it was accepted."""
    if not isinstance(command, dict):
        return {"id": None, "ok": False, "error": "command must be a JSON object"}
    cmd_id = command.get("id")
    action = command.get("action")

    def fail(message: str) -> dict[str, object]:
        return {"id": cmd_id, "ok": False, "error": message}

    if action == "sleep":
        rig.command_sleep(now_s)
    elif action == "wake":
        rig.command_wake(now_s)
    elif action == "set_profile":
        name = command.get("profile")
        if not isinstance(name, str) or rig.model.profile(name) is None:
            return fail(f"unknown profile {name!r}")
        rig.command_profile(name, now_s)
    elif action == "set_power":
        power = command.get("power_w")
        if not isinstance(power, int | float) or isinstance(power, bool):
            return fail("power_w must be a number")
        m = rig.model
        if not m.min_power_w <= float(power) <= m.max_power_w:
            return fail(f"power_w {power} outside {m.min_power_w:g}..{m.max_power_w:g}")
        rig.command_power_limit(float(power), now_s)
    else:
        return fail(f"unknown action {action!r}")
    return {"id": cmd_id, "ok": True, "error": None}


class MqttRigs:
    def __init__(self, url: str, prefix: str, rigs: list[RigSim], clock: Clock) -> None:
        broker = parse_mqtt_url(url, "SiteSpec.mqtt_url")
        self.host, self.port = broker.host, broker.port
        self.prefix = prefix
        self.rigs = {r.rig_id: r for r in rigs}
        self.clock = clock
        self._counter = 0
        self._replies: set[asyncio.Task[None]] = set()

    async def run(self, ready: asyncio.Event) -> None:
        async with aiomqtt.Client(
            self.host, self.port, identifier=f"minerd-sim-{id(self):x}", timeout=CONNECT_TIMEOUT_S
        ) as client:
            await client.subscribe(f"{self.prefix}/+/cmd", qos=1)
            raise_if_cancelled()  # aiomqtt's wait_for can lose a cancel (minerd/cancelling.py)
            ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._publish_loop(client), name="sim-mqtt-telemetry")
                tg.create_task(self._command_loop(client), name="sim-mqtt-commands")

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while True:
            now_s = self.clock.now_s()
            for rig in self.rigs.values():
                if "offline" in rig.faults:
                    continue
                payload = json.dumps(telemetry(rig, now_s)).encode()
                if "broken_json" in rig.faults:
                    self._counter += 1
                    payload = break_json(payload, self._counter).rstrip(b"\x00")
                await client.publish(f"{self.prefix}/{rig.rig_id}/telemetry", payload)
            # A cancel a publish lost would keep this loop, and the site's close, going forever.
            raise_if_cancelled()
            await asyncio.sleep(TELEMETRY_INTERVAL_S)

    async def _command_loop(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            parts = str(message.topic).split("/")
            rig = self.rigs.get(parts[-2]) if len(parts) >= 2 else None
            if rig is None or "offline" in rig.faults or "hung" in rig.faults:
                continue
            raw = message.payload
            try:
                command = json.loads(raw if isinstance(raw, bytes | bytearray | str) else str(raw))
            except ValueError:
                reply: dict[str, object] = {"id": None, "ok": False, "error": "invalid JSON"}
            else:
                reply = execute(rig, command, self.clock.now_s())
            topic = f"{self.prefix}/{rig.rig_id}/reply"
            delay_s = SLOW_REPLY_S if "slow" in rig.faults else 0.0
            task = asyncio.create_task(self._reply(client, topic, reply, delay_s))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)

    async def _reply(
        self, client: aiomqtt.Client, topic: str, reply: dict[str, object], delay_s: float
    ) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        try:
            await client.publish(topic, json.dumps(reply).encode(), qos=1)
        except aiomqtt.MqttError as exc:
            log.debug("simulated MQTT rig reply on %s lost: %s", topic, exc)
