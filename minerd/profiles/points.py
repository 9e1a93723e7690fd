"""Canonical point names of register maps, with the units each may be declared in.

A meter map may only use MeterReading quantities; a rig map behind a container PLC only the
quantities a Modbus rig driver reads or writes. The units are those of the scaled raw value.
"""

from __future__ import annotations

from typing import Final

_POWER: Final = frozenset({"W", "kW"})
_ENERGY: Final = frozenset({"Wh", "kWh"})

METER_POINTS: Final[dict[str, frozenset[str]]] = {
    "power_w": _POWER,
    "power_l1_w": _POWER,
    "power_l2_w": _POWER,
    "power_l3_w": _POWER,
    "voltage_l1_v": frozenset({"V"}),
    "voltage_l2_v": frozenset({"V"}),
    "voltage_l3_v": frozenset({"V"}),
    "current_l1_a": frozenset({"A"}),
    "current_l2_a": frozenset({"A"}),
    "current_l3_a": frozenset({"A"}),
    "energy_import_kwh": _ENERGY,
    "energy_export_kwh": _ENERGY,
}
METER_REQUIRED: Final = ("power_w",)

# Rig behind a container PLC. state: 0 offline, 1 hashing, 2 sleeping, 3 fault.
# run (writable): 1 run, 0 sleep. power_limit_w (writable): continuous power target.
RIG_STATE_VALUES: Final[dict[int, str]] = {0: "offline", 1: "hashing", 2: "sleeping", 3: "fault"}
RIG_POINTS: Final[dict[str, frozenset[str]]] = {
    "state": frozenset({""}),
    "hashrate_ths": frozenset({"THs", "GHs"}),
    "power_w": _POWER,
    "chip_temp_max_c": frozenset({"C"}),
    "fan_rpm_min": frozenset({"rpm"}),
    "boards_ok": frozenset({""}),
    "run": frozenset({""}),
    "power_limit_w": _POWER,
    "uptime_s": frozenset({"s"}),
    "fault_code": frozenset({""}),
}
RIG_REQUIRED: Final = ("state", "run")
