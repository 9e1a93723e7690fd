"""Checking a setpoint command before it is confirmed: pure, fast, safe on c104's thread.

The outstation answers every command with a positive or negative activation confirmation;
a negative one carries no reason on the wire, so the reason is logged and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from minerd.settings.models import Iec104Settings


@dataclass(frozen=True)
class Setpoint:
    limit_kw: float


@dataclass(frozen=True)
class Withdraw:
    pass


@dataclass(frozen=True)
class Rejected:
    reason: str  # "out of range: ...", "not allowed: ..."


Command = Setpoint | Withdraw


def check_setpoint(
    settings: Iec104Settings, contracted_kw: float, wire: float
) -> Setpoint | Rejected:
    if not settings.commands:
        return Rejected("not allowed: [iec104] commands = false (monitoring only)")
    if not math.isfinite(wire):
        return Rejected(f"out of range: {wire} is not a number")
    limit_kw = wire / settings.points.setpoint_scale
    lo = settings.setpoint_min_kw
    hi = contracted_kw if settings.setpoint_max_kw is None else settings.setpoint_max_kw
    if not lo <= limit_kw <= hi:
        return Rejected(f"out of range: {limit_kw:.1f} kW is outside {lo:.1f}..{hi:.1f} kW")
    return Setpoint(limit_kw + 0.0)


def check_withdraw(settings: Iec104Settings, on: bool) -> Withdraw | Rejected:
    if not settings.commands:
        return Rejected("not allowed: [iec104] commands = false (monitoring only)")
    if not on:
        return Rejected("not allowed: only ON withdraws the setpoint (OFF does nothing)")
    return Withdraw()
