"""Query parameters shared by the routes: time spans."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query

from minerd.api.problems import ApiError
from minerd.api.times import IsoTime, to_s

DAY_S = 86_400.0
MAX_SPAN_S = 366 * DAY_S


def span(
    from_: datetime | None, to: datetime | None, default_from_s: float, default_to_s: float
) -> tuple[float, float]:
    """The asked span; a missing bound takes its default, or keeps the default width
    from the given bound when the default would fall on the wrong side of it."""
    width_s = default_to_s - default_from_s
    lo = default_from_s if from_ is None else to_s(from_)
    hi = default_to_s if to is None else to_s(to)
    if to is None and hi <= lo:
        hi = lo + width_s
    if from_ is None and lo >= hi:
        lo = hi - width_s
    if hi <= lo:
        raise ApiError(422, "to: must be after from", "to")
    if hi - lo > MAX_SPAN_S:
        raise ApiError(422, "to: the span may not exceed 366 days", "to")
    return lo, hi


FromQuery = Annotated[IsoTime | None, Query(alias="from", description="ISO 8601 with offset")]
ToQuery = Annotated[IsoTime | None, Query(description="ISO 8601 with offset")]
