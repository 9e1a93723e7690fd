"""Bitmain stock firmware: reads over the cgminer API on 4028; control is the HTTP CGI
(`set_miner_conf.cgi`, digest auth, `miner-mode` 0/1/3, replies after ~21 s) on `web_port`.
Reference: firmware-apis.md sections 3 and 8 (gotchas 2-4).

SCAFFOLD (issue 13): reads work through CgminerRig's read path; apply() is not built yet.
The family's engineer replaces the bodies of this module; nothing else needs editing.
"""

from __future__ import annotations

from minerd.devices.rig import Rig
from minerd.devices.rig_luxos import CgminerRig
from minerd.devices.target import RigTarget
from minerd.model import RigCommand, RigProtocol

__all__ = ["StockRig", "build"]


class StockRig(CgminerRig):
    """A stock rig: cgminer-API reads; commands not built yet."""

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
        return RigProtocol.STOCK

    async def apply(self, cmd: RigCommand) -> None:
        raise self.rejected(f"{cmd.action.value}: driver 'stock' is not built yet")


def build(target: RigTarget) -> Rig:
    return StockRig(target)
