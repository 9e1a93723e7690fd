"""Rigs behind a container PLC: one Modbus unit id per rig slot, one register map.

The map (drivers/rigs/registers/container-plc-rig.toml by default) has the points
state (0 offline, 1 hashing, 2 sleeping, 3 fault), hashrate_ths, power_w, chip_temp_max_c,
fan_rpm_min, boards_ok, run (write 1 run / 0 sleep), power_limit_w (write), uptime_s,
fault_code (1 overheat, 2 fan failure, 3 dead board). Every rig of a container shares the
container's ModbusHub, which serialises the link.
"""

from __future__ import annotations

from minerd.devices.modbus_reader import RegisterReader
from minerd.devices.rig import Rig
from minerd.model import (
    RegisterMap,
    RigAction,
    RigCommand,
    RigModel,
    RigProtocol,
    RigReading,
    RigState,
)
from minerd.profiles import load_rig_register_map
from minerd.transports.modbus import ModbusHub

__all__ = ["DEFAULT_RIG_REGISTER_MAP", "FAULT_CODES", "STATE_CODES", "ModbusRig"]

DEFAULT_RIG_REGISTER_MAP = "container-plc-rig"
STATE_CODES: dict[int, RigState] = {
    0: RigState.OFFLINE,
    1: RigState.HASHING,
    2: RigState.SLEEPING,
    3: RigState.FAULT,
}
FAULT_CODES: dict[int, str] = {1: "overheat", 2: "fan failure", 3: "dead board"}


class ModbusRig(Rig):
    def __init__(
        self,
        rig_id: str,
        hub: ModbusHub,
        unit_id: int,
        model: RigModel,
        *,
        container: str = "",
        register_map: RegisterMap | None = None,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(rig_id, hub.host, hub.port, model, container)
        regmap = register_map or load_rig_register_map(DEFAULT_RIG_REGISTER_MAP)
        self.unit_id = unit_id
        self.reader = RegisterReader(rig_id, regmap, hub, unit_id, timeout_s=timeout_s)

    @property
    def protocol(self) -> RigProtocol:
        return RigProtocol.MODBUS

    @property
    def endpoint(self) -> str:
        return self.reader.endpoint

    async def read(self, now_s: float) -> RigReading:
        v = await self.reader.read()
        model = self.model
        code = int(v.get("state", 0))
        state = STATE_CODES.get(code, RigState.UNKNOWN)
        hashrate = max(0.0, v.get("hashrate_ths", 0.0))
        temp = v.get("chip_temp_max_c")
        fan = v.get("fan_rpm_min")
        boards_ok = int(v.get("boards_ok", 0))
        fault_code = int(v.get("fault_code", 0))
        if state is RigState.FAULT:
            reason = FAULT_CODES.get(fault_code, f"fault code {fault_code}")
            if fault_code == 1 and temp is not None:
                reason = f"overheat {temp:.0f}C"
            elif fault_code == 3:
                reason = f"dead board: {max(0, model.boards - boards_ok)} of {model.boards}"
        elif state is RigState.SLEEPING:
            reason = "asleep"
        elif state is RigState.OFFLINE:
            reason = "offline: PLC reports the rig off"
        elif state is RigState.UNKNOWN:
            reason = f"unknown PLC state {code}"
        else:
            reason = ""
        if state is RigState.HASHING and fan == 0:
            state, reason = RigState.FAULT, "fan failure: a fan at 0 rpm"
        limit = v.get("power_limit_w")
        return RigReading(
            rig=self.rig_id,
            taken_at_s=now_s,
            state=state,
            reason=reason,
            hashrate_ths=hashrate,
            power_w=v.get("power_w", 0.0),
            power_estimated="power_w" not in v,
            chip_temp_max_c=temp,
            fan_rpm_min=int(fan) if fan is not None else None,
            boards_ok=boards_ok,
            boards_total=model.boards,
            profile=None,
            power_limit_w=limit if limit else None,
            uptime_s=v.get("uptime_s", 0.0),
        )

    async def apply(self, cmd: RigCommand) -> None:
        model = self.model
        if cmd.action is RigAction.SLEEP:
            name, value = "run", 0.0
        elif cmd.action is RigAction.WAKE:
            name, value = "run", 1.0
        elif cmd.action is RigAction.SET_POWER:
            if cmd.power_w is None:
                raise self.rejected("set_power: no power_w given")
            name, value = "power_limit_w", cmd.power_w
        elif cmd.action is RigAction.SET_PROFILE:
            prof = model.profile(cmd.profile) if cmd.profile else None
            if prof is None:
                raise self.rejected(f"set_profile: unknown profile {cmd.profile!r}")
            name, value = "power_limit_w", prof.power_w
        else:
            raise self.rejected(f"unsupported action {cmd.action.value}")
        if name == "power_limit_w":
            value = float(round(min(model.max_power_w, max(model.min_power_w, value))))
        if self.reader.register_map.point(name) is None:
            raise self.rejected(f"{cmd.action.value}: register map has no point {name!r}")
        try:
            await self.reader.write(name, value)
        except ValueError as exc:  # outside the point's min/max
            raise self.rejected(f"{cmd.action.value}: {exc}") from None
