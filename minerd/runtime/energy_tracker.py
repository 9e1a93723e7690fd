"""The energy award of the interval in force, the energy imported so far, and its pace.

Every control cycle the cycle hands its snapshot here: the grid meter's sample is counted
(control.energy_pace.count) against the award covering now, and the pace limit comes back
as an EffectiveLimit with origin "award" when it is the lower one. The count is written to
the state store every SAVE_EVERY_S, so a restart mid-interval goes on from it; the time the
process was down is counted from the meter's register when it has one, else at max_kw.
A new interval's count goes on from the last reading before its start, so the register
counts across the edge however late a cycle or however blind the meter. A register fault
is logged once per interval and counted in register_faults (and status().register_fault)
for alerts; closed intervals (award, energy counted, fault) stay in `closed`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Protocol

from minerd.control.energy_pace import (
    S_PER_H,
    EnergyCount,
    MeterSample,
    Pace,
    PaceConfig,
    count,
    follow,
    pace,
    start_count,
)
from minerd.control.quota import ORIGIN_FAILSAFE
from minerd.errors import StorageError
from minerd.model import EffectiveLimit, EnergyAward, FleetSnapshot
from minerd.storage.state import JsonValue, StateStore

log = logging.getLogger("minerd.energy")

ORIGIN_AWARD = "award"
STATE_ENERGY = "control.energy_count"
SAVE_EVERY_S = 5.0  # the count is written this often: a crash loses no more than that
AWARDS_REFRESH_S = 5.0  # awards are re-read this often (and at once when told they changed)
CLOSED_KEPT = 200


class AwardSource(Protocol):
    def in_range(self, start_s: float, end_s: float) -> list[EnergyAward]:
        """Awards whose interval overlaps [start_s, end_s)."""
        ...


@dataclass
class ListAwards:
    """Awards held in memory (tests, and a site without an award store)."""

    awards: list[EnergyAward]

    def in_range(self, start_s: float, end_s: float) -> list[EnergyAward]:
        return [a for a in self.awards if a.start_s < end_s and a.end_s > start_s]


@dataclass(frozen=True)
class ClosedInterval:
    award: EnergyAward
    energy_kwh: float
    fault: str

    @property
    def share(self) -> float:
        return self.energy_kwh / self.award.energy_kwh if self.award.energy_kwh > 0 else 0.0


@dataclass(frozen=True)
class EnergyStatus:
    """The current interval as the API, alerts and telemetry show it."""

    award: EnergyAward
    energy_kwh: float
    pace: Pace
    register_fault: str  # "" or why the meter's energy register is not believed


def winning_award(awards: Iterable[EnergyAward], t_s: float) -> EnergyAward | None:
    """The award covering t_s; of several, the most recently issued (a revision wins)."""
    best: EnergyAward | None = None
    for a in awards:
        if a.covers(t_s) and (
            best is None or (a.issued_at_s, a.award_id) > (best.issued_at_s, best.award_id)
        ):
            best = a
    return best


def meter_sample(snap: FleetSnapshot) -> MeterSample:
    """The grid meters as one: power summed; the register only if every meter has one."""
    grid = snap.grid_meters
    readings = [m.reading for m in grid if m.reading is not None]
    if not grid or len(readings) < len(grid):
        return MeterSample(snap.taken_at_s, 0.0, None, fresh=False, read=False)
    registers = [r.energy_import_kwh for r in readings]
    known = [e for e in registers if e is not None]
    energy = sum(known) if len(known) == len(registers) else None
    return MeterSample(
        taken_at_s=min(r.taken_at_s for r in readings),
        power_kw=sum(r.power_w for r in readings) / 1000.0,
        energy_kwh=energy,
        fresh=snap.grid_fresh,
        earliest_s=min(r.taken_at_s - r.read_window_s / 2.0 for r in readings),
        latest_s=max(r.taken_at_s + r.read_window_s / 2.0 for r in readings),
    )


class EnergyTracker:
    def __init__(
        self, awards: AwardSource, config: PaceConfig, state: StateStore | None = None
    ) -> None:
        self.awards = awards
        self.config = config
        self.state = state
        self.award: EnergyAward | None = None
        self.count: EnergyCount | None = None
        self.frozen_kw: float | None = None
        self.last_pace: Pace | None = None
        self.closed: deque[ClosedInterval] = deque(maxlen=CLOSED_KEPT)
        self.register_faults = 0  # faults seen since start (alert-able)
        self._cached: list[EnergyAward] = []
        self._cached_at_s: float | None = None
        self._restored: dict[str, JsonValue] | None = None
        self._saved_at_s: float | None = None
        self.restored_kwh: float | None = None  # energy so far restored at start, if any
        self._last_read: MeterSample | None = None  # the last cycle's sample with a reading
        self._fault_seen: tuple[float, str] | None = None
        # The loop settles some kW off the limit it is given: learnt while the pace binds.
        self.bias_kw = 0.0
        self._binding = False  # the pace was the limit in force last cycle

    # ------------------------------------------------------------ inputs

    def awards_changed(self) -> None:
        self._cached_at_s = None  # re-read on the next cycle

    def restore(self) -> None:
        """The count saved before a restart, if its interval is still running."""
        if self.state is None:
            return
        try:
            saved = self.state.get(STATE_ENERGY)
        except StorageError:
            log.warning("energy count could not be read: the interval is counted afresh")
            return
        if isinstance(saved, dict):
            self._restored = saved

    # ------------------------------------------------------------ each cycle

    def cap(self, limit: EffectiveLimit, snap: FleetSnapshot, now_s: float) -> EffectiveLimit:
        """limit, or the award's pace when lower (origin "award"; a fail-safe stays one)."""
        p = self.update(snap, now_s, worst_kw=limit.limit_kw)
        self._binding = (
            p is not None and p.limit_kw < limit.limit_kw and limit.origin != ORIGIN_FAILSAFE
        )
        if p is None or self.award is None or p.limit_kw >= limit.limit_kw:
            return limit
        origin = ORIGIN_FAILSAFE if limit.origin == ORIGIN_FAILSAFE else ORIGIN_AWARD
        return EffectiveLimit(p.limit_kw, origin, self.award.award_id)

    def update(self, snap: FleetSnapshot, now_s: float, worst_kw: float) -> Pace | None:
        sample = meter_sample(snap)
        # A blind meter: the worst the fail-safe path allows, or what was last seen if higher.
        if self.count is not None:
            worst_kw = max(worst_kw, self.count.last_power_kw)
        award = winning_award(self._awards(now_s), now_s)
        if award is not None and (self.award is None or award.start_s != self.award.start_s):
            self._begin(award, sample, now_s)
        elif award is None and self.award is not None:
            self._close(now_s)
        elif award is not None:
            self.award = award  # a revision of the same interval keeps its count
        if self.award is None or self.count is None:
            self._note_read(sample)
            return None
        before = self.count
        self.count = count(self.count, sample, now_s, worst_kw, self.config)
        self._note_fault(before, sample)
        last = self.last_pace
        if (
            self._binding
            and last is not None
            and sample.fresh
            and before.last_s is not None
            and before.pending_to_s is None
            and sample.taken_at_s > before.last_s
        ):
            dt_s = sample.taken_at_s - before.last_s
            self.bias_kw = follow(self.bias_kw, last.asked_kw, sample.power_kw, dt_s, self.config)
        p = pace(
            self.award.energy_kwh,
            self.count.energy_at_kwh(now_s),
            now_s,
            self.award.start_s,
            self.award.end_s,
            self.frozen_kw,
            self.config,
            self.bias_kw,
        )
        self.frozen_kw = p.frozen_kw
        self.last_pace = p
        self._note_read(sample)
        if self._saved_at_s is None or not 0.0 <= now_s - self._saved_at_s < SAVE_EVERY_S:
            self.save(now_s)
        return p

    def _note_read(self, sample: MeterSample) -> None:
        if sample.read:
            self._last_read = sample

    def status(self) -> EnergyStatus | None:
        if self.award is None or self.count is None or self.last_pace is None:
            return None
        return EnergyStatus(self.award, self.count.energy_kwh, self.last_pace, self.count.fault)

    # ------------------------------------------------------------ intervals

    def _awards(self, now_s: float) -> list[EnergyAward]:
        at = self._cached_at_s
        if at is None or now_s - at >= AWARDS_REFRESH_S or now_s < at:
            try:
                self._cached = self.awards.in_range(now_s, now_s + AWARDS_REFRESH_S + 1.0)
                self._cached_at_s = now_s
            except StorageError:
                log.debug("awards could not be read: the last ones read stay in force")
        return self._cached

    def _begin(self, award: EnergyAward, sample: MeterSample, now_s: float) -> None:
        carried = None
        if self.award is not None and self.count is not None:
            carried = _carry(self.count, award.start_s)
            self._close(now_s)
        self.award = award
        self.frozen_kw = None
        self.count = carried or self._from_saved(award, now_s) or self._fresh(award, sample, now_s)
        self.save(now_s)

    def _fresh(self, award: EnergyAward, sample: MeterSample, now_s: float) -> EnergyCount:
        last = self._last_read
        if last is not None and last.taken_at_s < award.start_s:
            # Running into the interval (no award before it): count on from the last reading
            # before its start, as from the end of an interval (the sample is counted next).
            seen = EnergyCount(
                start_s=award.start_s,
                last_s=last.taken_at_s,
                last_power_kw=last.power_kw,
                last_register_kwh=last.energy_kwh,
                pending_to_s=None if last.fresh else last.taken_at_s,
                last_first_s=last.earliest_s,
                last_final_s=last.latest_s,
            )
            carried = _carry(seen, award.start_s)
            if carried is not None:
                return carried
        # Started mid-interval with nothing saved: assume it ran on pace so far.
        elapsed = max(0.0, min(now_s, award.end_s) - award.start_s)
        energy = award.energy_kwh * elapsed / award.interval_s if award.interval_s > 0 else 0.0
        if elapsed > 1.0:
            log.info(
                "award %s: no count saved for this interval, %.0f s of it assumed on pace",
                award.award_id,
                elapsed,
            )
        at_s = sample.taken_at_s if sample.fresh else now_s
        return start_count(award.start_s, at_s, energy, sample)

    def _from_saved(self, award: EnergyAward, now_s: float) -> EnergyCount | None:
        saved, self._restored = self._restored, None
        if saved is None:
            return None
        try:
            c = _count_from_json(saved)
        except (KeyError, TypeError, ValueError):
            log.warning("saved energy count unreadable: the interval is counted afresh")
            return None
        if c.start_s != award.start_s or not award.start_s <= now_s < award.end_s:
            return None
        # Down since the last count: the worst case until the meter says (its register
        # settles the gap on the first fresh reading, see control.energy_pace.count).
        since = c.pending_to_s if c.pending_to_s is not None else c.last_s
        pending = c.pending_kwh
        if since is not None and now_s > since:
            pending += self.config.max_kw * (now_s - since) / S_PER_H
        self.frozen_kw = _opt_float(saved.get("frozen_kw"))
        self.restored_kwh = c.settled_kwh
        self.bias_kw = _opt_float(saved.get("bias_kw")) or 0.0
        log.info(
            "award %s: energy count restored, %.3f kWh counted, %.0f s down counted at "
            "the worst case until the meter reads",
            award.award_id,
            c.settled_kwh,
            0.0 if since is None else max(0.0, now_s - since),
        )
        return EnergyCount(
            start_s=c.start_s,
            integral_kwh=c.integral_kwh,
            register_kwh=c.register_kwh,
            last_s=c.last_s,
            last_power_kw=c.last_power_kw,
            last_register_kwh=c.last_register_kwh,
            pending_kwh=pending,
            pending_to_s=now_s,
            fault=c.fault,
            edge_s=c.edge_s,
            last_first_s=c.last_first_s,
            last_final_s=c.last_final_s,
        )

    def _close(self, now_s: float) -> None:
        award, c = self.award, self.count
        if award is not None and c is not None:
            # Up to the interval's end at the last power seen (readings lag a second or so).
            energy = c.energy_at_kwh(min(now_s, award.end_s))
            closed = ClosedInterval(award, energy, c.fault)
            self.closed.append(closed)
            log.info(
                "award %s closed: %.3f of %.3f kWh imported (%.2f %%)%s",
                award.award_id,
                closed.energy_kwh,
                award.energy_kwh,
                100.0 * closed.share,
                f", {c.fault}" if c.fault else "",
            )
        self.award = None
        self.count = None
        self.frozen_kw = None
        self.last_pace = None

    def _note_fault(self, before: EnergyCount, sample: MeterSample) -> None:
        c = self.count
        if c is None or not c.fault:
            return
        if self._fault_seen != (c.start_s, c.fault):
            self._fault_seen = (c.start_s, c.fault)
            self.register_faults += 1
            log.warning(
                "grid meter %s (%s kWh at %s, then %s kWh at %.1f; integrated %.3f kWh, "
                "register %s kWh so far): not believed for this interval, integrated power used",
                c.fault,
                before.last_register_kwh,
                before.last_s,
                sample.energy_kwh,
                sample.taken_at_s,
                c.integral_kwh,
                before.register_kwh,
            )

    # ------------------------------------------------------------ persistence

    def save(self, now_s: float) -> None:
        """Write the count (off the disk's critical path: a crash loses a few cycles, which
        the meter register or the worst case then covers)."""
        if self.state is None or self.count is None:
            return
        value: dict[str, JsonValue] = {k: v for k, v in asdict(self.count).items()}
        value["frozen_kw"] = self.frozen_kw
        value["bias_kw"] = self.bias_kw
        value["saved_s"] = now_s
        self._saved_at_s = now_s
        with contextlib.suppress(StorageError):  # counted by storage health
            self.state.set_many({STATE_ENERGY: value}, durable=False)


def _carry(c: EnergyCount, start_s: float) -> EnergyCount | None:
    """The next interval's count, going on from the last one's last reading: the next
    reading's step is split at the edge (control.energy_pace.count), so the register counts
    from the edge however late the cycle is or however blind the meter was."""
    final_s = c.final_s
    if c.last_s is None or final_s is None:
        return None
    return EnergyCount(
        start_s=start_s,
        integral_kwh=0.0,
        register_kwh=0.0 if c.last_register_kwh is not None else None,
        last_s=c.last_s,
        last_power_kw=c.last_power_kw,
        last_register_kwh=c.last_register_kwh,
        # Blind at the edge: the worst case counts from the edge on.
        pending_to_s=start_s if c.pending_to_s is not None else None,
        # A reading that may have been sampled after the edge: all of the next step is
        # the new interval's (counted high, never low).
        edge_s=start_s if final_s < start_s else None,
        last_first_s=c.last_first_s,
        last_final_s=c.last_final_s,
    )


def _opt_float(v: JsonValue) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"not a number: {v!r}")
    return float(v)


def _float(v: JsonValue) -> float:
    f = _opt_float(v)
    if f is None:
        raise TypeError("missing number")
    return f


def _count_from_json(d: dict[str, JsonValue]) -> EnergyCount:
    fault = d.get("fault", "")
    return EnergyCount(
        start_s=_float(d["start_s"]),
        integral_kwh=_float(d["integral_kwh"]),
        register_kwh=_opt_float(d.get("register_kwh")),
        last_s=_opt_float(d.get("last_s")),
        last_power_kw=_float(d.get("last_power_kw", 0.0)),
        last_register_kwh=_opt_float(d.get("last_register_kwh")),
        pending_kwh=_float(d.get("pending_kwh", 0.0)),
        pending_to_s=_opt_float(d.get("pending_to_s")),
        fault=fault if isinstance(fault, str) else "",
        edge_s=_opt_float(d.get("edge_s")),
        last_first_s=_opt_float(d.get("last_first_s")),
        last_final_s=_opt_float(d.get("last_final_s")),
    )
