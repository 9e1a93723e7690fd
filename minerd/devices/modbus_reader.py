"""Read and write one Modbus device's register map through a shared ModbusHub.

Values come out and go in canonical units (the point name says which: power_w in W,
energy_import_kwh in kWh), whatever unit and scale the profile declares on the wire.
"""

from __future__ import annotations

import logging
import math

from minerd.devices.modbus_codec import (
    DEFAULT_MAX_GAP,
    Block,
    decode_block,
    encode_point,
    plan_blocks,
)
from minerd.errors import ModbusException, ProtocolError
from minerd.model import RegisterMap
from minerd.profiles import to_canonical
from minerd.transports.modbus import ModbusHub

log = logging.getLogger(__name__)

ILLEGAL_DATA_ADDRESS = 2


class RegisterReader:
    """One device (unit id) on a hub, described by a RegisterMap."""

    def __init__(
        self,
        device: str,
        register_map: RegisterMap,
        hub: ModbusHub,
        unit_id: int,
        *,
        timeout_s: float | None = None,
        max_gap: int = DEFAULT_MAX_GAP,
    ) -> None:
        self.device = device
        self.register_map = register_map
        self.hub = hub
        self.unit_id = unit_id
        self.timeout_s = timeout_s
        self.blocks: tuple[Block, ...] = plan_blocks(register_map.points, max_gap=max_gap)

    @property
    def endpoint(self) -> str:
        return f"{self.hub.endpoint} unit {self.unit_id}"

    async def _read_block(self, block: Block) -> dict[str, float]:
        m = self.register_map
        registers = await self.hub.read_registers(
            self.device,
            self.unit_id,
            m.function_code,
            block.address,
            block.count,
            timeout_s=self.timeout_s,
        )
        return decode_block(block, registers, m.byte_order, m.word_order)

    async def read(self) -> dict[str, float]:
        """Every point of the map in its canonical unit; one request per planned block."""
        values: dict[str, float] = {}
        for block in self.blocks:
            try:
                values.update(await self._read_block(block))
            except ModbusException as exc:
                if exc.exception_code != ILLEGAL_DATA_ADDRESS or not block.has_gaps:
                    raise
                # Some devices refuse reads that span unmapped registers: stop bridging gaps.
                log.warning("%s: %s; reading without gaps from now on", self.device, exc)
                self.blocks = plan_blocks(self.register_map.points, max_gap=0)
                return await self.read()
        out: dict[str, float] = {}
        units = {p.name: p.unit for p in self.register_map.points}
        for name, value in values.items():
            if not math.isfinite(value):
                raise ProtocolError(self.device, self.endpoint, f"{name} is {value}")
            out[name] = to_canonical(value, units[name])
        return out

    async def write(self, name: str, value: float) -> None:
        """Write one writable point, `value` in the canonical unit of `name`."""
        m = self.register_map
        point = m.point(name)
        if point is None:
            raise ValueError(f"{self.device}: profile {m.name} has no point {name!r}")
        declared = value / to_canonical(1.0, point.unit)
        registers = encode_point(point, declared, m.byte_order, m.word_order)
        await self.hub.write_registers(
            self.device, self.unit_id, point.address, registers, timeout_s=self.timeout_s
        )
