"""Simulated stock Antminer HTTP CGI (digest auth, realm antMiner Configuration; get_miner_conf,
set_miner_conf replying after ~21 s and restarting the miner) on the web port. Reference:
firmware-apis.md section 3.

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
