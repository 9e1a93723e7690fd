"""Compliance accounting: import against the limit, per minute and per settlement interval.

Samples are step values: (t_s, import_kw, limit_kw) holds until the next sample's t_s (the
last one until the interval closes). Intervals are aligned to multiples of interval_s on the
unix time axis. Pure: feed samples, collect closed records; nothing reads a clock.
A sample may carry the control cycle's gap breakdown (control.utilization terms): each
record then names, when its import stayed under 97 % of its limit, the term that took most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from minerd.control.utilization import TARGET_UTILIZATION, reason_of
from minerd.model import ComplianceRecord

_KWS_PER_KWH = 3600.0


@dataclass(frozen=True)
class Sample:
    t_s: float
    import_kw: float
    limit_kw: float
    # (term, kW) of control.utilization.Gap.terms_kw(); () when no breakdown (warm-up)
    terms_kw: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class _Bucket:
    start_s: float
    energy_kws: float = 0.0  # integral of import over the covered time
    covered_s: float = 0.0
    limit_kw: float = math.inf
    max_excess_kw: float = 0.0
    seconds_over: float = 0.0
    over_kws: float = 0.0
    samples: int = 0
    terms_kws: tuple[tuple[str, float], ...] = ()  # each term integrated over time


@dataclass(frozen=True)
class Accumulator:
    """One interval length. `add` returns the new accumulator and the records it closed."""

    interval_s: float = 900.0
    max_hold_s: float = 60.0  # a sample older than this no longer counts (meter gap)
    last: Sample | None = None
    bucket: _Bucket | None = None

    def add(self, sample: Sample) -> tuple[Accumulator, list[ComplianceRecord]]:
        if self.last is not None and sample.t_s < self.last.t_s:
            return self, []  # out of order: the step before already covered it
        closed: list[ComplianceRecord] = []
        acc = self
        if self.last is not None:
            acc, closed = self._advance(sample.t_s)
        bucket = acc.bucket or _Bucket(self._start_of(sample.t_s))
        bucket = replace(
            bucket,
            samples=bucket.samples + 1,
            limit_kw=min(bucket.limit_kw, sample.limit_kw),
            max_excess_kw=max(bucket.max_excess_kw, sample.import_kw - sample.limit_kw),
        )
        return replace(acc, last=sample, bucket=bucket), closed

    def progress(self) -> tuple[float, str] | None:
        """The open interval so far: (mean import / limit, reason if under 97 %); None
        before any covered time or without a finite limit."""
        b = self.bucket
        if b is None or b.covered_s <= 0.0 or not 0.0 < b.limit_kw < math.inf:
            return None
        used = b.energy_kws / b.covered_s / b.limit_kw
        reason = ""
        if used < TARGET_UTILIZATION:
            reason = reason_of(dict(b.terms_kws)) if b.terms_kws else "no breakdown"
        return used, reason

    def close(self, t_s: float) -> tuple[Accumulator, list[ComplianceRecord]]:
        """Integrate the last sample up to t_s and emit every interval that ends by t_s."""
        if self.last is None or t_s <= self.last.t_s:
            return self, []
        acc, closed = self._advance(t_s)
        return replace(acc, last=replace(self.last, t_s=t_s)), closed

    def _start_of(self, t_s: float) -> float:
        return math.floor(t_s / self.interval_s) * self.interval_s

    def _advance(self, to_s: float) -> tuple[Accumulator, list[ComplianceRecord]]:
        """Hold the last sample from its time to to_s (at most max_hold_s), closing intervals."""
        assert self.last is not None and self.bucket is not None
        last = self.last
        bucket = self.bucket
        closed: list[ComplianceRecord] = []
        hold_until = min(to_s, last.t_s + self.max_hold_s)
        t = last.t_s
        while True:
            end = bucket.start_s + self.interval_s
            bucket = _integrate(bucket, last, min(end, hold_until) - t)
            t = min(end, hold_until)
            if to_s < end:
                break
            closed.append(_record(bucket, self.interval_s))
            if t < hold_until:  # the held sample is in force in the next interval too
                bucket = _Bucket(
                    end, limit_kw=last.limit_kw, max_excess_kw=last.import_kw - last.limit_kw
                )
            else:  # a gap: intervals with no data are not reported
                bucket = _Bucket(self._start_of(to_s))
                t = to_s
        return replace(self, bucket=bucket), closed


def _integrate(b: _Bucket, s: Sample, dt_s: float) -> _Bucket:
    if dt_s <= 0.0:
        return b
    excess = s.import_kw - s.limit_kw
    over = excess > 0.0
    terms = b.terms_kws
    if s.terms_kw:
        acc = dict(terms)
        for k, v in s.terms_kw:
            acc[k] = acc.get(k, 0.0) + v * dt_s
        terms = tuple(acc.items())
    return replace(
        b,
        terms_kws=terms,
        energy_kws=b.energy_kws + s.import_kw * dt_s,
        covered_s=b.covered_s + dt_s,
        seconds_over=b.seconds_over + (dt_s if over else 0.0),
        over_kws=b.over_kws + (excess * dt_s if over else 0.0),
    )


def _record(b: _Bucket, interval_s: float) -> ComplianceRecord:
    avg = b.energy_kws / b.covered_s if b.covered_s > 0 else 0.0
    reason = ""
    if b.limit_kw > 0.0 and b.limit_kw != math.inf and avg < TARGET_UTILIZATION * b.limit_kw:
        reason = reason_of(dict(b.terms_kws)) if b.terms_kws else "no breakdown"
    return ComplianceRecord(
        interval_start_s=b.start_s,
        interval_s=interval_s,
        avg_import_kw=avg,
        limit_kw=b.limit_kw,
        max_excess_kw=max(0.0, b.max_excess_kw),
        seconds_over=b.seconds_over,
        energy_over_kwh=b.over_kws / _KWS_PER_KWH,
        samples=b.samples,
        under_reason=reason,
    )


@dataclass(frozen=True)
class Compliance:
    """The two accumulators the site keeps: per minute and per settlement interval."""

    minute: Accumulator = Accumulator(60.0)
    settlement: Accumulator = Accumulator(900.0)

    @staticmethod
    def with_settlement(interval_s: float) -> Compliance:
        return Compliance(Accumulator(60.0), Accumulator(interval_s))

    def add(
        self, sample: Sample
    ) -> tuple[Compliance, list[ComplianceRecord], list[ComplianceRecord]]:
        """New state, closed per-minute records, closed settlement records."""
        minute, per_minute = self.minute.add(sample)
        settlement, per_settlement = self.settlement.add(sample)
        return Compliance(minute, settlement), per_minute, per_settlement

    def close(
        self, t_s: float
    ) -> tuple[Compliance, list[ComplianceRecord], list[ComplianceRecord]]:
        minute, per_minute = self.minute.close(t_s)
        settlement, per_settlement = self.settlement.close(t_s)
        return Compliance(minute, settlement), per_minute, per_settlement


def summarize(
    samples: list[Sample], interval_s: float, until_s: float | None = None
) -> list[ComplianceRecord]:
    """Records for a finished series (e.g. replayed from storage): every closed interval."""
    acc = Accumulator(interval_s)
    out: list[ComplianceRecord] = []
    for s in samples:
        acc, closed = acc.add(s)
        out += closed
    if until_s is not None:
        acc, closed = acc.close(until_s)
        out += closed
    return out
