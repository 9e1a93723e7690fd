"""What a rig driver is built from: one rig of a configured group (see devices.registry)."""

from __future__ import annotations

from dataclasses import dataclass, field

from minerd.clock import Clock
from minerd.devices.luxos_session import SessionCache
from minerd.model import RigModel

__all__ = ["RigTarget"]


@dataclass(frozen=True)
class RigTarget:
    """Everything a family's builder knows about one rig of a group (from the site config)."""

    rig_id: str
    host: str
    port: int  # the cgminer API port (4028 unless the group says otherwise)
    model: RigModel
    container: str = ""
    timeout_s: float = 3.0
    username: str = ""  # the family's default when the group sets none
    password: str | None = field(default=None, repr=False)  # never in a repr or a log
    web_port: int = 80  # stock CGI, Vnish REST
    api_port: int = 4433  # Whatsminer API v3
    grpc_port: int = 50051  # Braiins OS+ gRPC
    clock: Clock | None = None
    sessions: SessionCache | None = None  # LuxOS sessions that survive a restart
