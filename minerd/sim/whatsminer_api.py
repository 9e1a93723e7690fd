"""Simulated Whatsminer API v3 on 4433 (4-byte little-endian length framing, get.device.info salt,
set.miner.service / set.miner.power_limit); the v2 privileged commands on 4028 go in
minerd/sim/cgminer.py's dispatch through a hook this module adds. Reference: firmware-apis.md
section 5.

PLACEHOLDER (issue 13 scaffold): starts nothing yet. The family's engineer replaces
`listeners` with a real FamilyListeners (see minerd.sim.family_base); the registration line
in minerd.sim.family_servers already points here.
"""

from __future__ import annotations

from minerd.clock import Clock
from minerd.sim.family_base import FamilyListeners, NoListeners

__all__ = ["listeners"]


def listeners(clock: Clock) -> FamilyListeners:
    return NoListeners(clock)
