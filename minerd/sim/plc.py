"""Rigs behind a container PLC: each rig slot is a Modbus unit id on the container's server."""

from __future__ import annotations

from minerd.clock import Clock
from minerd.model import RegisterMap, RigState
from minerd.sim.rig import RigSim

STATE_CODES = {
    RigState.OFFLINE: 0,
    RigState.HASHING: 1,
    RigState.SLEEPING: 2,
    RigState.FAULT: 3,
    RigState.UNKNOWN: 0,
}
FAULT_CODES = {"overheat": 1, "fan_failure": 2, "dead_board": 3}


class PlcRig:
    """A RigSim seen through the container-plc-rig register map."""

    def __init__(self, rig: RigSim, regmap: RegisterMap, clock: Clock) -> None:
        self.rig = rig
        self.regmap = regmap
        self.clock = clock
        self.name = rig.rig_id

    @property
    def modbus_fault(self) -> str:
        faults = self.rig.faults
        return "offline" if "offline" in faults or "hung" in faults else ""

    def register_values(self) -> dict[str, float]:
        rig = self.rig
        v = rig.view(self.clock.now_s())
        fault_code = next((c for f, c in FAULT_CODES.items() if f in rig.faults), 0)
        limit = rig.power_limit_w if rig.power_limit_w is not None else rig.effective_target_w()
        return {
            "state": float(STATE_CODES.get(v.state, 0)),
            "hashrate_ths": v.hashrate_ths,
            "power_w": v.power_w,
            "chip_temp_max_c": max(v.chip_temps_c),
            "fan_rpm_min": float(min(v.fan_rpms)),
            "boards_ok": float(v.boards_ok),
            "run": 1.0 if rig.awake else 0.0,
            "power_limit_w": limit if rig.awake else 0.0,
            "uptime_s": v.uptime_s,
            "fault_code": float(fault_code),
        }

    def register_write(self, name: str, value: float) -> bool:
        now_s = self.clock.now_s()
        if name == "run":
            if round(value) == 1:
                self.rig.command_wake(now_s)
            else:
                self.rig.command_sleep(now_s)
            return True
        if name == "power_limit_w":
            self.rig.command_power_limit(value, now_s)
            return True
        return False
