"""Utilization under a schedule of uneven blocks (issue 19), shared by the scenario test and
benchmarks/bench_utilization.py.

A simulated LuxOS site runs the real daemon. A day-ahead schedule of blocks (shares of the
full-load import) starts after warm-up; at its start a share of the rigs go offline (the
listener closes, the rig keeps drawing power) and another share ignore every command
(answer success, do nothing). Each block is judged by the simulator's truth once settled:
mean import / limit, max import, energy over the limit. The daemon's own cycles give the
breakdown of the gap (control.utilization terms), averaged over each settled window.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from scenario_kit import Running, Sample, Tuning, energy_over, running_site, site_spec

from minerd.model import Quota, QuotaSource
from minerd.runtime.cycle import CycleResult

SHARES = (0.60, 0.30, 0.75, 0.45)


@dataclass(frozen=True)
class Plan:
    rigs: int
    speed: float
    block_s: float
    settle_s: float  # a block is judged from this long after its start
    shares: tuple[float, ...] = SHARES
    offline_fraction: float = 0.05
    ignoring_fraction: float = 0.05
    base_octet: int = 251
    workers: int = 1
    tuning: Tuning = field(default_factory=Tuning)


@dataclass(frozen=True)
class BlockResult:
    share: float
    limit_kw: float
    mean_kw: float
    max_kw: float
    over_kws: float
    allowed_kws: float
    terms_kw: dict[str, float]  # the daemon's gap breakdown, mean over the settled window

    @property
    def used(self) -> float:
        return self.mean_kw / self.limit_kw


@dataclass(frozen=True)
class RunResult:
    plan: Plan
    full_kw: float
    blocks: tuple[BlockResult, ...]
    faulted: dict[str, str]
    compliance: list[tuple[float, float, float, str]]  # start, used, limit, reason

    @property
    def energy_over_share(self) -> float:
        over = sum(b.over_kws for b in self.blocks)
        return over / sum(b.allowed_kws for b in self.blocks)

    def table(self) -> str:
        terms = sorted({k for b in self.blocks for k in b.terms_kw})
        head = "block  limit kW   mean kW  used %   max kW  over kWs  " + "  ".join(terms)
        rows = [head]
        for i, b in enumerate(self.blocks):
            t = "  ".join(f"{b.terms_kw.get(k, 0.0):{len(k)}.1f}" for k in terms)
            rows.append(
                f"{i} {b.share:4.0%} {b.limit_kw:9.1f} {b.mean_kw:9.1f} {100 * b.used:6.2f} "
                f"{b.max_kw:8.1f} {b.over_kws:9.2f}  {t}"
            )
        rows.append(f"energy over: {100 * self.energy_over_share:.4f} % of the energy allowed")
        return "\n".join(rows)


def faulted_rigs(rigs: int, offline: float, ignoring: float) -> dict[str, str]:
    """Faults spread over the rig ids (the planner favours low ids, so not all at one end)."""
    ids = [f"c001-r{i:03d}" for i in range(1, rigs + 1)]  # one container (site_spec)
    n_off, n_ign = round(rigs * offline), round(rigs * ignoring)
    out: dict[str, str] = {}
    if n_off:
        step = rigs / n_off
        out |= {ids[int(k * step)]: "offline" for k in range(n_off)}
    if n_ign:
        step = rigs / n_ign
        out |= {ids[int(k * step + step / 2)]: "ignores_commands" for k in range(n_ign)}
    return out


def _used(run: Running, q: Quota, from_s: float) -> float:
    """Mean import / limit over the look-ahead window before a lower block."""
    assert q.end_s is not None
    window = run.recorder.between(from_s, q.end_s)
    if len(window) < 2:
        return 0.0
    return sum(s.power_kw for s in window) / len(window) / q.limit_kw


def _terms(cycles: list[CycleResult], from_s: float, to_s: float) -> dict[str, float]:
    sums: dict[str, float] = {}
    n = 0
    for c in cycles:
        if not from_s <= c.snapshot.taken_at_s < to_s or getattr(c, "utilization", None) is None:
            continue
        n += 1
        g = c.utilization
        extra = {
            "meter": g.import_kw,
            "d_limit": g.limit_kw,
            "failsafe": float(bool(c.failsafe_reason)),
        }
        for k, v in (c.utilization.terms_kw() | extra).items():
            sums[k] = sums.get(k, 0.0) + v
    return {k: v / n for k, v in sums.items()} if n else {}


async def run_plan(
    plan: Plan,
    workdir: Path,
    log: Callable[[str], None] = lambda s: None,
    inspect: Callable[[Running, list[Quota]], None] = lambda r, q: None,
) -> RunResult:
    spec = site_spec(plan.rigs, base_octet=plan.base_octet, speed=plan.speed)
    if plan.workers != 1:
        spec = replace(spec, workers=plan.workers)
    async with running_site(spec, workdir, plan.tuning) as run:
        await run.sleep_sim(5.0)
        full_kw = await run.truth_kw()
        issued = run.now_s()
        start = issued + 5.0
        blocks = [
            Quota(
                quota_id=f"u-{i:02d}-{uuid.uuid4().hex[:6]}",
                limit_kw=round(share * full_kw, 1),
                start_s=start + i * plan.block_s,
                end_s=start + (i + 1) * plan.block_s,
                source=QuotaSource.SCHEDULE,
                issued_at_s=issued,
                issued_by="utilization",
                reference=f"block {i}",
            )
            for i, share in enumerate(plan.shares)
        ]
        run.site.stores.quotas.replace_schedule(blocks, by="utilization")
        run.site.quotas_changed()
        faulted = faulted_rigs(plan.rigs, plan.offline_fraction, plan.ignoring_fraction)
        for rig_id, fault in faulted.items():
            await run.sim.inject(rig_id, fault)
        end = start + len(blocks) * plan.block_s
        for i in range(len(blocks)):
            await run.sleep_sim(start + (i + 1) * plan.block_s - run.now_s())
            log(f"block {i} done at sim {run.now_s() - start:.0f} s")
        ahead_s = run.site.cycle.lookahead_s
        nexts = (*plan.shares[1:], 0.0)
        results = tuple(
            _judge(run, q, share, plan.settle_s, ahead_s if 0.0 < nxt < share else 0.0)
            for q, share, nxt in zip(blocks, plan.shares, nexts, strict=True)
        )
        inspect(run, blocks)
        records = run.site.stores.compliance.query(start - 60.0, end + 60.0, 60.0, "minute")
        compliance = [
            (r.interval_start_s, r.utilization, r.limit_kw, r.under_reason) for r in records
        ]
        return RunResult(plan, full_kw, results, faulted, compliance)


def _judge(run: Running, q: Quota, share: float, settle_s: float, pre_shed_s: float) -> BlockResult:
    """The settled window: from settle_s after the start until the block ends, or, when the
    next block is lower, until the daemon starts meeting that cut (its look-ahead: a
    scheduled cut must be met when it starts, so rigs are told a sleep time early)."""
    assert q.end_s is not None
    end_s = q.end_s - pre_shed_s
    samples: list[Sample] = run.recorder.between(q.start_s + settle_s, end_s)
    assert len(samples) > 10, "too few truth samples in the settled window"
    over, allowed = energy_over(samples, lambda _t: q.limit_kw)
    # Time-weighted mean (the recorder samples on wall time, at an even pace).
    span = sum(b.t_s - a.t_s for a, b in itertools.pairwise(samples))
    mean = sum(a.power_kw * (b.t_s - a.t_s) for a, b in itertools.pairwise(samples)) / span
    return BlockResult(
        share=share,
        limit_kw=q.limit_kw,
        mean_kw=mean,
        max_kw=max(s.power_kw for s in samples),
        over_kws=over,
        allowed_kws=allowed,
        terms_kw=_terms(run.cycles, q.start_s + settle_s, end_s)
        | {"pre_shed_s": pre_shed_s, "pre_shed_used": _used(run, q, end_s)},
    )
