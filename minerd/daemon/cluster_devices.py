"""Which devices and which fail-safe limit a [cluster] role gets (no NATS here: the daemon
imports this for every role, and nats-py only for a controller or shard)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from minerd.clock import Clock
from minerd.daemon.assembly import SiteDevices, build_devices
from minerd.devices.rig_luxos import SessionCache
from minerd.runtime.cycle import CycleConfig
from minerd.settings import Settings

log = logging.getLogger("minerd.daemon.cluster")


def build_role_devices(
    settings: Settings, sessions: SessionCache | None, clock: Clock | None
) -> SiteDevices:
    """The devices this process owns: every one (single), the meters only (controller), or
    the shard's rigs only."""
    c = settings.cluster
    if c.role == "shard" and c.rig_groups:
        groups = tuple(g for g in settings.rigs if g.name in c.rig_groups)
        settings = settings.model_copy(update={"rigs": groups})
    d = build_devices(settings, sessions, clock)
    if c.role == "single":
        return d
    if c.role == "controller":
        keep_rig: Callable[[str], bool] = lambda _rig_id: False  # noqa: E731
    else:
        keep_rig = lambda rig_id: c.owns(rig_id, "")  # noqa: E731
        if c.rig_groups:
            keep_rig = lambda _rig_id: True  # noqa: E731  (the groups were chosen above)
        d.meters, d.meter_infos = [], []
    kept = [i for i, info in enumerate(d.rig_infos) if keep_rig(info.rig_id)]
    d.rigs = [d.rigs[i] for i in kept]
    d.rig_infos = [d.rig_infos[i] for i in kept]
    d.models = {info.rig_id: d.models[info.rig_id] for info in d.rig_infos}
    log.info("cluster %s: %d rigs, %d meters", c.shard_id or c.role, len(d.rigs), len(d.meters))
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
