"""The common part of a firmware family's driver (stock, Vnish, Whatsminer, Braiins OS+):
reads over the cgminer API on 4028 as CgminerRig does, commands over the family's own API.

It holds the rig's target, the clock its timers run on (the target's, else the system's) and
the family's reaction table, so each driver builds only its control client.
"""

from __future__ import annotations

from typing import ClassVar

from minerd.clock import Clock, system_clock
from minerd.devices.rig_luxos import CgminerRig
from minerd.devices.target import RigTarget
from minerd.model import FirmwareReaction, RigProtocol

__all__ = ["SIDE_READ_SHARE", "FamilyRig"]

# A read's second API (Vnish REST, Braiins gRPC) gets this share of the read time limit: a
# hung side API ends before the poll's own limit, so the 4028 part of the reading is still
# returned (power estimated from hashrate) instead of the whole read being cancelled.
SIDE_READ_SHARE = 0.8


class FamilyRig(CgminerRig):
    """A rig of one firmware family, built from its RigTarget."""

    FAMILY: ClassVar[RigProtocol]

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
        self.clock: Clock = target.clock if target.clock is not None else system_clock
        self.reaction: FirmwareReaction = target.model.reaction(self.FAMILY)

    @property
    def protocol(self) -> RigProtocol:
        return self.FAMILY

    @property
    def side_read_limit_s(self) -> float:
        """The time limit of a read's call to the family's own API (SIDE_READ_SHARE)."""
        return self.target.timeout_s * SIDE_READ_SHARE
