"""Energy awards over a (shortened) day (issue 15 item 2), shared by the scenario test and
benchmarks/bench_awards_day.py.

A simulated LuxOS site runs the real daemon. After warm-up a schedule of uneven energy
awards (shares of the full-load import over each interval) is stored in the award store;
10 % of the rigs fault (half go offline still drawing power, half ignore commands). In the
middle of one interval the grid authority drops an immediate power limit until that
interval's end: that interval cannot reach its award. Optionally the daemon is killed in
the middle of another interval and a new one started on the same database some seconds
later (the rigs keep drawing meanwhile). Each interval is judged by the simulator's truth:
the site import integrated over the interval, against its award.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scenario_kit import Running, Tuning, running_site, site_spec
from utilization_kit import faulted_rigs

from minerd.daemon.app import Daemon
from minerd.model import EnergyAward, QuotaSource
from minerd.runtime.cycle import CycleResult
from minerd.runtime.energy_tracker import ClosedInterval
from minerd.settings import load_settings

EDGE_S = 10.0
# Uneven volumes, as shares of the full-load import over the interval.
SHARES = (0.60, 0.35, 0.80, 0.50, 0.70, 0.45)
# 24 hourly-shaped shares for the full day (night low, day high), same range.
DAY_SHARES = (
    0.45, 0.40, 0.35, 0.35, 0.40, 0.50, 0.60, 0.70, 0.80, 0.75, 0.70, 0.65,
    0.60, 0.65, 0.70, 0.80, 0.75, 0.70, 0.60, 0.55, 0.50, 0.45, 0.40, 0.45,
)  # fmt: skip
# At 20x a sim second is 50 ms of wall time: timeouts in sim seconds leave a loaded machine
# room to answer (a meter read failing for want of CPU is a stale meter, not this test's).
TUNING = Tuning(
    rig_interval_s=8.0,
    rig_timeout_s=10.0,
    meter_timeout_s=5.0,
    meter_stale_after_s=10.0,
    ramp_up_kw_per_s=50.0,
    min_on_s=20.0,
    min_off_s=20.0,
    margin_kw=1.5,
)


@dataclass(frozen=True)
class AwardsPlan:
    rigs: int = 100
    speed: float = 20.0
    interval_s: float = 120.0
    shares: tuple[float, ...] = SHARES
    limited_interval: int | None = 2  # a power limit drops in the middle of this one
    limit_share: float = 0.30  # of the full-load import, until that interval's end
    restart_interval: int | None = None  # the daemon is killed in the middle of this one
    down_s: float = 10.0  # and started again this much later
    offline_fraction: float = 0.05
    ignoring_fraction: float = 0.05
    base_octet: int = 161
    tuning: Tuning = field(default_factory=lambda: TUNING)


@dataclass(frozen=True)
class IntervalResult:
    index: int
    award_kwh: float
    meter_kwh: float  # the simulated grid meter's energy register over the interval: judged
    true_kwh: float  # the simulator's site power integrated over the interval (a check)
    daemon: ClosedInterval | None  # what the daemon counted when it closed the interval
    limited: bool
    restarted: bool
    # Seconds between the last grid reading before the interval's start and the first one
    # after it, when longer than EDGE_S (0 otherwise): the daemon cannot split the energy
    # at the edge and counts the interval high (see control.energy_pace._before_edge).
    blind_at_start: float = 0.0
    # What the daemon could not know: a grid read that took w seconds leaves when within it
    # the meter sampled its register open, and the daemon counts that on the safe side (high:
    # the new interval's part of a step across its start as large as the read allows, and
    # energy carried on from the read's earliest moment): full load for as long as the
    # reads at its edges took (edge_windows_s).
    uncertain_kwh: float = 0.0

    @property
    def floor_share(self) -> float:
        """At least this share of the award is judged a miss: 99 %, less what slow reads
        at its edges made the daemon count high on purpose."""
        return 0.99 - self.uncertain_kwh / self.award_kwh

    @property
    def share(self) -> float:
        """As the market settles it: by the grid meter's register."""
        return self.meter_kwh / self.award_kwh

    @property
    def true_share(self) -> float:
        return self.true_kwh / self.award_kwh


@dataclass(frozen=True)
class AwardsResult:
    plan: AwardsPlan
    full_kw: float
    intervals: tuple[IntervalResult, ...]
    faulted: dict[str, str]
    restored_kwh: float | None  # energy so far the restarted daemon restored (None: no restart)
    drawn_at_kill_kwh: float | None  # what the grid meter counted in that interval by the kill
    origins: frozenset[str]  # limit origins the daemon's cycles used during the awards

    def table(self) -> str:
        rows = ["int  award kWh  meter kWh  meter %   true %  daemon %  note"]
        for r in self.intervals:
            d = f"{100 * r.daemon.share:7.2f}" if r.daemon is not None else "      -"
            note = ("power limit " if r.limited else "") + ("restart " if r.restarted else "")
            note += f"meter blind at start ({r.blind_at_start:.0f} s) " if r.blind_at_start else ""
            if r.uncertain_kwh > 0.001 * r.award_kwh:
                note += f"slow reads at edges: floor {100 * r.floor_share:.2f} %"
            rows.append(
                f"{r.index:3d} {r.award_kwh:10.3f} {r.meter_kwh:10.3f} {100 * r.share:8.2f} "
                f"{100 * r.true_share:8.2f}  {d}  {note}"
            )
        return "\n".join(rows)


def reading_gap_s(cycles: list[CycleResult], edge_s: float) -> float:
    """How long the daemon's grid readings left edge_s uncovered: the span from the last
    fresh reading before it to the first after it, if longer than EDGE_S, else 0 (also
    when no reading lies after it: the run ended)."""
    stamps = sorted(
        {
            m.reading.taken_at_s
            for c in cycles
            if c.snapshot.grid_fresh
            for m in c.snapshot.grid_meters
            if m.reading is not None
        }
    )
    i = bisect.bisect_right(stamps, edge_s)
    if i == 0 or i == len(stamps):
        return 0.0 if i == len(stamps) else EDGE_S + 1.0
    gap_s = stamps[i] - stamps[i - 1]
    return gap_s if gap_s > EDGE_S else 0.0


def _grid_reads(cycles: list[CycleResult]) -> list[tuple[float, float]]:
    """(stamp, read window) of every fresh grid reading the daemon's cycles saw, in order."""
    return sorted(
        {
            (m.reading.taken_at_s, m.reading.read_window_s)
            for c in cycles
            if c.snapshot.grid_fresh
            for m in c.snapshot.grid_meters
            if m.reading is not None
        }
    )


def edge_windows_s(cycles: list[CycleResult], start_s: float, end_s: float) -> float:
    """How long the reads the daemon counted an interval's edges on took: at its start the
    two readings whose step it split there (the longer), at its end the last reading
    before it (the count is carried on from that read's earliest moment)."""
    reads = _grid_reads(cycles)
    first_after = next((i for i, (t, w) in enumerate(reads) if t + w / 2.0 > start_s), None)
    at_start = 0.0
    if first_after is not None:
        split = reads[max(0, first_after - 1) : first_after + 1]
        at_start = max(w for _, w in split)
    before_end = [w for t, w in reads if t <= end_s]
    return at_start + (before_end[-1] if before_end else 0.0)


def true_kwh(run: Running, from_s: float, to_s: float) -> float:
    """The site import integrated over [from_s, to_s) from the truth samples (trapezoid,
    the ends interpolated)."""
    samples = [s for s in run.recorder.samples if from_s - 5.0 <= s.t_s <= to_s + 5.0]
    total = 0.0
    for a, b in itertools.pairwise(samples):
        lo, hi = max(a.t_s, from_s), min(b.t_s, to_s)
        if hi <= lo or b.t_s <= a.t_s:
            continue
        slope = (b.power_kw - a.power_kw) / (b.t_s - a.t_s)
        p_lo = a.power_kw + slope * (lo - a.t_s)
        p_hi = a.power_kw + slope * (hi - a.t_s)
        total += (p_lo + p_hi) / 2.0 * (hi - lo)
    return total / 3600.0


def meter_register_kwh(run: Running) -> float:
    """The simulated grid meter's energy register now."""
    m = run.sim.meters["grid"]
    return m.energy_now_kwh(m.power_w)


@dataclass
class RegisterRecorder:
    """(sim time, grid meter register) as often as the loop allows. The register is linear
    between the simulator's integration steps, so interpolating between two samples gives
    it at an interval's edge even when this task wakes late (a loaded machine at 20x)."""

    run: Running
    samples: list[tuple[float, float]] = field(default_factory=list)

    async def record(self) -> None:
        while True:
            self.samples.append((self.run.now_s(), meter_register_kwh(self.run)))
            await asyncio.sleep(0.005)

    def at(self, t_s: float) -> float:
        i = bisect.bisect_left(self.samples, (t_s, -math.inf))
        assert 0 < i < len(self.samples), f"no register samples around {t_s}"
        (t0, e0), (t1, e1) = self.samples[i - 1], self.samples[i]
        return e0 if t1 <= t0 else e0 + (e1 - e0) * (t_s - t0) / (t1 - t0)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


async def run_awards(
    plan: AwardsPlan, workdir: Path, log: Callable[[str], None] = lambda s: None
) -> AwardsResult:
    spec = site_spec(plan.rigs, base_octet=plan.base_octet, speed=plan.speed)
    async with running_site(spec, workdir, plan.tuning) as run:
        await run.sleep_sim(5.0)
        faulted = faulted_rigs(plan.rigs, plan.offline_fraction, plan.ignoring_fraction)
        for rig_id, fault in faulted.items():
            await run.sim.inject(rig_id, fault)
        await run.sleep_sim(5.0)
        full_kw = await run.truth_kw()
        issued = run.now_s()
        start = issued + 5.0
        span = plan.interval_s
        awards = [
            EnergyAward(
                award_id=f"aw-{i:02d}",
                start_s=start + i * span,
                end_s=start + (i + 1) * span,
                energy_kwh=round(share * full_kw * span / 3600.0, 4),
                source=QuotaSource.API,
                issued_at_s=issued,
                issued_by="scenario",
                reference=f"interval {i}",
            )
            for i, share in enumerate(plan.shares)
        ]
        run.site.stores.awards.put(awards, by="scenario", at_s=issued)
        run.site.awards_changed()
        site, task = run.site, run.task
        closed: list[ClosedInterval] = []
        restored: float | None = None
        killed_at: tuple[float, float] | None = None
        meter = RegisterRecorder(run)
        meter_task = asyncio.create_task(meter.record(), name="register-recorder")
        try:
            for i in range(len(awards)):
                mid = start + (i + 0.5) * span
                if i == plan.limited_interval:
                    await run.sleep_sim(mid - run.now_s())
                    limit_kw = round(plan.limit_share * full_kw, 1)
                    run.post_quota(limit_kw, end_s=start + (i + 1) * span)
                    log(f"interval {i}: power limit {plan.limit_share:.0%} from its middle")
                if i == plan.restart_interval:
                    await run.sleep_sim(mid - run.now_s())
                    tracker = site.cycle.energy
                    assert tracker is not None
                    closed.extend(tracker.closed)
                    await _stop(task)  # killed: nothing saved on the way out
                    killed_at = (run.now_s(), start + i * span)
                    await run.sleep_sim(plan.down_s)
                    daemon = Daemon(load_settings(run.config), clock=run.sim.clock)
                    site = daemon.build()
                    site.cycle.listeners.append(run.cycles.append)
                    task = asyncio.create_task(daemon.run(), name="restarted-daemon")
                    deadline_s = run.now_s() + 60.0
                    while not daemon.ready.is_set():
                        assert not task.done(), "the restarted daemon stopped"
                        assert run.now_s() < deadline_s, "restarted daemon never ready"
                        await run.sleep_sim(0.2)
                    again = site.cycle.energy
                    assert again is not None
                    restored = again.restored_kwh
                    assert restored is not None, "the restarted daemon restored no count"
                    log(f"interval {i}: restarted, {restored:.3f} kWh restored")
                await run.sleep_sim(start + (i + 1) * span - run.now_s())
                log(f"interval {i} done at sim {run.now_s() - start:.0f} s")
            await run.sleep_sim(3.0)  # the last interval is closed by the next cycle
            tracker = site.cycle.energy
            assert tracker is not None
            closed.extend(tracker.closed)
        finally:
            await _stop(meter_task)
            if task is not run.task:
                await _stop(task)
        by_id = {c.award.award_id: c for c in closed}
        results = tuple(
            IntervalResult(
                index=i,
                award_kwh=a.energy_kwh,
                meter_kwh=meter.at(a.end_s) - meter.at(a.start_s),
                true_kwh=true_kwh(run, a.start_s, a.end_s),
                daemon=by_id.get(a.award_id),
                limited=i == plan.limited_interval,
                restarted=i == plan.restart_interval,
                blind_at_start=reading_gap_s(run.cycles, a.start_s),
                uncertain_kwh=full_kw * edge_windows_s(run.cycles, a.start_s, a.end_s) / 3600.0,
            )
            for i, a in enumerate(awards)
        )
        origins = frozenset(
            c.decision.limit.origin
            for c in run.cycles
            if start <= c.snapshot.taken_at_s < start + len(awards) * span
        )
        drawn = None if killed_at is None else meter.at(killed_at[0]) - meter.at(killed_at[1])
        return AwardsResult(plan, full_kw, results, faulted, restored, drawn, origins)


def check(result: AwardsResult) -> list[str]:
    """What is wrong with a run (empty: it met issue 15's targets). Never over 100.2 %; at
    least 99 % unless the grid meter was blind at the interval's start, less what slow reads
    at its edges hid (a loaded machine at 20x: the daemon then counts the interval high, so
    it ends under, never over); most intervals must be judged in full."""
    problems = []
    for r in result.intervals:
        if r.limited:
            if r.share >= 1.0:
                problems.append(f"interval {r.index} under a power limit reached its award")
            if r.daemon is None or r.daemon.share >= 1.0:
                problems.append(f"interval {r.index}: the daemon did not count its shortfall")
            continue
        if r.share > 1.002 or (r.share < r.floor_share and not r.blind_at_start):
            problems.append(f"interval {r.index}: {100 * r.share:.2f} % of its award")
    judged = [r for r in result.intervals if not r.limited and not r.blind_at_start]
    if 2 * len(judged) < len(result.intervals):
        problems.append(f"only {len(judged)} intervals judged: the meter was blind at the rest")
    if "award" not in result.origins:
        problems.append("no cycle steered to the award's pace (origin 'award')")
    return problems
