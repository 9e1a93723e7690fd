"""What the IEC 104 outstation reports: values from the site's status, pure and testable.

Each monitoring point of the map gets a value, a validity (the grid meter's freshness for
the site's import) and a time tag (the snapshot's time); spontaneous transmission happens
when a value moved by more than its deadband since it was last sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from minerd.runtime.service import SiteStatus
from minerd.settings.models import Iec104Analog, Iec104Points, Iec104Status

# limit_origin codes on the wire (docs/grid-api.md).
ORIGIN_CODES: Mapping[str, int] = {
    "contracted": 0,
    "quota": 1,
    "operator-cap": 2,
    "failsafe": 3,
}

# Shed capacity within 5 s / 60 s / 10 min, site import kW (IOAs 1007-1009 by default).
SHED_POINTS: Mapping[str, float] = {"shed_5s_kw": 5.0, "shed_60s_kw": 60.0, "shed_600s_kw": 600.0}
ANALOGS = (
    "grid_import_kw",
    "limit_kw",
    "limit_origin",
    "rig_power_kw",
    "hashrate_ths",
    *SHED_POINTS,
)
STATUSES = ("failsafe", "grid_fresh")


@dataclass(frozen=True)
class PointValue:
    name: str
    value: float | bool
    valid: bool
    at_s: float


def point_values(status: SiteStatus, setpoint_kw: float | None) -> dict[str, PointValue]:
    """Every monitoring point's value now. setpoint_kw: the IEC 104 setpoint in force."""
    at = status.taken_at_s
    fresh = status.grid_fresh
    values: dict[str, tuple[float | bool, bool]] = {
        "grid_import_kw": (status.grid_import_kw, fresh),
        "limit_kw": (status.limit.limit_kw, True),
        "limit_origin": (float(ORIGIN_CODES.get(status.limit.origin, 0)), True),
        "rig_power_kw": (status.rig_power_kw, True),
        "hashrate_ths": (status.hashrate_ths, True),
        # No setpoint in force: 0 flagged invalid, so the SCADA shows "none", not "0 kW".
        "setpoint_kw": (setpoint_kw or 0.0, setpoint_kw is not None),
        "failsafe": (status.failsafe, True),
        "grid_fresh": (fresh, True),
    }
    # Before the first control cycle nothing is known: 0 flagged invalid.
    shed = status.shed
    for name, horizon_s in SHED_POINTS.items():
        values[name] = (shed.within_kw(horizon_s) if shed is not None else 0.0, shed is not None)
    out = {}
    for name, (value, valid) in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            value, valid = 0.0, False
        out[name] = PointValue(name, value, valid, at)
    return out


def wire_value(point: Iec104Analog, value: float) -> float:
    return value * point.scale


def spec(points: Iec104Points, name: str) -> Iec104Analog | Iec104Status:
    item = getattr(points, name)
    assert isinstance(item, Iec104Analog | Iec104Status)
    return item


def moved(points: Iec104Points, last: PointValue | None, now: PointValue) -> bool:
    """Worth a spontaneous transmission: validity or a state changed, or beyond deadband."""
    if last is None or last.valid != now.valid:
        return True
    item = spec(points, now.name)
    if isinstance(item, Iec104Status) or isinstance(now.value, bool):
        return bool(last.value) != bool(now.value)
    return abs(float(now.value) - float(last.value)) > item.deadband
