"""A shard's upgrade curve: the planner's classes, reduced to what a budget split needs.

Each class of interchangeable rigs is a count, a base point (its floor) and the chain of
hull upgrades above it. The controller merges every shard's chains and buys upgrades best
TH/s-per-W first (split.py), the same fractional knapsack plan() runs over one fleet, so
the split loses nothing to the shard boundaries but rounding.

The classing mirrors control.planner.plan(): fixed rigs (not dispatched, min-off) are a
floor only; min-on rigs have no sleep point; warm rigs are capped as the planner caps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from minerd.control.counting import counted_power_w, dispatched
from minerd.control.options import allowed_points, awake_points, build_hull
from minerd.control.planner import PlanConstraints, PlanRig
from minerd.model import ControlMode, RigModel

_EPS_W = 1e-6


@dataclass(frozen=True)
class Upgrade:
    """One hull segment per rig: dp_w more buys dh_ths more; continuous ones in part."""

    dp_w: float
    dh_ths: float
    continuous: bool

    @property
    def slope_ths_per_w(self) -> float:
        return self.dh_ths / self.dp_w if self.dp_w > 0 else 0.0


@dataclass(frozen=True)
class CurveClass:
    count: int
    base_w: float  # the floor of one rig of the class (sleep, or its lowest awake point)
    base_ths: float
    asleep: bool  # waking them counts against the wake limit (their first upgrade wakes)
    upgrades: tuple[Upgrade, ...]  # a chain: upgrade k needs upgrade k-1 on the same rig


@dataclass(frozen=True)
class ShardCurve:
    fixed_w: float  # rigs the planner does not move, at the power they are counted at
    release_w: float  # what shedding may take back from min-on rigs (floor - sleep)
    classes: tuple[CurveClass, ...]

    @property
    def floor_w(self) -> float:
        """The least the shard plans without overriding min-on."""
        return self.fixed_w + sum(c.count * c.base_w for c in self.classes)

    @property
    def min_w(self) -> float:
        """The least the shard plans at all (shedding overrides min-on)."""
        return self.floor_w - self.release_w

    @property
    def max_w(self) -> float:
        return self.floor_w + sum(c.count * sum(u.dp_w for u in c.upgrades) for c in self.classes)


def _derate_cap_w(model: RigModel, cur_w: float, regime: int, c: PlanConstraints) -> float:
    """The planner's cap for a warm rig: 1 hold, 2 step down, 3 (at max) lowest point."""
    powers = [p.power_w for p in awake_points(model)]
    lowest = powers[0]
    if regime >= 3:
        return lowest
    if regime == 1:
        return max(cur_w, lowest)
    lower = [p for p in powers if p < cur_w - _EPS_W]
    cap = lower[-1] if lower else lowest
    if ControlMode.POWER_TARGET in model.modes and model.max_power_w > model.min_power_w:
        cap = max(cap, cur_w * (1.0 - c.derate_step_fraction))
    return max(cap, lowest)


def _regime(r: PlanRig, band_c: float) -> int:
    t = r.chip_temp_c
    m = r.model
    if t is None or t < m.chip_temp_derate_c - band_c:
        return 0
    if t >= m.chip_temp_max_c:
        return 3
    return 2 if t >= m.chip_temp_derate_c else 1


def build_curve(rigs: Sequence[PlanRig], constraints: PlanConstraints) -> ShardCurve:
    """The curve of `rigs` as plan(budget, rigs, constraints) would class them."""
    fixed_w = 0.0
    release_w = 0.0
    counts: dict[tuple[int, bool, float | None, bool, bool], int] = {}
    models: dict[int, RigModel] = {}
    for r in rigs:
        m = r.model
        if not dispatched(r):
            fixed_w += counted_power_w(r)
            continue
        min_on = False
        if r.awake:
            cur_w = r.setpoint_power_w if r.setpoint_power_w is not None else r.power_w
            min_on = r.since_switch_s < constraints.min_on_s
        elif r.since_switch_s < constraints.min_off_s:
            fixed_w += m.sleep_power_w
            continue
        else:
            cur_w = 0.0
        regime = _regime(r, constraints.derate_hold_band_c)
        cap = _derate_cap_w(m, cur_w, regime, constraints) if regime else None
        has_sleep = ControlMode.SLEEP_WAKE in m.modes
        with_sleep = not min_on and (has_sleep or not r.awake)
        key = (id(m), with_sleep, cap, not r.awake, min_on)
        models[id(m)] = m
        counts[key] = counts.get(key, 0) + 1
    merged: dict[CurveClass, int] = {}
    for (mid, with_sleep, cap, asleep, min_on), n in counts.items():
        m = models[mid]
        pts = allowed_points(
            m, with_sleep=with_sleep, cap_w=cap, max_j_per_th=constraints.max_j_per_th
        )
        hull = build_hull(pts)
        ups = tuple(Upgrade(s.dp_w, s.dh_ths, s.continuous) for s in hull.segments)
        base = hull.vertices[0]
        if min_on:
            release_w += n * max(0.0, base.power_w - m.sleep_power_w)
        proto = CurveClass(0, base.power_w, base.hashrate_ths, asleep, ups)
        merged[proto] = merged.get(proto, 0) + n
    classes = tuple(
        CurveClass(n, c.base_w, c.base_ths, c.asleep, c.upgrades)
        for c, n in sorted(merged.items(), key=lambda kv: _class_order(kv[0]))
    )
    return ShardCurve(fixed_w, release_w, classes)


def _class_order(c: CurveClass) -> tuple[float, float, bool, int]:
    return (c.base_w, c.base_ths, c.asleep, len(c.upgrades))
