"""Braiins OS+: reads the legacy bmminer API on 4028 (MHS keys); control is gRPC `bos.v1` on
`grpc_port` (50051) with a token from `AuthenticationService/Login` (PauseMining,
ResumeMining, SetPowerTarget). Reference: firmware-apis.md sections 6 and 8 (gotcha 8).

SCAFFOLD (issue 13): reads work through CgminerRig's read path; apply() is not built yet.
The family's engineer replaces the bodies of this module; nothing else needs editing.
"""

from __future__ import annotations

from minerd.devices.rig import Rig
from minerd.devices.rig_luxos import CgminerRig
from minerd.devices.target import RigTarget
from minerd.model import RigCommand, RigProtocol

__all__ = ["BraiinsRig", "build"]


class BraiinsRig(CgminerRig):
    """A braiins rig: cgminer-API reads; commands not built yet."""

    def __init__(self, target: RigTarget) -> None:
        super().__init__(
            target.rig_id,
            target.host,
            target.model,
            target.port,
            container=target.container,
            timeout_s=target.timeout_s,
        )
        self.target = target

    @property
    def protocol(self) -> RigProtocol:
        return RigProtocol.BRAIINS

    async def apply(self, cmd: RigCommand) -> None:
        raise self.rejected(f"{cmd.action.value}: driver 'braiins' is not built yet")


def build(target: RigTarget) -> Rig:
    return BraiinsRig(target)
