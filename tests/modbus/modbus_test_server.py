"""A real pymodbus TCP server on loopback for the Modbus tests, counting requests per unit.

Registers are encoded here with struct, independently of minerd's codec, so a test checks
the codec against the wire format rather than against itself.
"""

from __future__ import annotations

import functools
import struct
from collections import Counter
from collections.abc import Mapping

import servers
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

_FMT = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
    "uint64": ">Q",
    "float32": ">f",
}


def free_port() -> int:
    return servers.free_port()


def words(
    type_: str, raw: float, *, little_bytes: bool = False, low_first: bool = False
) -> list[int]:
    """Registers holding `raw` as the device would send them."""
    value: float = raw if type_ == "float32" else int(raw)
    data = struct.pack(_FMT[type_], value)
    regs = [
        int.from_bytes(data[i : i + 2], "little" if little_bytes else "big")
        for i in range(0, len(data), 2)
    ]
    return regs[::-1] if low_first else regs


def _runs(registers: Mapping[int, int]) -> list[SimData]:
    """Consecutive addresses become one SimData; addresses not given are invalid (exception 2)."""
    blocks: list[SimData] = []
    run: list[int] = []
    start = -1
    for addr in sorted(registers):
        if run and addr == start + len(run):
            run.append(registers[addr])
            continue
        if run:
            blocks.append(SimData(start, values=run, datatype=DataType.REGISTERS))
        start, run = addr, [registers[addr]]
    if run:
        blocks.append(SimData(start, values=run, datatype=DataType.REGISTERS))
    return blocks


class CountingModbusServer:
    """Holding and input registers per unit id; counts every request that reaches a unit."""

    def __init__(
        self,
        port: int,
        units: Mapping[int, tuple[Mapping[int, int], Mapping[int, int]]],
    ) -> None:
        """units: unit id -> (holding registers, input registers), address -> value."""
        self.port = port
        self.requests: Counter[int] = Counter()
        self.writes: list[tuple[int, int, list[int]]] = []
        self.fail_with: ExcCodes | None = None
        devices = []
        bit = [SimData(0, values=[False], datatype=DataType.BITS)]
        for unit_id, (holding, inputs) in units.items():
            devices.append(
                SimDevice(
                    id=unit_id,
                    simdata=(
                        bit,
                        bit,
                        _runs(holding) or _runs({0: 0}),
                        _runs(inputs) or _runs({0: 0}),
                    ),
                    action=functools.partial(self._action, unit_id),
                )
            )
        self._server = ModbusTcpServer(devices, address=("127.0.0.1", port))

    async def _action(
        self,
        unit_id: int,
        function_code: int,
        _start: int,
        address: int,
        _count: int,
        _registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests[unit_id] += 1
        if set_values is not None:
            self.writes.append((unit_id, address, [int(v) for v in set_values]))
        return self.fail_with

    async def start(self) -> None:
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        await self._server.shutdown()  # type: ignore[no-untyped-call]
