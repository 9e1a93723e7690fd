"""The energy award of the interval in progress, as /api/v1/site shows it (issue 15)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from minerd.api.times import to_dt
from minerd.runtime.award_view import AwardNow
from minerd.runtime.energy_view import EnergyNow


class AwardNowOut(BaseModel):
    interval_start: datetime
    interval_end: datetime
    award_id: str | None
    awarded_kwh: float | None  # null: no award for this interval
    imported_kwh: float  # so far
    remaining_kwh: float | None  # awarded - imported
    pace_kw: float | None  # the power that ends the interval on its award; null: no pace
    peak_kw: float
    seconds_over: float  # over the power limit, in the minutes closed so far
    note: str

    @classmethod
    def of(cls, a: AwardNow) -> AwardNowOut:
        return cls(
            interval_start=to_dt(a.start_s),
            interval_end=to_dt(a.end_s),
            award_id=a.award_id,
            awarded_kwh=a.awarded_kwh,
            imported_kwh=round(a.imported_kwh, 3),
            remaining_kwh=None if a.remaining_kwh is None else round(a.remaining_kwh, 3),
            pace_kw=None if a.pace_kw is None else round(a.pace_kw, 3),
            peak_kw=a.peak_kw,
            seconds_over=a.seconds_over,
            note=a.note,
        )


class EnergyOut(BaseModel):
    """The award in force as the controller paces it (its own count, beside `award`'s
    settlement count): what it steers by and whether it believes the meter's register."""

    award_id: str
    interval_start: datetime
    interval_end: datetime
    award_kwh: float
    energy_kwh: float  # imported so far, as the pace counts it
    remaining_kwh: float  # award_kwh - energy_kwh
    pace_target_kw: float  # the power target that ends the interval on its award
    energy_source: str  # "register" (the meter's energy register) or "integrated" (power)
    register_fault: str  # "" or why the register is not believed in this interval
    register_faults: int  # register faults judged since the daemon started

    @classmethod
    def of(cls, e: EnergyNow) -> EnergyOut:
        return cls(
            award_id=e.award_id,
            interval_start=to_dt(e.start_s),
            interval_end=to_dt(e.end_s),
            award_kwh=round(e.award_kwh, 3),
            energy_kwh=round(e.energy_kwh, 3),
            remaining_kwh=round(e.remaining_kwh, 3),
            pace_target_kw=round(e.pace_kw, 3),
            energy_source="register" if e.from_register else "integrated",
            register_fault=e.register_fault,
            register_faults=e.register_faults,
        )
