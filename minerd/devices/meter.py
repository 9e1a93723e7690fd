"""A power meter: a meter register map (drivers/meters/*.toml) read over a ModbusHub."""

from __future__ import annotations

from minerd.devices.modbus_codec import DEFAULT_MAX_GAP
from minerd.devices.modbus_reader import RegisterReader
from minerd.errors import ProfileError
from minerd.model import MeterReading, RegisterMap
from minerd.transports.modbus import ModbusHub


class Meter:
    """Reads one meter: one request per poll when its points fit one block (SDM630: 0..75)."""

    def __init__(
        self,
        name: str,
        register_map: RegisterMap,
        hub: ModbusHub,
        unit_id: int,
        *,
        timeout_s: float | None = None,
        max_gap: int = DEFAULT_MAX_GAP,
    ) -> None:
        if register_map.point("power_w") is None:
            raise ProfileError(register_map.name, ["a meter map needs a 'power_w' point"])
        self.name = name
        self.register_map = register_map
        self._reader = RegisterReader(
            name, register_map, hub, unit_id, timeout_s=timeout_s, max_gap=max_gap
        )

    @property
    def endpoint(self) -> str:
        """ "tcp://host:port unit N", as errors name it."""
        return self._reader.endpoint

    @property
    def requests_per_read(self) -> int:
        return len(self._reader.blocks)

    async def read(self, now_s: float) -> MeterReading:
        """One reading in W, V, A and kWh, stamped now_s; raises DeviceError on failure."""
        v = await self._reader.read()
        return MeterReading(
            meter=self.name,
            taken_at_s=now_s,
            power_w=v["power_w"],
            power_l1_w=v.get("power_l1_w"),
            power_l2_w=v.get("power_l2_w"),
            power_l3_w=v.get("power_l3_w"),
            voltage_l1_v=v.get("voltage_l1_v"),
            voltage_l2_v=v.get("voltage_l2_v"),
            voltage_l3_v=v.get("voltage_l3_v"),
            current_l1_a=v.get("current_l1_a"),
            current_l2_a=v.get("current_l2_a"),
            current_l3_a=v.get("current_l3_a"),
            energy_import_kwh=v.get("energy_import_kwh"),
            energy_export_kwh=v.get("energy_export_kwh"),
        )
