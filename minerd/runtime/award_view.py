"""What the API may ask about the energy award of the interval in progress: an interface
without control's imports (runtime.settlement.AwardBoard implements it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class AwardNow:
    """The interval in progress as /api/v1/site and the status page show it."""

    start_s: float
    end_s: float
    award_id: str | None
    awarded_kwh: float | None  # None: no award for this interval
    imported_kwh: float  # so far (settlement's count)
    remaining_kwh: float | None
    pace_kw: float | None  # the power that ends the interval on its award (pacing)
    peak_kw: float
    seconds_over: float
    note: str


class AwardView(Protocol):
    def now(self, now_s: float) -> AwardNow: ...
