"""Simulated power meters: grid and container feeders, served over Modbus by a gateway."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

from minerd.clock import Clock
from minerd.model import MeterRole, RegisterMap
from minerd.sim.catalog import meter_map

METER_FAULTS = frozenset({"offline", "frozen", "modbus_exception"})
PHASE_SPLIT = (0.336, 0.331, 0.333)
NOMINAL_V = 230.0
POWER_FACTOR = 0.99
# Profiles that describe blocks of one physical device: a real UMG 604 answers its 1xxx block
# and its 19000 block at once, so the simulated one serves both, whichever a site reads.
SAME_DEVICE: Final = (frozenset({"janitza-umg604", "janitza-umg604-legacy"}),)


def served_maps(regmap: RegisterMap) -> tuple[RegisterMap, ...]:
    """The profile first, then every other block the same device answers."""
    group = next((g for g in SAME_DEVICE if regmap.name in g), frozenset({regmap.name}))
    maps = (regmap, *(meter_map(n) for n in sorted(group - {regmap.name})))
    taken: dict[int, str] = {}
    for m in maps:
        if m.function_code != regmap.function_code:
            raise ValueError(f"{m.name}: function code differs from {regmap.name}")
        for p in m.points:
            for address in range(p.address, p.address + p.register_count):
                if taken.setdefault(address, m.name) != m.name:
                    raise ValueError(f"{m.name}: {p.name} overlaps {taken[address]} at {address}")
    return maps


class MeterSim:
    """One meter: instantaneous power set by the site, energy integrated over sim time."""

    def __init__(
        self,
        name: str,
        role: MeterRole,
        regmap: RegisterMap,
        unit_id: int,
        container: str,
        noise_fraction: float,
        rng: random.Random,
        clock: Clock,
    ) -> None:
        self.name = name
        self.role = role
        self.regmap = regmap
        self.served_maps = served_maps(regmap)
        self.unit_id = unit_id
        self.container = container
        self.noise_fraction = noise_fraction
        self.rng = rng
        self.clock = clock
        self.power_w = 0.0
        self.energy_import_kwh = 1_000.0 + 10.0 * unit_id
        self.modbus_fault = ""
        self.host = ""
        self.port = 0
        self._last_s: float | None = None
        self.power_source: Callable[[], float] | None = None  # live power at read time

    def advance(self, now_s: float, power_w: float) -> None:
        """Integrate energy at the power held since the last step, then take the new power."""
        if self._last_s is not None and now_s > self._last_s:
            self.energy_import_kwh += max(0.0, self.power_w) * (now_s - self._last_s) / 3.6e6
        self._last_s = now_s
        self.power_w = power_w

    def energy_now_kwh(self, power_w: float) -> float:
        """The counter now: integrated so far plus the part since the last step, at the
        power held since that step (what the next step integrates too), so the counter never
        steps back between reads, as a real one never does. power_w: kept for callers."""
        if self._last_s is None:
            return self.energy_import_kwh
        dt_s = max(0.0, self.clock.now_s() - self._last_s)
        return self.energy_import_kwh + max(0.0, self.power_w) * dt_s / 3.6e6

    def register_values(self) -> dict[str, float]:
        live = self.power_source() if self.power_source is not None else self.power_w
        total = live * (1.0 + self.rng.gauss(0.0, self.noise_fraction))
        values: dict[str, float] = {
            "power_w": total,
            "energy_import_kwh": self.energy_now_kwh(live),
            "energy_export_kwh": 0.0,
            "frequency_hz": 50.0 + self.rng.gauss(0.0, 0.01),
            "power_factor": POWER_FACTOR,
        }
        for i, share in enumerate(PHASE_SPLIT, start=1):
            volts = NOMINAL_V + self.rng.gauss(0.0, 0.4)
            phase_w = total * share
            values[f"power_l{i}_w"] = phase_w
            values[f"voltage_l{i}_v"] = volts
            values[f"current_l{i}_a"] = phase_w / (volts * POWER_FACTOR)
        return values

    def register_write(self, name: str, value: float) -> bool:
        return False  # meters are read only

    def truth(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role.value,
            "profile": self.regmap.name,
            "container": self.container,
            "endpoint": f"tcp://{self.host}:{self.port}",
            "host": self.host,
            "port": self.port,
            "unit_id": self.unit_id,
            "power_w": round(self.power_w, 1),
            "energy_import_kwh": round(self.energy_import_kwh, 4),
            "faults": [self.modbus_fault] if self.modbus_fault else [],
        }
