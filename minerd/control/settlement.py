"""Settlement accounting: the energy imported per settlement interval, against its award.

Pure: feed samples (grid import, the power limit in force, the meters' energy register),
collect closed SettlementRecords; intervals come from control.intervals (the site's time
zone). Samples are steps: each holds until the next (at most max_hold_s: a meter gap is
not filled in). The energy is the integral of the import; where every grid meter has an
energy register, its delta over the interval is the settled figure when it agrees with
the integral (register readings estimated at the boundaries by the import held since the
last reading). A register that goes backwards, or disagrees with the integral by more
than the tolerance, is not believed: the integral is settled and the note says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from minerd.intervals import interval_bounds
from minerd.model import SettlementRecord

_S_PER_H = 3600.0
# The register is believed within this share of the integral (or REGISTER_TOLERANCE_KWH).
REGISTER_TOLERANCE = 0.03
REGISTER_TOLERANCE_KWH = 0.5


@dataclass(frozen=True)
class SettlementSample:
    t_s: float
    import_kw: float
    limit_kw: float  # the power limit in force (inf: none known)
    register_kwh: float | None = None  # sum of the grid meters' import registers, if all have one


@dataclass(frozen=True)
class OpenInterval:
    """The interval in progress: what a restart restores and the site shows."""

    start_s: float
    end_s: float
    integrated_kwh: float = 0.0
    covered_s: float = 0.0
    peak_kw: float = 0.0
    seconds_over: float = 0.0
    samples: int = 0
    register_start_kwh: float | None = None  # estimated at start_s
    register_end_kwh: float | None = None  # estimated at the last time covered
    register_fault: str = ""
    # The first time any reading covers (None: start_s). Later than start_s when the
    # interval's first reading came after its start with nothing held into it (the daemon
    # starting, a meter out for longer than max_hold_s): neither the integral nor the
    # register (estimated back to here at most) knows that lead.
    data_from_s: float | None = None

    @property
    def uncounted_lead_s(self) -> float:
        """Seconds from start_s to the first reading, which no figure here counts."""
        if self.data_from_s is None:
            return 0.0
        return max(0.0, self.data_from_s - self.start_s)

    @property
    def register_kwh(self) -> float | None:
        if self.register_start_kwh is None or self.register_end_kwh is None:
            return None
        return self.register_end_kwh - self.register_start_kwh

    def imported_kwh(self, until_s: float) -> tuple[float, str]:
        """The energy from start_s to until_s as settled, and a note when the register is
        not believed (or fills a gap)."""
        reg = self.register_kwh
        if self.register_fault:
            return self.integrated_kwh, self.register_fault
        if reg is None:
            return self.integrated_kwh, ""
        tol = max(REGISTER_TOLERANCE * self.integrated_kwh, REGISTER_TOLERANCE_KWH)
        # A gap in the readings after the first one (a restart, a meter outage): the
        # register counted what the integral missed, up to the peak over the gap.
        lead_s = self.uncounted_lead_s
        gap_s = max(0.0, min(until_s, self.end_s) - self.start_s - self.covered_s - lead_s)
        if gap_s > 1.0:
            most = self.integrated_kwh + 1.2 * self.peak_kw * gap_s / _S_PER_H + tol
            if self.integrated_kwh - tol <= reg <= most:
                note = f"energy register covers a {gap_s:.0f} s gap in the readings"
                if lead_s > 1.0:
                    note += f"; no grid meter data for the first {lead_s:.0f} s"
                return reg, note
        if abs(reg - self.integrated_kwh) > tol:
            return self.integrated_kwh, (
                f"energy register {reg:.3f} kWh disagrees with integrated power "
                f"{self.integrated_kwh:.3f} kWh: integral settled"
            )
        return reg, ""


@dataclass(frozen=True)
class SettlementAccumulator:
    interval_s: float
    tz: ZoneInfo
    max_hold_s: float = 60.0
    last: SettlementSample | None = None
    open: OpenInterval | None = None

    def add(self, s: SettlementSample) -> tuple[SettlementAccumulator, list[SettlementRecord]]:
        """Take one sample; returns the new state and the intervals it closed."""
        if self.last is not None and s.t_s < self.last.t_s:
            return self, []  # out of order: the step before already covered it
        acc, closed = self._advance(s.t_s) if self.last is not None else (self, [])
        cur = acc.open
        if cur is None or not cur.start_s <= s.t_s < cur.end_s:
            cur = self._new(s.t_s)
        cur = replace(
            cur,
            samples=cur.samples + 1,
            peak_kw=max(cur.peak_kw, s.import_kw),
        )
        cur = _register(cur, s.register_kwh, s.t_s, acc.last)
        return replace(acc, last=s, open=cur), closed

    def progress(self) -> OpenInterval | None:
        """The interval in progress, integrated up to the last sample."""
        return self.open

    def close(self, t_s: float) -> tuple[SettlementAccumulator, list[SettlementRecord]]:
        """Hold the last sample up to t_s and emit every interval that ended by t_s."""
        if self.last is None or t_s <= self.last.t_s:
            return self, []
        acc, closed = self._advance(t_s)
        return replace(acc, last=replace(self.last, t_s=t_s)), closed

    def _new(self, t_s: float) -> OpenInterval:
        """The interval holding t_s, with data from t_s on."""
        start_s, end_s = interval_bounds(t_s, self.interval_s, self.tz)
        return OpenInterval(start_s, end_s, data_from_s=t_s)

    def _advance(self, to_s: float) -> tuple[SettlementAccumulator, list[SettlementRecord]]:
        """Integrate the held sample from its time to to_s (at most max_hold_s)."""
        assert self.last is not None
        last = self.last
        cur = self.open or self._new(last.t_s)
        closed: list[SettlementRecord] = []
        hold_until = min(to_s, last.t_s + self.max_hold_s)
        t = last.t_s
        while True:
            seg_end = min(cur.end_s, hold_until)
            cur = _integrate(cur, last, seg_end - t)
            t = seg_end
            if to_s < cur.end_s:
                break
            closed.append(close_record(cur))
            nxt = self._new(cur.end_s)
            if t < hold_until:  # the held sample runs on into the next interval
                reg = cur.register_end_kwh if not cur.register_fault else None
                cur = replace(nxt, register_start_kwh=reg, register_end_kwh=reg)
            else:  # a gap: intervals without data are not reported
                cur = self._new(to_s)
                t = to_s
        return replace(self, open=cur), closed


def _integrate(cur: OpenInterval, s: SettlementSample, dt_s: float) -> OpenInterval:
    if dt_s <= 0.0:
        return cur
    kwh = s.import_kw * dt_s / _S_PER_H
    reg_end = cur.register_end_kwh
    return replace(
        cur,
        integrated_kwh=cur.integrated_kwh + kwh,
        covered_s=cur.covered_s + dt_s,
        seconds_over=cur.seconds_over + (dt_s if s.import_kw > s.limit_kw else 0.0),
        # The register between readings is estimated by the import held since the last.
        register_end_kwh=None if reg_end is None else reg_end + kwh,
    )


def _register(
    cur: OpenInterval, reg_kwh: float | None, t_s: float, prev: SettlementSample | None
) -> OpenInterval:
    """Fold a register reading in: the first one of the interval (read at its start, or
    estimated back to it) opens it; later ones move its end; backwards is a fault."""
    if cur.register_fault:
        return cur
    if reg_kwh is None or not math.isfinite(reg_kwh):
        if cur.register_start_kwh is not None:
            return replace(cur, register_fault="energy register no longer read: integral settled")
        return cur
    if cur.register_start_kwh is not None:
        if prev is not None and prev.register_kwh is not None:
            floor = prev.register_kwh
        else:  # restored after a restart: the saved end is an estimate, allow for it
            floor = (cur.register_end_kwh or cur.register_start_kwh) - REGISTER_TOLERANCE_KWH
        if reg_kwh < floor:
            return replace(
                cur,
                register_fault=(
                    f"energy register went backwards ({floor:.3f} -> {reg_kwh:.3f} kWh): "
                    "integral settled"
                ),
            )
        return replace(cur, register_end_kwh=reg_kwh)
    if cur.register_start_kwh is None and cur.integrated_kwh == 0.0 and cur.covered_s == 0.0:
        return replace(cur, register_start_kwh=reg_kwh, register_end_kwh=reg_kwh)
    # First reading after part of the interval went by: estimate its start from the integral.
    start = reg_kwh - cur.integrated_kwh
    return replace(cur, register_start_kwh=start, register_end_kwh=reg_kwh)


def close_record(cur: OpenInterval) -> SettlementRecord:
    imported, note = cur.imported_kwh(cur.end_s)
    span_s = cur.end_s - cur.start_s
    if cur.covered_s < span_s - 1.0 and not note:
        note = f"grid meter data for {cur.covered_s:.0f} of {span_s:.0f} s"
    return SettlementRecord(
        interval_start_s=cur.start_s,
        interval_s=span_s,
        imported_kwh=imported,
        integrated_kwh=cur.integrated_kwh,
        register_kwh=None if cur.register_fault else cur.register_kwh,
        peak_kw=cur.peak_kw,
        seconds_over=cur.seconds_over,
        covered_s=cur.covered_s,
        samples=cur.samples,
        note=note,
    )
