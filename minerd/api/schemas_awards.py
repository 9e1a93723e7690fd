"""The energy award of the interval in progress, as /api/v1/site shows it (issue 15)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from minerd.api.times import to_dt
from minerd.runtime.award_view import AwardNow


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
