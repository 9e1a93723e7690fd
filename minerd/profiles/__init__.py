"""Device profiles: drivers/*.toml loaded and validated into model.RigModel / model.RegisterMap."""

from minerd.profiles.loader import (
    list_meter_maps,
    list_rig_models,
    list_rig_register_maps,
    load_meter_map,
    load_rig_model,
    load_rig_register_map,
)
from minerd.profiles.paths import drivers_dir
from minerd.profiles.points import METER_POINTS, RIG_POINTS, RIG_STATE_VALUES
from minerd.profiles.registers import parse_register_map
from minerd.profiles.rigs import parse_rig_model
from minerd.profiles.units import KNOWN_UNITS, canonical_unit, to_canonical

__all__ = [
    "KNOWN_UNITS",
    "METER_POINTS",
    "RIG_POINTS",
    "RIG_STATE_VALUES",
    "canonical_unit",
    "drivers_dir",
    "list_meter_maps",
    "list_rig_models",
    "list_rig_register_maps",
    "load_meter_map",
    "load_rig_model",
    "load_rig_register_map",
    "parse_register_map",
    "parse_rig_model",
    "to_canonical",
]
