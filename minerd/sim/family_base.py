"""What a firmware family's extra simulated servers look like to the fleet.

Beside its cgminer listener on 4028, a rig of some families answers another API on its own
loopback address (stock CGI and Vnish REST on the web port, Whatsminer API v3, Braiins gRPC).
A family module gives a factory `listeners(clock) -> FamilyListeners`; the fleet opens one
per rig of the family at start, closes it for the "offline" fault and reopens it on clear.
"""

from __future__ import annotations

from typing import Protocol

from minerd.clock import Clock
from minerd.sim.rig import RigSim

__all__ = ["PORT_KEYS", "SIM_LOGINS", "FamilyListeners", "NoListeners"]


class FamilyListeners(Protocol):
    async def open(self, rig: RigSim) -> int:
        """Start the rig's server on rig.plan.host:rig.plan.family_port; the bound port."""
        ...

    def port_of(self, rig_id: str) -> int | None:
        """The bound port of a rig's server, None while it has none."""
        ...

    def close(self, rig_id: str) -> None: ...

    async def close_all(self) -> None: ...


class NoListeners:
    """A family without extra servers yet (placeholder until its server is built)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def open(self, rig: RigSim) -> int:
        return 0

    def port_of(self, rig_id: str) -> int | None:
        return None

    def close(self, rig_id: str) -> None:
        return None

    async def close_all(self) -> None:
        return None


# The logins each simulated family accepts: the firmware's documented defaults (firmware-apis.md
# 3.1 root/root, 4 "admin", 5.2 super/super, 6 root/root as pyasic sends them), so pyasic works
# with its own defaults as an independent client. (username, password); Vnish has no username.
SIM_LOGINS: dict[str, tuple[str, str]] = {
    "stock": ("root", "root"),
    "vnish": ("", "admin"),
    "whatsminer": ("super", "super"),
    "braiins": ("root", "root"),
}
# The config key that carries each family's extra port.
PORT_KEYS: dict[str, str] = {
    "stock": "web_port",
    "vnish": "web_port",
    "whatsminer": "api_port",
    "braiins": "grpc_port",
}
