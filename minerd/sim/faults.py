"""Fault names the simulator can inject, and the errors its control surface raises."""

from __future__ import annotations

from minerd.errors import MinerdError
from minerd.sim.meters import METER_FAULTS
from minerd.sim.rig import RIG_FAULTS

__all__ = ["METER_FAULTS", "RIG_FAULTS", "UnknownDevice", "UnknownFault"]


class UnknownDevice(MinerdError, LookupError):
    """A fault was aimed at a device the simulated site does not have."""


class UnknownFault(MinerdError, ValueError):
    """The fault name is not one the device kind supports."""
