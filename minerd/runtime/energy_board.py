"""The EnergyView (runtime.energy_view) of the control cycle's EnergyTracker, for the API."""

from __future__ import annotations

from collections.abc import Callable

from minerd.runtime.energy_tracker import EnergyTracker
from minerd.runtime.energy_view import EnergyNow


class EnergyBoard:
    """Reads the tracker the cycle holds now (`tracker()`; None: awards not run)."""

    def __init__(self, tracker: Callable[[], EnergyTracker | None]) -> None:
        self._tracker = tracker

    def now(self) -> EnergyNow | None:
        t = self._tracker()
        st = t.status() if t is not None else None
        if t is None or st is None:
            return None
        c = t.count
        return EnergyNow(
            award_id=st.award.award_id,
            start_s=st.award.start_s,
            end_s=st.award.end_s,
            award_kwh=st.award.energy_kwh,
            energy_kwh=st.energy_kwh,
            pace_kw=st.pace.limit_kw,
            from_register=c is not None and c.register_kwh is not None and not st.register_fault,
            register_fault=st.register_fault,
            register_faults=t.register_faults,
        )
