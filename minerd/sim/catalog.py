"""Rig models and register maps for the simulator, read through minerd.profiles.

The simulator reads the same drivers/*.toml files as the daemon, so a profile change shows
on both sides of the wire. Cached: every rig of a model shares one RigModel.
"""

from __future__ import annotations

import functools

from minerd import profiles
from minerd.model import RegisterMap, RigModel

PLC_RIG_MAP = "container-plc-rig"


@functools.cache
def rig_model(name: str) -> RigModel:
    return profiles.load_rig_model(name)


@functools.cache
def meter_map(name: str) -> RegisterMap:
    return profiles.load_meter_map(name)


@functools.cache
def rig_register_map(name: str = PLC_RIG_MAP) -> RegisterMap:
    return profiles.load_rig_register_map(name)


def rig_model_names() -> list[str]:
    return list(profiles.list_rig_models())
