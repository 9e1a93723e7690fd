"""One place that says which class drives each rig firmware family.

A family is one module (minerd/devices/rig_<family>.py) with a `build(target) -> Rig`
function, and one line in BUILDERS below. Modbus and MQTT rigs share site-level hubs and
are built by minerd.daemon.assembly itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from minerd.devices import rig_braiins, rig_stock, rig_vnish, rig_whatsminer
from minerd.devices.rig import Rig
from minerd.devices.rig_luxos import CgminerRig, LuxosRig
from minerd.devices.target import RigTarget
from minerd.errors import ConfigError
from minerd.model import RigProtocol
from minerd.transports.vnish_web import KEPT_CONNECTIONS as VNISH_KEPT_CONNECTIONS

__all__ = ["BUILDERS", "KEPT_FDS", "RigBuilder", "RigTarget", "build_rig", "kept_fds"]


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


# Descriptors a family's driver keeps open between polls, per rig: Vnish's keep-alive REST
# session (up to its connector's 2) and Braiins' HTTP/2 channel. Other drivers connect per
# request, so only concurrency bounds theirs. The API's connection cap leaves these free.
KEPT_FDS: Mapping[RigProtocol, int] = MappingProxyType(
    {RigProtocol.VNISH: VNISH_KEPT_CONNECTIONS, RigProtocol.BRAIINS: 1}
)


def kept_fds(protocols: Iterable[RigProtocol]) -> int:
    """Descriptors the drivers of these rigs hold open all the time."""
    return sum(KEPT_FDS.get(p, 0) for p in protocols)


def build_rig(protocol: RigProtocol, target: RigTarget) -> Rig:
    """The driver for one rig; ConfigError when the family has no driver."""
    builder = BUILDERS.get(protocol)
    if builder is None:
        raise ConfigError([f"rig {target.rig_id}: driver '{protocol.value}' is not built yet"])
    return builder(target)
