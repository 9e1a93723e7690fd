"""Rigs that publish JSON telemetry over MQTT and take commands on a topic.

Topics under a prefix (docs/simulator.md): `<prefix>/<rig>/telemetry` (the rig publishes),
`<prefix>/<rig>/cmd` (we publish `{"id","action","profile","power_w"}`), `<prefix>/<rig>/reply`
(the rig answers `{"id","ok","error"}`). One MqttRigHub per prefix holds one wildcard
subscription and the latest raw telemetry per rig; a read decodes it on demand.
"""

from __future__ import annotations

from collections.abc import Mapping

from minerd.clock import Clock, system_clock
from minerd.devices.rig import Rig, estimate_power_w
from minerd.errors import DeviceTimeout, ProtocolError
from minerd.model import RigAction, RigCommand, RigModel, RigProtocol, RigReading, RigState
from minerd.transports.jsonrepair import JsonRepairError, loads_lenient
from minerd.transports.mqtt import MqttSession

__all__ = ["MqttRig", "MqttRigHub"]


class MqttRigHub:
    """Latest telemetry of every rig under one topic prefix, on one broker session."""

    def __init__(
        self,
        session: MqttSession,
        prefix: str = "rigs",
        stale_after_s: float = 30.0,
        clock: Clock = system_clock,
    ):
        self.session = session
        self.clock = clock
        self.prefix = prefix.rstrip("/")
        self.stale_after_s = stale_after_s
        # rig id -> (clock.monotonic_s() of arrival, raw payload)
        self._latest: dict[str, tuple[float, bytes]] = {}
        self._last_good: dict[str, tuple[float, Mapping[str, object]]] = {}
        self.messages = 0
        self._started = False

    async def start(self) -> None:
        """Subscribe `<prefix>/+/telemetry` (kept across reconnects by the session)."""
        if not self._started:
            self._started = True
            await self.session.subscribe(f"{self.prefix}/+/telemetry", self._on_telemetry)

    def _on_telemetry(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) >= 2:
            self.messages += 1
            self._latest[parts[-2]] = (self.clock.monotonic_s(), payload)

    def telemetry(self, rig_id: str) -> tuple[float, Mapping[str, object]]:
        """(age_s, decoded telemetry) of rig_id; DeviceTimeout/ProtocolError when unusable."""
        endpoint = self.session.endpoint
        topic = f"{self.prefix}/{rig_id}/telemetry"
        entry = self._latest.get(rig_id)
        if entry is None:
            raise DeviceTimeout(rig_id, endpoint, f"no telemetry on {topic} yet")
        arrived, raw = entry
        now = self.clock.monotonic_s()
        try:
            body = loads_lenient(raw)
            if not isinstance(body, dict):
                raise JsonRepairError(f"telemetry is {type(body).__name__}, not an object")
        except JsonRepairError as exc:
            good = self._last_good.get(rig_id)
            if good is not None and now - good[0] <= self.stale_after_s:
                return now - good[0], good[1]  # one broken message: keep the last good one
            raise ProtocolError(rig_id, endpoint, f"{topic}: {exc}") from None
        self._last_good[rig_id] = (arrived, body)
        age_s = now - arrived
        if age_s > self.stale_after_s:
            raise DeviceTimeout(rig_id, endpoint, f"telemetry on {topic} is {age_s:.0f}s old")
        return age_s, body


def _num(body: Mapping[str, object], key: str) -> float | None:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class MqttRig(Rig):
    def __init__(
        self,
        rig_id: str,
        hub: MqttRigHub,
        model: RigModel,
        *,
        container: str = "",
        timeout_s: float = 3.0,
    ) -> None:
        session = hub.session
        super().__init__(rig_id, session.host, session.port, model, container)
        self.hub = hub
        self.timeout_s = timeout_s
        base = f"{hub.prefix}/{rig_id}"
        self.cmd_topic = f"{base}/cmd"
        self.reply_topic = f"{base}/reply"

    @property
    def protocol(self) -> RigProtocol:
        return RigProtocol.MQTT

    async def read(self, now_s: float) -> RigReading:
        _age_s, body = self.hub.telemetry(self.rig_id)
        model = self.model
        try:
            state = RigState(str(body.get("state", "unknown")))
        except ValueError:
            state = RigState.UNKNOWN
        hashrate = max(0.0, _num(body, "hashrate_ths") or 0.0)
        power = _num(body, "power_w")
        temp = _num(body, "chip_temp_c")
        fan = _num(body, "fan_rpm_min")
        boards_ok = int(_num(body, "boards_ok") or 0)
        boards_total = int(_num(body, "boards_total") or model.boards)
        profile = body.get("profile")
        reasons: list[str] = []
        if temp is not None and temp >= model.chip_temp_max_c:
            reasons.append(f"overheat {temp:.0f}C")
        if hashrate > 0 and fan == 0:
            reasons.append("fan failure: a fan at 0 rpm")
        if hashrate > 0 and boards_ok < boards_total:
            reasons.append(f"dead board: {boards_total - boards_ok} of {boards_total}")
        if reasons and state in (RigState.HASHING, RigState.FAULT):
            state = RigState.FAULT
        reason = "; ".join(reasons) if state is RigState.FAULT else ""
        if state is RigState.SLEEPING:
            reason = "asleep"
        elif state is RigState.FAULT and not reason:
            reason = "rig reports fault"
        return RigReading(
            rig=self.rig_id,
            taken_at_s=now_s,
            state=state,
            reason=reason,
            hashrate_ths=hashrate,
            power_w=power if power is not None else estimate_power_w(model, hashrate),
            power_estimated=power is None,
            chip_temp_max_c=temp,
            fan_rpm_min=int(fan) if fan is not None else None,
            boards_ok=boards_ok,
            boards_total=boards_total,
            profile=profile if isinstance(profile, str) and profile else None,
            power_limit_w=_num(body, "power_limit_w"),
            uptime_s=_num(body, "uptime_s") or 0.0,
        )

    async def apply(self, cmd: RigCommand) -> None:
        body: dict[str, object] = {"action": cmd.action.value}
        if cmd.action is RigAction.SET_PROFILE:
            if cmd.profile is None:
                raise self.rejected("set_profile: no profile given")
            body["profile"] = cmd.profile
        elif cmd.action is RigAction.SET_POWER:
            if cmd.power_w is None:
                raise self.rejected("set_power: no power_w given")
            body["power_w"] = cmd.power_w
        reply = await self.hub.session.request(
            self.cmd_topic,
            body,
            self.reply_topic,
            self.timeout_s,
            device=self.rig_id,
            reply_pattern=f"{self.hub.prefix}/+/reply",
        )
        if reply.get("ok") is not True:
            raise self.rejected(f"{cmd.action.value}: {reply.get('error') or 'refused'}")
