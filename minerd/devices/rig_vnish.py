"""Vnish (AnthillOS): reads over the cgminer API on 4028; control is REST `/api/v1` on
`web_port` with a bearer token from `POST /unlock` (mining/stop|start, autotune presets).
Reference: firmware-apis.md sections 4 and 8 (gotcha 9).

SCAFFOLD (issue 13): reads work through CgminerRig's read path; apply() is not built yet.
The family's engineer replaces the bodies of this module; nothing else needs editing.
"""

from __future__ import annotations

from minerd.devices.rig import Rig
from minerd.devices.rig_luxos import CgminerRig
from minerd.devices.target import RigTarget
from minerd.model import RigCommand, RigProtocol

__all__ = ["VnishRig", "build"]


class VnishRig(CgminerRig):
    """A vnish rig: cgminer-API reads; commands not built yet."""

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
        return RigProtocol.VNISH

    async def apply(self, cmd: RigCommand) -> None:
        raise self.rejected(f"{cmd.action.value}: driver 'vnish' is not built yet")


def build(target: RigTarget) -> Rig:
    return VnishRig(target)
