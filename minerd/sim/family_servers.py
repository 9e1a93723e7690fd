"""Which extra servers each simulated firmware family starts per rig (one line per family)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from minerd.clock import Clock
from minerd.model import RigProtocol
from minerd.sim import braiins_grpc, stock_web, vnish_web, whatsminer_api
from minerd.sim.family_base import FamilyListeners

__all__ = ["FAMILY_LISTENERS", "FamilyListeners"]

FAMILY_LISTENERS: Mapping[RigProtocol, Callable[[Clock], FamilyListeners]] = MappingProxyType(
    {
        RigProtocol.STOCK: stock_web.listeners,
        RigProtocol.VNISH: vnish_web.listeners,
        RigProtocol.WHATSMINER: whatsminer_api.listeners,
        RigProtocol.BRAIINS: braiins_grpc.listeners,
    }
)
