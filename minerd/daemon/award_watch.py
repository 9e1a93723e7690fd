"""What the energy award alert rules (alerts.awardcheck) are told: per settlement interval the
seconds a power limit held the site below the award's pace (a cycle listener), the last
interval closed (a settlement listener), and the pace's register faults.

A power limit holds the site back when the limit the cycle worked to is not the award's pace
(the tracker's cap() returns the pace, with the award's id, only while it is the lower one)
and is below the award's mean power: a limit above that mean would have let an on-pace site
draw its award, so a pace raised above it by a fleet falling behind does not excuse the
fleet. Both figures survive a restart in the state store, so an alert in force stays in
force, and a shortfall caused by a limit before the restart is not blamed on the fleet."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from minerd.alerts.awardcheck import SettledInterval
from minerd.clock import Clock
from minerd.errors import StorageError
from minerd.model import EffectiveLimit, SettlementRecord
from minerd.runtime.energy_tracker import EnergyTracker
from minerd.storage.state import JsonValue, StateStore

log = logging.getLogger("minerd.awards")

STATE_WATCH = "alerts.award_watch"
MAX_STEP_S = 60.0  # a longer gap between cycles is not counted as limited (nothing ran)
SAVE_EVERY_S = 30.0  # limited seconds are saved at least this often while they grow


class _Decision(Protocol):
    @property
    def limit(self) -> EffectiveLimit: ...


class CycleSeen(Protocol):
    """What the watch reads of a runtime.cycle.CycleResult: the limit the cycle worked to."""

    @property
    def decision(self) -> _Decision: ...


class AwardWatch:
    def __init__(
        self,
        tracker: Callable[[], EnergyTracker | None],
        tz: ZoneInfo,
        clock: Clock,
        state: StateStore | None = None,
    ) -> None:
        self._tracker = tracker
        self._tz = tz
        self._clock = clock
        self._state = state
        self._limited_s: dict[float, float] = {}  # interval start -> seconds held below pace
        self._was_limited = False
        self._last_s: float | None = None
        self._unsaved_s = 0.0  # limited seconds counted since the last save
        self.settled: SettledInterval | None = None

    # ------------------------------------------------------------ listeners

    def on_cycle(self, result: CycleSeen) -> None:
        now_s = self._clock.now_s()
        step_s = 0.0 if self._last_s is None else now_s - self._last_s
        self._last_s = now_s
        t = self._tracker()
        st = t.status() if t is not None else None
        if st is None:
            self._was_limited = False
            return
        lim, award = result.decision.limit, st.award
        mean_kw = award.energy_kwh * 3600.0 / award.interval_s if award.interval_s > 0 else 0.0
        limited = lim.quota_id != award.award_id and lim.limit_kw < mean_kw
        if limited and 0.0 < step_s <= MAX_STEP_S:
            start = award.start_s
            self._limited_s[start] = self._limited_s.get(start, 0.0) + step_s
            self._unsaved_s += step_s
        if limited != self._was_limited or self._unsaved_s >= SAVE_EVERY_S:
            self._was_limited = limited
            self._save()

    def on_closed(self, record: SettlementRecord) -> None:
        start_s = record.interval_start_s
        limited_s = self._limited_s.pop(start_s, 0.0)
        for old in [s for s in self._limited_s if s < start_s]:
            del self._limited_s[old]
        self.settled = SettledInterval(
            interval_start_s=start_s,
            interval_s=record.interval_s,
            label=self._label(start_s, record.interval_end_s),
            award_id=record.award_id,
            awarded_kwh=record.awarded_kwh,
            imported_kwh=record.imported_kwh,
            limited_s=limited_s,
        )
        self._save()

    # ------------------------------------------------------------ for the alert facts

    def register(self) -> tuple[int, str]:
        """(faults judged since start, why the register is not believed now or "")."""
        t = self._tracker()
        if t is None:
            return 0, ""
        st = t.status()
        return t.register_faults, st.register_fault if st is not None else ""

    # ------------------------------------------------------------ restart

    def restore(self) -> None:
        if self._state is None:
            return
        try:
            saved = self._state.get(STATE_WATCH)
        except StorageError:
            return
        if not isinstance(saved, dict):
            return
        try:
            limited = saved.get("limited_s", {})
            if isinstance(limited, dict):
                self._limited_s = {float(k): float(v) for k, v in limited.items()}  # type: ignore[arg-type]
            last = saved.get("settled")
            if isinstance(last, dict):
                self.settled = _settled_from_json(last)
        except (KeyError, TypeError, ValueError):
            log.warning("saved award watch unreadable: award alerts start afresh")

    def _save(self) -> None:
        self._unsaved_s = 0.0
        if self._state is None:
            return
        s = self.settled
        value: dict[str, JsonValue] = {
            "limited_s": {repr(k): v for k, v in self._limited_s.items()},
            "settled": None
            if s is None
            else {
                "interval_start_s": s.interval_start_s,
                "interval_s": s.interval_s,
                "label": s.label,
                "award_id": s.award_id,
                "awarded_kwh": s.awarded_kwh,
                "imported_kwh": s.imported_kwh,
                "limited_s": s.limited_s,
            },
        }
        with contextlib.suppress(StorageError):  # counted by storage health
            self._state.set_many({STATE_WATCH: value}, durable=False)

    def _label(self, start_s: float, end_s: float) -> str:
        a = datetime.fromtimestamp(start_s, self._tz)
        b = datetime.fromtimestamp(end_s, self._tz)
        return f"{a:%Y-%m-%d %H:%M}\u2013{b:%H:%M} {a:%Z}"


def _settled_from_json(d: dict[str, JsonValue]) -> SettledInterval:
    def num(key: str) -> float:
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(key)
        return float(v)

    awarded = d.get("awarded_kwh")
    award_id = d.get("award_id")
    return SettledInterval(
        interval_start_s=num("interval_start_s"),
        interval_s=num("interval_s"),
        label=str(d.get("label", "")),
        award_id=award_id if isinstance(award_id, str) else None,
        awarded_kwh=None if awarded is None else num("awarded_kwh"),
        imported_kwh=num("imported_kwh"),
        limited_s=num("limited_s"),
    )
