"""Simulated Braiins OS+ gRPC bos.v1 on 50051 (AuthenticationService/Login with the token in the
body and the authorization header, ActionsService Pause/ResumeMining, PerformanceService
SetPowerTarget / SetQuickRamping). Reference: firmware-apis.md sections 6 and 6.1.

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
