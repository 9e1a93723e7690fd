"""The site's last hour in memory, for the status page's chart (Grafana reads InfluxDB).

Unknown is not zero: before the grid meter (or every rig) has been read once, the import
(or the hashrate) of a point is NaN, which the API answers as null, never 0.
"""

from __future__ import annotations

import collections
import math

from minerd.model import FleetSnapshot
from minerd.runtime.cycle import CycleResult
from minerd.runtime.service import HistoryPoint


class SiteHistory:
    """One point per `step_s` of control cycles, `keep_s` deep; a control-cycle listener."""

    def __init__(self, step_s: float = 10.0, keep_s: float = 3600.0) -> None:
        self.step_s = step_s
        self._points: collections.deque[HistoryPoint] = collections.deque(
            maxlen=max(1, int(keep_s / step_s))
        )

    def __call__(self, result: CycleResult) -> None:
        at_s = result.snapshot.taken_at_s
        if self._points and at_s - self._points[-1].at_s < self.step_s:
            return
        d = result.decision
        snap = result.snapshot
        self._points.append(
            HistoryPoint(
                at_s=at_s,
                grid_import_kw=snap.grid_import_w / 1000.0 if snap.grid_read else math.nan,
                limit_kw=d.limit.limit_kw,
                rig_budget_kw=d.rig_budget_w / 1000.0,
                hashrate_ths=snap.hashrate_ths if rigs_read(snap) else math.nan,
            )
        )

    def between(self, from_s: float, to_s: float) -> list[HistoryPoint]:
        return [p for p in self._points if from_s <= p.at_s <= to_s]


def rigs_read(snap: FleetSnapshot) -> bool:
    """Every rig has been polled at least once since start (a rig never polled has a
    placeholder reading taken at 0)."""
    return all(r.reading.taken_at_s > 0.0 for r in snap.rigs)
