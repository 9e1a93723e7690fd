"""What the runtime needs of a device: structural protocols over minerd.devices classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from minerd.model import MeterReading, MeterRole, RigCommand, RigProtocol, RigReading


class PollableRig(Protocol):
    @property
    def rig_id(self) -> str: ...

    async def read(self, now_s: float) -> RigReading: ...

    async def apply(self, cmd: RigCommand) -> None: ...


class PollableMeter(Protocol):
    @property
    def name(self) -> str: ...

    async def read(self, now_s: float) -> MeterReading: ...


@dataclass(frozen=True)
class RigInfo:
    """Where a rig is and how often to read it; fixed for the life of the process."""

    rig_id: str
    model: str
    container: str
    host: str
    port: int
    protocol: RigProtocol
    interval_s: float
    timeout_s: float
    stale_after_s: float


@dataclass(frozen=True)
class MeterInfo:
    name: str
    role: MeterRole
    container: str
    endpoint: str
    interval_s: float
    timeout_s: float
    stale_after_s: float
