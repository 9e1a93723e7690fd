"""MicroBT Whatsminer (btminer): reads API v2 on 4028 (MHS keys, power in summary); control
is API v2 privileged commands (token, AES) on 4028 or API v3 on `api_port` (4433).
Reference: firmware-apis.md sections 5 and 8 (gotchas 1, 6).

SCAFFOLD (issue 13): reads work through CgminerRig's read path; apply() is not built yet.
The family's engineer replaces the bodies of this module; nothing else needs editing.
"""

from __future__ import annotations

from minerd.devices.rig import Rig
from minerd.devices.rig_luxos import CgminerRig
from minerd.devices.target import RigTarget
from minerd.model import RigCommand, RigProtocol

__all__ = ["WhatsminerRig", "build"]


class WhatsminerRig(CgminerRig):
    """A whatsminer rig: cgminer-API reads; commands not built yet."""

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
        return RigProtocol.WHATSMINER

    async def apply(self, cmd: RigCommand) -> None:
        raise self.rejected(f"{cmd.action.value}: driver 'whatsminer' is not built yet")


def build(target: RigTarget) -> Rig:
    return WhatsminerRig(target)
