"""Rig physics, computed lazily: each rig's power is an analytic first-order ramp from its
last setpoint change, so nothing ticks per rig and 50,000 rigs cost nothing while idle.

P(t) = target + (p0 - target) * exp(-(t - t0) / tau)

The ramp state lives in numpy arrays so a site-wide sum is one vector expression.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

# Time constant as a fraction of a model's sleep/wake time: 6 tau reach 99.75% of the step.
RAMP_TAUS_PER_TIME = 6.0
# A rig this far from its setpoint is still ramping (a first-order ramp never quite arrives).
RAMPING_W = 1.0

FloatArray = npt.NDArray[np.float64]


class RampBank:
    """First-order power ramps for a slice of rigs, indexed 0..n-1."""

    def __init__(self, initial_w: list[float], now_s: float) -> None:
        n = len(initial_w)
        self.t0 = np.full(n, now_s, dtype=np.float64)
        self.p0 = np.asarray(initial_w, dtype=np.float64)
        self.target = self.p0.copy()
        self.tau = np.ones(n, dtype=np.float64)

    def __len__(self) -> int:
        return int(self.p0.shape[0])

    def power_w(self, i: int, now_s: float) -> float:
        dt = max(0.0, now_s - float(self.t0[i]))
        target = float(self.target[i])
        return target + (float(self.p0[i]) - target) * math.exp(-dt / float(self.tau[i]))

    def power_all_w(self, now_s: float) -> FloatArray:
        dt = np.maximum(0.0, now_s - self.t0)
        result: FloatArray = self.target + (self.p0 - self.target) * np.exp(-dt / self.tau)
        return result

    def ramping(self, power_w: FloatArray) -> bool:
        """Whether some rig, drawing power_w (power_all_w), is still moving to its target."""
        return bool(np.any(np.abs(power_w - self.target) > RAMPING_W))

    def set_target(self, i: int, now_s: float, target_w: float, ramp_time_s: float) -> None:
        """Start a new ramp from wherever the rig is now."""
        self.p0[i] = self.power_w(i, now_s)
        self.t0[i] = now_s
        self.target[i] = target_w
        self.tau[i] = max(0.05, ramp_time_s / RAMP_TAUS_PER_TIME)

    def target_w(self, i: int) -> float:
        return float(self.target[i])


def aux_power_w(
    rig_power_w: float,
    nominal_total_w: float,
    base_w: float,
    fraction: float,
    loss_fraction: float,
) -> float:
    """Cooling follows IT load, transformer copper losses grow with the load squared."""
    load = rig_power_w / nominal_total_w if nominal_total_w > 0 else 0.0
    return base_w + fraction * rig_power_w + loss_fraction * nominal_total_w * load * load
