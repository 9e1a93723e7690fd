"""How the loop's error grows with load: a least-squares slope over settled cycles.

The loop's model is linear: import = rig power x (1 + aux_fraction) + aux_base. A real site
adds load that grows faster than that (transformer copper losses grow with the load
squared), so the error the loop learns at one operating point is wrong at the next: learnt
at a 30 % block it lent 1.8 kW that the 75 % block did not have (there the meter read 1.3 kW
over the model), and the raise to 75 % went over its limit. Fitting error = a + slope x rig
power over the settled cycles (the only ones where the readings and the meter agree) gives
the slope, and the loop carries its correction up that slope when it raises.

Only a rising slope is used (a falling one would lend more on a raise), and only once the
settled cycles span operating points far enough apart to tell a slope from meter noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

SLOPE_MEMORY_S = 3600.0  # settled time over which old samples fade (e^-1)
MIN_SAMPLES = 20.0  # settled cycles (forgotten weight) before any slope is used
MIN_SPREAD_FRACTION = 0.1  # rig power's standard deviation over its mean, at least
MAX_SLOPE = 0.1  # kW of error per kW of rig power: a wild fit cannot starve the site


@dataclass(frozen=True)
class ErrorSlope:
    """Exponentially forgotten sums of settled (rig kW, error kW) samples."""

    n: float = 0.0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    sxy: float = 0.0

    def add(self, rig_kw: float, error_kw: float, dt_s: float) -> ErrorSlope:
        keep = max(0.0, 1.0 - dt_s / SLOPE_MEMORY_S)
        return ErrorSlope(
            n=self.n * keep + 1.0,
            sx=self.sx * keep + rig_kw,
            sy=self.sy * keep + error_kw,
            sxx=self.sxx * keep + rig_kw * rig_kw,
            sxy=self.sxy * keep + rig_kw * error_kw,
        )

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: object) -> ErrorSlope:
        """The fit as to_json wrote it; an empty fit for anything else (a restart then
        learns it again, as on a first start)."""
        if not isinstance(value, Mapping):
            return cls()
        sums = {f.name: value.get(f.name) for f in fields(cls)}
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in sums.values()):
            return cls()
        return cls(**{k: float(v) for k, v in sums.items()})  # type: ignore[arg-type]

    def slope(self) -> float:
        """kW of error per kW of rig power, 0..MAX_SLOPE; 0 until the samples tell one."""
        if self.n < MIN_SAMPLES:
            return 0.0
        mean_x = self.sx / self.n
        var_x = self.sxx / self.n - mean_x * mean_x
        if mean_x <= 0.0 or var_x < (MIN_SPREAD_FRACTION * mean_x) ** 2:
            return 0.0
        cov = self.sxy / self.n - mean_x * (self.sy / self.n)
        return min(MAX_SLOPE, max(0.0, cov / var_x))
