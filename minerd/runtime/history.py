"""The site's last hour in memory, for the status page's chart (Grafana reads InfluxDB)."""

from __future__ import annotations

import collections

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
        self._points.append(
            HistoryPoint(
                at_s=at_s,
                grid_import_kw=result.snapshot.grid_import_w / 1000.0,
                limit_kw=d.limit.limit_kw,
                rig_budget_kw=d.rig_budget_w / 1000.0,
                hashrate_ths=result.snapshot.hashrate_ths,
            )
        )

    def between(self, from_s: float, to_s: float) -> list[HistoryPoint]:
        return [p for p in self._points if from_s <= p.at_s <= to_s]
