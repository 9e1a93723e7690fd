"""Helpers shared by the test doubles of minerd.runtime.service.SiteService."""

from __future__ import annotations

from minerd.runtime.service import HistoryPoint, SiteStatus


def flat_history(st: SiteStatus, from_s: float, to_s: float) -> list[HistoryPoint]:
    """Ten minutes of the current status, one point a minute: the shape the real Site keeps."""
    points = [
        HistoryPoint(
            st.taken_at_s - 60.0 * k,
            st.grid_import_kw,
            st.limit.limit_kw,
            st.rig_budget_kw,
            st.hashrate_ths,
        )
        for k in range(10, -1, -1)
    ]
    return [p for p in points if from_s <= p.at_s <= to_s]
