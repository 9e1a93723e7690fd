"""Which devices and which fail-safe limit a [cluster] role gets (no NATS here: the daemon
imports this for every role, and nats-py only for a controller or shard)."""

from __future__ import annotations

import dataclasses
import logging

from minerd.clock import Clock
from minerd.daemon.assembly import SiteDevices, build_devices
from minerd.devices.rig_luxos import SessionCache
from minerd.model import RigProtocol
from minerd.runtime.cycle import CycleConfig
from minerd.settings import Settings

log = logging.getLogger("minerd.daemon.cluster")


def build_role_devices(
    settings: Settings, sessions: SessionCache | None, clock: Clock | None
) -> SiteDevices:
    """The devices this process owns: every one (single), the meters only (controller), or
    the shard's rigs only (its rig groups, or by the hash of the rig id)."""
    c = settings.cluster
    if c.role == "single":
        return build_devices(settings, sessions, clock)
    if c.role == "controller":
        d = build_devices(settings.model_copy(update={"rigs": ()}), sessions, clock)
        log.info("cluster controller: %d meters, no rig", len(d.meters))
        return d
    rigs = settings.rigs
    if c.rig_groups:
        rigs = tuple(g for g in rigs if g.name in c.rig_groups)
    d = build_devices(settings.model_copy(update={"rigs": rigs, "meters": ()}), sessions, clock)
    if not c.rig_groups:
        kept = [i for i, info in enumerate(d.rig_infos) if c.owns(info.rig_id, "")]
        d.rigs = [d.rigs[i] for i in kept]
        d.rig_infos = [d.rig_infos[i] for i in kept]
        d.models = {info.rig_id: d.models[info.rig_id] for info in d.rig_infos}
        if not any(info.protocol is RigProtocol.MQTT for info in d.rig_infos):
            d.mqtt_rigs, d.mqtt_rig_hubs = None, []  # no MQTT rig of ours: no session
    log.info("cluster shard %s: %d rigs, no meter", c.shard_id, len(d.rigs))
    return d


def role_cycle_config(settings: Settings, config: CycleConfig) -> CycleConfig:
    """A shard's fail-safe limit is its starting share (the last-resort shed uses it)."""
    c = settings.cluster
    if c.role != "shard":
        return config
    n = len(c.shards)
    return dataclasses.replace(
        config,
        failsafe_limit_kw=config.failsafe_limit_kw / n,
        loop=dataclasses.replace(config.loop, failsafe_limit_kw=config.failsafe_limit_kw / n),
    )
