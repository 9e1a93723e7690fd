"""The settlement accumulator of the running site: a cycle listener that closes each
settlement interval (control.settlement) and stores it with its award.

Each cycle with a fresh grid meter and a new reading gives one sample, stamped with the
time the meters were read: the grid import, and the meters' energy registers when every
grid meter has one. Seconds over a power limit are summed from the compliance minutes the
cycle closed (the same judgement /api/v1/compliance shows, against the limit in force, not
the award's pace). A closed interval is stored (storage.awards
settlement table) with the award in force for it and handed to `on_closed` listeners
(telemetry). The interval in progress is saved every SAVE_EVERY cycles, so a restart goes on
with the energy so far (the meter's register covers the time it was down).

Energy so far: `current()` gives the open interval's award and imported energy; the pacing
(runtime.energy_tracker) keeps its own count, this one settles.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Protocol
from zoneinfo import ZoneInfo

from minerd.control.settlement import OpenInterval, SettlementAccumulator, SettlementSample
from minerd.errors import StorageError
from minerd.intervals import interval_bounds
from minerd.model import ComplianceRecord, EnergyAward, FleetSnapshot, SettlementRecord
from minerd.runtime.award_view import AwardNow
from minerd.storage import Stores
from minerd.storage.awards import awarded_in

log = logging.getLogger("minerd.settlement")

STATE_OPEN = "settlement.open_interval"
SAVE_EVERY = 10
AWARD_REFRESH_CYCLES = 5
HELD_MAX = 1000  # closed records the disk refused, kept until it takes writes again


class SettledResult(Protocol):
    """What the keeper reads of a runtime.cycle.CycleResult."""

    @property
    def snapshot(self) -> FleetSnapshot: ...

    @property
    def compliance_minutes(self) -> tuple[ComplianceRecord, ...]: ...


@dataclass(frozen=True)
class CurrentInterval:
    """The settlement interval in progress (the API's `award` block)."""

    start_s: float
    end_s: float
    award: EnergyAward | None
    imported_kwh: float  # so far, as it would settle now
    peak_kw: float
    seconds_over: float  # in the minutes closed so far
    note: str

    @property
    def remaining_kwh(self) -> float | None:
        return None if self.award is None else self.award.energy_kwh - self.imported_kwh


def _register_kwh(snap: FleetSnapshot) -> float | None:
    readings = [m.reading for m in snap.grid_meters]
    values = [r.energy_import_kwh if r is not None else None for r in readings]
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def _read_at_s(snap: FleetSnapshot) -> float:
    """When the grid meters' figures were taken (their mean, for several meters)."""
    times = [m.reading.taken_at_s for m in snap.grid_meters if m.reading is not None]
    return sum(times) / len(times) if times else snap.taken_at_s


class SettlementKeeper:
    def __init__(self, stores: Stores, interval_s: float, tz: ZoneInfo) -> None:
        self.stores = stores
        self.interval_s = interval_s
        self.tz = tz
        self.acc = SettlementAccumulator(interval_s, tz, max_hold_s=60.0)
        self.on_closed: list[Callable[[SettlementRecord], None]] = []
        self._over_s: dict[float, float] = {}  # interval start -> seconds over (minutes)
        self._award: EnergyAward | None = None
        self._award_for: float | None = None
        self._award_age = 0
        self._cycles = 0
        self._held: list[SettlementRecord] = []
        self._last_t_s: float | None = None

    # ------------------------------------------------------------ restart

    def restore(self, now_s: float) -> None:
        """The interval in progress before a restart, if it is still the current one."""
        try:
            saved = self.stores.state.get(STATE_OPEN)
        except StorageError:
            return
        if not isinstance(saved, dict):
            return
        try:
            # Fields added since the save keep their defaults (missing required ones: TypeError).
            fields = {k: saved[k] for k in OpenInterval.__dataclass_fields__ if k in saved}
            opened = OpenInterval(**fields)  # type: ignore[arg-type]
            over = float(saved.get("minutes_over_s", 0.0))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            log.warning("saved settlement interval unreadable: counted afresh")
            return
        if not opened.start_s <= now_s < opened.end_s:
            return
        self.acc = replace(self.acc, open=opened)
        self._over_s[opened.start_s] = over
        log.info(
            "settlement interval from %.0f restored: %.3f kWh integrated over %.0f s",
            opened.start_s,
            opened.integrated_kwh,
            opened.covered_s,
        )

    # ------------------------------------------------------------ each cycle

    def __call__(self, result: SettledResult) -> None:
        self.on_cycle(result)

    def on_cycle(self, result: SettledResult) -> None:
        for m in result.compliance_minutes:
            start_s, _ = interval_bounds(m.interval_start_s, self.interval_s, self.tz)
            self._over_s[start_s] = self._over_s.get(start_s, 0.0) + m.seconds_over
        snap = result.snapshot
        if not snap.grid_fresh:
            return
        # Stamped when the meters were read, not when the cycle ran: the register is
        # carried to each interval boundary by the import held since its reading, and a
        # reading stamped late carries it short by the import times the delay. At 20x
        # speed (readings up to 3 sim s older than the cycle), an interval opening with a
        # 47 -> 23 kW cut settled up to 3.7 % high.
        t_s = _read_at_s(snap)
        if self._last_t_s is not None and t_s <= self._last_t_s:
            return  # no new reading since the last sample
        sample = SettlementSample(
            t_s=t_s,
            import_kw=snap.grid_import_w / 1000.0,
            limit_kw=math.inf,  # seconds over come from the compliance minutes
            register_kwh=_register_kwh(snap),
        )
        self.acc, closed = self.acc.add(sample)
        self._last_t_s = t_s
        for record in closed:
            self._close(record)
        self._cycles += 1
        if self._cycles % SAVE_EVERY == 0:
            self.save()

    def save(self) -> None:
        cur = self.acc.open
        if cur is None:
            return
        value = {**asdict(cur), "minutes_over_s": self._over_s.get(cur.start_s, 0.0)}
        with contextlib.suppress(StorageError):  # counted by storage health
            self.stores.state.set_many({STATE_OPEN: value}, durable=False)

    def _close(self, record: SettlementRecord) -> None:
        start_s, end_s = record.interval_start_s, record.interval_end_s
        try:
            awarded_kwh, award_id = awarded_in(
                self.stores.awards.in_range(start_s, end_s), start_s, end_s
            )
        except StorageError:  # the report joins the award again when it is read
            award = self._award_of(start_s, end_s)
            awarded_kwh = None if award is None else award.energy_kwh
            award_id = None if award is None else award.award_id
        over_s = self._over_s.pop(record.interval_start_s, 0.0)
        for start in [s for s in self._over_s if s < record.interval_start_s]:
            del self._over_s[start]
        record = replace(
            record,
            seconds_over=over_s,
            awarded_kwh=awarded_kwh,
            award_id=award_id,
        )
        self._held.append(record)
        try:
            for r in self._held:
                self.stores.awards.put_settlement(r)
            self._held.clear()
        except StorageError:
            del self._held[:-HELD_MAX]
        dev = record.deviation_pct
        log.info(
            "settlement %s: imported %.3f MWh, awarded %s%s",
            record.interval_start_s,
            record.imported_kwh / 1000.0,
            "none" if awarded_kwh is None else f"{awarded_kwh / 1000.0:.3f} MWh",
            "" if dev is None else f" ({dev:+.2f} %)",
        )
        for listener in self.on_closed:
            try:
                listener(record)
            except Exception:  # a sink must never stop settlement
                log.exception("settlement listener %r failed", listener)

    # ------------------------------------------------------------ the API's view

    def awards_changed(self) -> None:
        self._award_for = None

    def current(self, now_s: float) -> CurrentInterval:
        cur = self.acc.open
        if cur is None or not cur.start_s <= now_s < cur.end_s:
            start_s, end_s = interval_bounds(now_s, self.interval_s, self.tz)
            cur = OpenInterval(start_s, end_s)
        imported, note = cur.imported_kwh(self._last_t_s or now_s)
        return CurrentInterval(
            start_s=cur.start_s,
            end_s=cur.end_s,
            award=self._award_of(cur.start_s, cur.end_s),
            imported_kwh=imported,
            peak_kw=cur.peak_kw,
            seconds_over=self._over_s.get(cur.start_s, 0.0),
            note=note,
        )

    def _award_of(self, start_s: float, end_s: float) -> EnergyAward | None:
        """The award in force for the interval (cached for the interval in progress)."""
        self._award_age += 1
        if self._award_for == start_s and self._award_age < AWARD_REFRESH_CYCLES:
            return self._award
        try:
            found = self.stores.awards.in_range(start_s, end_s)
        except StorageError:
            return self._award if self._award_for == start_s else None
        award = next((a for a in found if a.start_s == start_s and a.end_s == end_s), None)
        self._award, self._award_for, self._award_age = award, start_s, 0
        return award


class AwardBoard:
    """An AwardView (runtime.award_view): the settlement count joined with the pacing's
    figure (runtime.energy_tracker); `pace_kw` returns None when no pace is in force."""

    def __init__(
        self, keeper: SettlementKeeper, pace_kw: Callable[[], float | None] | None = None
    ) -> None:
        self.keeper = keeper
        self._pace_kw = pace_kw

    def now(self, now_s: float) -> AwardNow:
        cur = self.keeper.current(now_s)
        a = cur.award
        pace = self._pace_kw() if self._pace_kw is not None and a is not None else None
        return AwardNow(
            start_s=cur.start_s,
            end_s=cur.end_s,
            award_id=None if a is None else a.award_id,
            awarded_kwh=None if a is None else a.energy_kwh,
            imported_kwh=cur.imported_kwh,
            remaining_kwh=cur.remaining_kwh,
            pace_kw=pace,
            peak_kw=cur.peak_kw,
            seconds_over=cur.seconds_over,
            note=cur.note,
        )
