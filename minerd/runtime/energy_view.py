"""What the API may ask about the energy pace of the interval in progress: an interface
without control's imports (runtime.energy_board implements it over the EnergyTracker)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class EnergyNow:
    """The pacing's own count of the award in force (runtime.energy_tracker): what the
    controller steers by, beside the settlement's count (runtime.award_view)."""

    award_id: str
    start_s: float
    end_s: float
    award_kwh: float
    energy_kwh: float  # imported so far, as the pace counts it
    pace_kw: float  # the power target that ends the interval on its award
    from_register: bool  # counted from the meter's energy register (else integrated power)
    register_fault: str  # "" or why the register is not believed in this interval
    register_faults: int  # register faults judged since the daemon started

    @property
    def remaining_kwh(self) -> float:
        return self.award_kwh - self.energy_kwh


class EnergyView(Protocol):
    def now(self) -> EnergyNow | None:
        """None while no award is in force."""
        ...
