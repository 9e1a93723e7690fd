"""A Modbus TCP server holding several devices by unit id, as behind an RS-485 gateway or a
container PLC. Register values are computed on each read from the device's current state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Protocol, runtime_checkable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from minerd.model import RegisterMap
from minerd.sim.registers import block_size, decode_point, fill

log = logging.getLogger(__name__)

OFFLINE_DELAY_S = 0.3  # an absent device: the gateway answers 0x0B after its own timeout
WRITE_CODES = frozenset({6, 16})


class ModbusSimDevice(Protocol):
    @property
    def regmap(self) -> RegisterMap: ...

    @property
    def modbus_fault(self) -> str:
        """ "", "offline", "frozen" or "modbus_exception"."""

    def register_values(self) -> dict[str, float]: ...

    def register_write(self, name: str, value: float) -> bool: ...


@runtime_checkable
class MultiBlockDevice(Protocol):
    """A device that answers more register blocks than its profile reads (MeterSim)."""

    @property
    def served_maps(self) -> tuple[RegisterMap, ...]: ...


def _served(dev: ModbusSimDevice) -> tuple[RegisterMap, ...]:
    return dev.served_maps if isinstance(dev, MultiBlockDevice) else (dev.regmap,)


class ModbusGateway:
    def __init__(self, host: str, port: int, devices: dict[int, ModbusSimDevice]) -> None:
        self.host = host
        self.port = port
        self.devices = devices
        self._frozen: dict[int, dict[str, float]] = {}
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        simdevices = []
        for unit_id, dev in self.devices.items():
            size = max(block_size(m) for m in _served(dev))
            simdevices.append(
                SimDevice(
                    id=unit_id,
                    simdata=[SimData(0, count=size, values=0, datatype=DataType.REGISTERS)],
                    action=functools.partial(self._action, unit_id),
                )
            )
        server = ModbusTcpServer(simdevices, address=(self.host, self.port))
        await server.serve_forever(background=True)
        self._server = server
        transport = server.transport
        sockets = getattr(transport, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def _action(
        self,
        unit_id: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        dev = self.devices[unit_id]
        fault = dev.modbus_fault
        if fault == "offline":
            await asyncio.sleep(OFFLINE_DELAY_S)
            return ExcCodes.GATEWAY_NO_RESPONSE
        if fault == "modbus_exception":
            return ExcCodes.DEVICE_FAILURE
        if set_values is not None:
            if function_code not in WRITE_CODES or dev.regmap.function_code != 3:
                return ExcCodes.ILLEGAL_FUNCTION
            return self._write(dev, address, [int(v) for v in set_values])
        # FC6/FC16 read back what they wrote: pymodbus asks for the values after a write
        if function_code != dev.regmap.function_code and function_code not in WRITE_CODES:
            return ExcCodes.ILLEGAL_FUNCTION
        if fault == "frozen":
            values = self._frozen.setdefault(unit_id, dev.register_values())
        else:
            self._frozen.pop(unit_id, None)
            values = dev.register_values()
        for regmap in _served(dev):
            fill(regmap, values, current_registers)
        return None

    def _write(self, dev: ModbusSimDevice, address: int, words: list[int]) -> ExcCodes | None:
        end = address + len(words)
        for point in dev.regmap.points:
            p_end = point.address + point.register_count
            if point.address >= end or p_end <= address:
                continue
            if not point.writable or point.address < address or p_end > end:
                return ExcCodes.ILLEGAL_ADDRESS
            value = decode_point(
                point, dev.regmap, words[point.address - address : p_end - address]
            )
            lo, hi = point.min_value, point.max_value
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                return ExcCodes.ILLEGAL_VALUE
            if not dev.register_write(point.name, value):
                return ExcCodes.ILLEGAL_VALUE
        return None
