"""One place that says which class drives each rig firmware family.

A family is one module (minerd/devices/rig_<family>.py) with a `build(target) -> Rig`
function, and one line in BUILDERS below. Modbus and MQTT rigs share site-level hubs and
are built by minerd.assembly itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from minerd.devices import rig_braiins, rig_stock, rig_vnish, rig_whatsminer
from minerd.devices.rig import Rig
from minerd.devices.rig_luxos import CgminerRig, LuxosRig
from minerd.devices.target import RigTarget
from minerd.errors import ConfigError
from minerd.model import RigProtocol

__all__ = ["BUILDERS", "RigBuilder", "RigTarget", "build_rig"]


RigBuilder = Callable[[RigTarget], Rig]


def _luxos(t: RigTarget) -> Rig:
    return LuxosRig(
        t.rig_id,
        t.host,
        t.model,
        t.port,
        container=t.container,
        timeout_s=t.timeout_s,
        password=t.password,
        sessions=t.sessions,
        clock=t.clock,
    )


def _cgminer(t: RigTarget) -> Rig:
    return CgminerRig(
        t.rig_id, t.host, t.model, t.port, container=t.container, timeout_s=t.timeout_s
    )


BUILDERS: Mapping[RigProtocol, RigBuilder] = MappingProxyType(
    {
        RigProtocol.LUXOS: _luxos,
        RigProtocol.CGMINER: _cgminer,
        RigProtocol.STOCK: rig_stock.build,
        RigProtocol.VNISH: rig_vnish.build,
        RigProtocol.WHATSMINER: rig_whatsminer.build,
        RigProtocol.BRAIINS: rig_braiins.build,
    }
)


def build_rig(protocol: RigProtocol, target: RigTarget) -> Rig:
    """The driver for one rig; ConfigError when the family has no driver."""
    builder = BUILDERS.get(protocol)
    if builder is None:
        raise ConfigError([f"rig {target.rig_id}: driver '{protocol.value}' is not built yet"])
    return builder(target)
