"""A rig model's operating points and their upper concave hull, the planner's raw material.

Points are (power, hashrate) pairs a rig can run at: sleep, each discrete profile, and the
power-target curve between min_power_w and max_power_w (any power on it, linear between
curve points). Hull segments are the upgrades the planner buys, best hashrate per watt first.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from minerd.model import ControlMode, RigModel

_EPS_W = 1e-9


@dataclass(frozen=True)
class OpPoint:
    """One operating point. curve_idx >= 0 marks a point on the power-target curve."""

    power_w: float
    hashrate_ths: float
    profile: str | None = None
    curve_idx: int = -1
    sleep: bool = False


@dataclass(frozen=True)
class Segment:
    """An upgrade from one hull vertex to the next; continuous ones may be bought in part."""

    dp_w: float
    dh_ths: float
    slope: float  # TH/s per W
    continuous: bool


@dataclass(frozen=True)
class Hull:
    points: tuple[OpPoint, ...]  # every allowed point, ascending power (for fix-ups)
    vertices: tuple[OpPoint, ...]  # upper concave hull from the base point, hashrate rising
    segments: tuple[Segment, ...]  # len(vertices) - 1
    curve_max_w: float  # highest power-target power allowed (or -1 without power target)


def sleep_point(model: RigModel) -> OpPoint:
    return OpPoint(model.sleep_power_w, 0.0, None, -1, True)


def awake_points(model: RigModel) -> tuple[OpPoint, ...]:
    """Every awake point of a model, ascending power, one per power (best hashrate wins)."""
    pts: list[OpPoint] = []
    if ControlMode.POWER_TARGET in model.modes and model.max_power_w > model.min_power_w:
        powers = [model.min_power_w]
        powers += [c.power_w for c in model.curve if model.min_power_w < c.power_w]
        powers = [p for p in powers if p < model.max_power_w] + [model.max_power_w]
        pts += [OpPoint(p, model.hashrate_at(p), None, i) for i, p in enumerate(powers)]
    if ControlMode.PROFILES in model.modes:
        pts += [OpPoint(p.power_w, p.hashrate_ths, p.name) for p in model.profiles]
    if not pts:
        pts.append(OpPoint(model.nominal_power_w, model.nominal_hashrate_ths))
    by_power: dict[float, OpPoint] = {}
    for p in pts:
        old = by_power.get(p.power_w)
        if old is None:
            by_power[p.power_w] = p
            continue
        # Same power: keep the better hashrate; a profile name and a curve index both survive.
        best = p if p.hashrate_ths > old.hashrate_ths else old
        by_power[p.power_w] = OpPoint(
            best.power_w,
            best.hashrate_ths,
            old.profile or p.profile,
            max(old.curve_idx, p.curve_idx),
        )
    return tuple(by_power[k] for k in sorted(by_power))


def allowed_points(
    model: RigModel, *, with_sleep: bool, cap_w: float | None, max_j_per_th: float | None = None
) -> tuple[OpPoint, ...]:
    """Points a rig may use: awake points up to cap_w (never below the lowest), plus sleep.

    max_j_per_th (economics): awake points that cost more than they earn go (worth_running);
    a rig that may not sleep keeps its lowest point, one that may sleeps."""
    awake = awake_points(model)
    if cap_w is not None:
        cap_w = max(cap_w, awake[0].power_w)
        kept = [p for p in awake if p.power_w <= cap_w + _EPS_W]
        curve = [p for p in kept if p.curve_idx >= 0]
        if (
            ControlMode.POWER_TARGET in model.modes
            and model.min_power_w < cap_w < model.max_power_w
            and not any(abs(p.power_w - cap_w) <= _EPS_W for p in kept)
        ):
            idx = curve[-1].curve_idx + 1 if curve else 0
            kept.append(OpPoint(cap_w, model.hashrate_at(cap_w), None, idx))
            kept.sort(key=lambda p: p.power_w)
        awake = tuple(kept)
    if max_j_per_th is not None:
        worth = worth_running(awake, max_j_per_th)
        awake = worth if worth or with_sleep else awake[:1]
    if with_sleep:
        return (sleep_point(model), *(p for p in awake if p.power_w > model.sleep_power_w))
    return awake


def worth_running(points: tuple[OpPoint, ...], max_j_per_th: float) -> tuple[OpPoint, ...]:
    """Awake points (ascending power) that pay for themselves at this breakeven J/TH, and
    whose step up from the next lower point kept pays too: an overclock's extra watts can
    cost more than its extra hashrate earns while its average J/TH still looks fine."""
    out: list[OpPoint] = []
    for p in points:
        if p.power_w > max_j_per_th * p.hashrate_ths + _EPS_W:
            continue
        if out:
            dh = p.hashrate_ths - out[-1].hashrate_ths
            if dh <= 0.0 or p.power_w - out[-1].power_w > max_j_per_th * dh + _EPS_W:
                continue
        out.append(p)
    return tuple(out)


def _below_or_on(a: OpPoint, b: OpPoint, c: OpPoint) -> bool:
    """True when b lies strictly below the chord a-c (b is then not an upper-hull vertex)."""
    cross = (b.power_w - a.power_w) * (c.hashrate_ths - a.hashrate_ths) - (
        b.hashrate_ths - a.hashrate_ths
    ) * (c.power_w - a.power_w)
    return cross > 1e-12 * max(1.0, abs(c.power_w - a.power_w) * abs(c.hashrate_ths))


def build_hull(points: tuple[OpPoint, ...]) -> Hull:
    """Upper concave hull from points[0] (the base), cut where hashrate stops rising.

    Collinear points are kept so a straight curve stretch stays continuous.
    """
    base = points[0]
    hull: list[OpPoint] = [base]
    for p in points[1:]:
        if p.hashrate_ths <= base.hashrate_ths:
            continue
        while len(hull) >= 2 and _below_or_on(hull[-2], hull[-1], p):
            hull.pop()
        hull.append(p)
    # Keep only rising hashrate: past the peak more power buys nothing.
    peak = max(range(len(hull)), key=lambda i: (hull[i].hashrate_ths, -i))
    vertices = tuple(hull[: peak + 1])
    segments = []
    for a, b in itertools.pairwise(vertices):
        dp = b.power_w - a.power_w
        dh = b.hashrate_ths - a.hashrate_ths
        cont = a.curve_idx >= 0 and b.curve_idx == a.curve_idx + 1
        segments.append(Segment(dp, dh, dh / dp, cont))
    curve_pts = [p.power_w for p in points if p.curve_idx >= 0]
    return Hull(points, vertices, tuple(segments), max(curve_pts) if curve_pts else -1.0)
