"""Split a rig power budget over the fleet for the most hashrate.

Rigs that are interchangeable (same model, same state and constraint class) are planned as
one class with a count, so 50,000 rigs cost a few hundred classes. Each class offers the
upgrades of its upper concave hull (sleep -> profile -> ...); upgrades are bought best
TH/s-per-W first (a fractional knapsack over concave chains), then single-rig fix-ups spend
what is left on points off the hull. Pure and deterministic: ties go by rig_id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum

from minerd.control.counting import counted_power_w, dispatched
from minerd.control.options import (
    Hull,
    OpPoint,
    allowed_points,
    awake_points,
    build_hull,
    worth_running,
)
from minerd.model import ControlMode, RigModel, RigSetpoint, RigState

_EPS_W = 1e-6
_BUCKET_W = 10.0  # rigs whose current power differs by less than this share a class (x0.1)
_MAX_FIXUPS = 24
MIN_OFF_REASON = "min-off: kept asleep"
_MIN_OFF = MIN_OFF_REASON
PRICED_OUT_REASON = "sleep: energy costs more than it earns"


@dataclass(frozen=True)
class PlanRig:
    """One rig as the planner sees it."""

    rig_id: str
    model: RigModel
    awake: bool
    power_w: float  # measured draw
    state: RigState = RigState.HASHING
    chip_temp_c: float | None = None
    since_switch_s: float = math.inf  # seconds since the last sleep/wake switch
    maintenance: bool = False  # pinned by an operator: not dispatched, counted as measured
    unresponsive: bool = False  # ignores commands: not dispatched, counted at nominal
    dispatchable: bool = True  # False (or state OFFLINE): not dispatched
    setpoint_power_w: float | None = None  # current planned power, if any
    setpoint_profile: str | None = None
    setpoint: RigSetpoint | None = None  # last plan's setpoint: reused when unchanged (fast)


@dataclass(frozen=True)
class PlanConstraints:
    min_on_s: float = 0.0  # an awake rig stays awake this long after waking (unless shedding)
    min_off_s: float = 0.0  # a sleeping rig stays asleep this long after sleeping
    max_wakes_per_cycle: int | None = None  # staggered start; None: no limit
    derate_hold_band_c: float = 3.0  # this far below the derate temperature: no increase
    derate_step_fraction: float = 0.1  # power-target rigs above it step down by this much
    # The grid meter says over: what must go goes from the rigs that obey fastest (shortest
    # sleep time), so power is bought for the slowest first.
    shed_fastest_first: bool = False
    # Economics: awake points above this J/TH cost more than they earn and are not offered
    # (sleep still is). None: every point (no price known, or "use every kW").
    max_j_per_th: float | None = None
    # The budget is rising on its ramp: awake rigs keep at least their current point. Lowering
    # some to pay for a wake drops power at once while the woken rig arrives a wake time
    # later; the dip's recovery then counts against the ramp, and a raise takes twice as long.
    hold_awake: bool = False


@dataclass(frozen=True)
class Plan:
    setpoints: tuple[RigSetpoint, ...]  # one per rig, in input order
    budget_w: float
    planned_power_w: float  # every rig, fixed ones included
    fixed_power_w: float  # maintenance, unresponsive, offline, min-off
    hashrate_ths: float  # planned, dispatched rigs only
    shortfall_w: float  # > 0 when even the minimum exceeds the budget
    wakes: int
    classes: int = field(default=0, compare=False)
    # Rigs the budget would wake were left asleep by max_wakes_per_cycle: a raised limit
    # is still being followed, wave by wave.
    wake_limited: bool = False
    # The rising hold applied (hold_awake asked and the held rigs fit the budget). False
    # when not asked, or when they did not fit and the plan was made freely (it may cut).
    held_awake: bool = field(default=False, compare=False)


class _Kind(IntEnum):
    AWAKE = 0  # free to move anywhere, sleep included
    MIN_ON = 1  # awake in its min-on window: lowest awake point is its floor
    ASLEEP = 2  # asleep, may wake (counts against max wakes)
    RELEASED = 3  # min-on overridden by shedding: free, like AWAKE
    HELD = 4  # awake while the budget rises (hold_awake): its current point is its floor


@dataclass
class _Class:
    model: RigModel
    kind: _Kind
    regime: int  # 0 cool, 1 warm (hold), 2 hot (step down), 3 at max (lowest point)
    cap_w: float | None
    current_w: float
    members: list[int]
    hull: Hull
    derate_note: str
    taken: list[float] = field(default_factory=list)
    wake_limited: bool = False
    priced_out: bool = False  # economics left it no awake point: asleep for price
    groups: list[tuple[int, OpPoint]] = field(default_factory=list)


@dataclass
class _ModelInfo:
    lowest_awake_w: float
    awake_powers: tuple[float, ...]
    continuous: bool
    has_sleep: bool
    derate_c: float
    max_c: float


def _model_info(model: RigModel) -> _ModelInfo:
    pts = awake_points(model)
    return _ModelInfo(
        pts[0].power_w,
        tuple(p.power_w for p in pts),
        ControlMode.POWER_TARGET in model.modes and model.max_power_w > model.min_power_w,
        ControlMode.SLEEP_WAKE in model.modes,
        model.chip_temp_derate_c,
        model.chip_temp_max_c,
    )


def _derate_cap(info: _ModelInfo, cur_w: float, regime: int, c: PlanConstraints) -> float:
    """Highest power allowed for a warm rig: 1 hold, 2 step down, 3 (at max) lowest point."""
    if regime >= 3:
        return info.lowest_awake_w
    if regime == 1:
        return max(cur_w, info.lowest_awake_w)  # hold band: no increase
    lower = [p for p in info.awake_powers if p < cur_w - _EPS_W]
    cap = lower[-1] if lower else info.lowest_awake_w
    if info.continuous:
        cap = max(cap, cur_w * (1.0 - c.derate_step_fraction))
    return max(cap, info.lowest_awake_w)


def _derate_note(info: _ModelInfo, regime: int, cap_w: float | None, band_c: float) -> str:
    if regime == 0 or cap_w is None:
        return ""
    if regime == 1:
        return f"; warm (chip >= {info.derate_c - band_c:.0f}C): held at most {cap_w:.0f} W"
    if regime == 2:
        return f"; derated (chip >= {info.derate_c:.0f}C): capped at {cap_w:.0f} W"
    return f"; derated (chip >= max {info.max_c:.0f}C): capped at {cap_w:.0f} W"


def _undispatched(r: PlanRig) -> RigSetpoint:
    """Setpoint of a rig the planner must not move, at the power it is counted at."""
    power_w = counted_power_w(r)
    if r.maintenance:
        why = "maintenance: not dispatched"
    elif r.unresponsive:
        why = "unresponsive: counted at nominal power"
    elif r.state is RigState.OFFLINE:
        return RigSetpoint(
            r.rig_id, False, power_w, None, "offline: not dispatched, counted at 0 W"
        )
    else:
        why = "not dispatchable: counted as measured"
    return RigSetpoint(r.rig_id, r.awake, power_w, r.setpoint_profile, why)


def plan(budget_w: float, rigs: Sequence[PlanRig], constraints: PlanConstraints) -> Plan:
    """One setpoint per rig maximising planned hashrate with planned power <= budget_w.

    Fixed rigs (maintenance, unresponsive, offline, min-off) are counted first; if the rest
    cannot fit at their floors, min-on is overridden (least efficient first): safety first.
    """
    if not budget_w >= 0.0:  # NaN or negative: plan the minimum
        budget_w = 0.0
    n = len(rigs)
    placeholder = RigSetpoint("", False, 0.0)
    out: list[RigSetpoint] = [placeholder] * n
    fixed_w = 0.0
    infos: dict[int, _ModelInfo] = {}
    hulls: dict[tuple[int, bool, float | None, float | None], Hull] = {}
    classes: dict[tuple[int, _Kind, int, int, float], _Class] = {}
    min_on_s = constraints.min_on_s
    min_off_s = constraints.min_off_s

    kind_awake, kind_min_on, kind_asleep = _Kind.AWAKE, _Kind.MIN_ON, _Kind.ASLEEP
    priced_out: dict[int, bool] = {}  # id(model) -> no awake point pays (economics)
    if constraints.hold_awake:
        kind_awake = kind_min_on = _Kind.HELD
    band_c = constraints.derate_hold_band_c
    # The hot path: one key per rig, a dict lookup, an append. Cool rigs skip derating.
    for i, r in enumerate(rigs):
        if not dispatched(r):
            sp = _undispatched(r)
            fixed_w += sp.power_w
            out[i] = sp
            continue
        m = r.model
        if r.awake:
            cur = r.setpoint_power_w
            if cur is None:
                cur = r.power_w
            kind = kind_min_on if r.since_switch_s < min_on_s else kind_awake
            if kind is _Kind.HELD and _priced_out(m, constraints.max_j_per_th, priced_out):
                # Nothing it can run pays for itself: held, it would stay awake at its lowest
                # point. The price decides for it as if not held.
                kind = _Kind.MIN_ON if r.since_switch_s < min_on_s else _Kind.AWAKE
        elif r.since_switch_s < min_off_s:
            fixed_w += m.sleep_power_w
            prev = r.setpoint
            if prev is not None and prev.reason == _MIN_OFF and prev.rig_id == r.rig_id:
                out[i] = prev
            else:
                out[i] = RigSetpoint(r.rig_id, False, m.sleep_power_w, None, _MIN_OFF)
            continue
        else:
            cur = 0.0
            kind = kind_asleep
        temp = r.chip_temp_c
        if temp is None or temp < m.chip_temp_derate_c - band_c:
            key: tuple[int, _Kind, int, int, float] = (id(m), kind, round(cur * 0.1), 0, 0.0)
        else:
            regime = 3 if temp >= m.chip_temp_max_c else (2 if temp >= m.chip_temp_derate_c else 1)
            key = (id(m), kind, round(cur * 0.1), regime, cur)
        cls = classes.get(key)
        if cls is None:
            cls = classes[key] = _new_class(key, r, cur, infos, hulls, constraints)
        cls.members.append(i)

    # Class order (greedy ties) must not depend on input order: sort by content.
    clist = sorted(
        classes.values(),
        key=lambda c: (c.model.name, c.kind, c.regime, c.cap_w or 0.0, c.current_w),
    )
    floor_w = fixed_w + sum(len(c.members) * c.hull.vertices[0].power_w for c in clist)
    if constraints.hold_awake:
        _wakes_first(clist, constraints.max_wakes_per_cycle, budget_w - floor_w)
    if floor_w > budget_w + _EPS_W and constraints.hold_awake:
        # Held rigs do not fit (a reading above its plan): plan freely; safety first.
        return plan(budget_w, rigs, replace(constraints, hold_awake=False))
    if floor_w > budget_w + _EPS_W:
        clist, floor_w = _release_min_on(
            clist, hulls, rigs, floor_w, budget_w, constraints.max_j_per_th
        )

    remaining = budget_w - floor_w
    wakes = _greedy(
        clist, remaining, constraints.max_wakes_per_cycle, constraints.shed_fastest_first
    )
    remaining = budget_w - fixed_w - sum(_class_power(c) for c in clist)
    wakes += _fixups(clist, remaining, constraints.max_wakes_per_cycle, wakes)

    planned_w = fixed_w
    total_ths = 0.0
    for c in clist:
        planned_w += _class_power(c)
        total_ths += sum(k * p.hashrate_ths for k, p in c.groups)
        _emit(c, rigs, out)
    return Plan(
        setpoints=tuple(out),
        budget_w=budget_w,
        planned_power_w=planned_w,
        fixed_power_w=fixed_w,
        hashrate_ths=total_ths,
        shortfall_w=planned_w - budget_w if planned_w > budget_w + _EPS_W else 0.0,
        wakes=wakes,
        classes=len(clist),
        wake_limited=any(c.wake_limited for c in clist),
        held_awake=constraints.hold_awake,
    )


def _wakes_first(clist: list[_Class], max_wakes: int | None, headroom_w: float) -> None:
    """A rising budget with rigs to wake: wakes first, each at its first awake point, and
    awake rigs held where they are. A wake is the slowest move (it draws a wake time
    later), so it is started as soon as the ramp pays for it; profile raises, which land
    at once, wait until no rig is left to wake (or the budget stops rising). Without
    this the ramp's increments go to profile raises and the rigs left asleep are woken
    only by a reshuffle once the budget settles. When the wakes allowed this cycle cannot
    take all the headroom, awake rigs may rise with the rest (never fall)."""
    if max_wakes == 0:
        return
    sleepers = [c for c in clist if c.kind is _Kind.ASLEEP and len(c.hull.vertices) > 1]
    if not sleepers:
        return
    for c in sleepers:
        c.hull = build_hull(c.hull.vertices[:2])
    tokens = math.inf if max_wakes is None else float(max_wakes)
    take_w = 0.0
    for c in sorted(sleepers, key=lambda c: -c.hull.segments[0].slope):
        n = min(float(len(c.members)), tokens)
        take_w += n * c.hull.segments[0].dp_w
        tokens -= n
        if tokens <= 0:
            break
    if headroom_w > take_w:
        return
    for c in clist:
        if c.kind is _Kind.HELD:
            c.hull = build_hull(c.hull.vertices[:1])


def _priced_out(model: RigModel, max_j_per_th: float | None, cache: dict[int, bool]) -> bool:
    if max_j_per_th is None:
        return False
    out = cache.get(id(model))
    if out is None:
        out = cache[id(model)] = not worth_running(awake_points(model), max_j_per_th)
    return out


def _new_class(
    key: tuple[int, _Kind, int, int, float],
    r: PlanRig,
    cur_w: float,
    infos: dict[int, _ModelInfo],
    hulls: dict[tuple[int, bool, float | None, float | None], Hull],
    c: PlanConstraints,
) -> _Class:
    m = r.model
    info = infos.get(key[0])
    if info is None:
        info = infos[key[0]] = _model_info(m)
    kind, regime = key[1], key[3]
    cap = _derate_cap(info, cur_w, regime, c) if regime else None
    held = kind is _Kind.HELD
    with_sleep = kind is not _Kind.MIN_ON and not held and (info.has_sleep or not r.awake)
    floor = (cur_w if cap is None else min(cur_w, cap)) if held else None
    hull = _hull(hulls, m, with_sleep, cap, c.max_j_per_th, floor)
    note = _derate_note(info, regime, cap, c.derate_hold_band_c)
    bucket_w = key[2] * _BUCKET_W
    cls = _Class(m, kind, regime, cap, bucket_w, [], hull, note)
    cls.priced_out = c.max_j_per_th is not None and hull.vertices[-1].sleep
    return cls


def _hull(
    cache: dict[tuple[int, bool, float | None, float | None], Hull],
    model: RigModel,
    with_sleep: bool,
    cap_w: float | None,
    max_j_per_th: float | None = None,
    floor_w: float | None = None,
) -> Hull:
    # One plan() has one max_j_per_th: the cache lives for one call, so it needs no key.
    key = (id(model), with_sleep, cap_w, floor_w)
    h = cache.get(key)
    if h is None:
        pts = allowed_points(model, with_sleep=with_sleep, cap_w=cap_w, max_j_per_th=max_j_per_th)
        if floor_w is not None:
            # From the highest point at or below the floor (the rig's own point) upward.
            below = [p.power_w for p in pts if p.power_w <= floor_w + _EPS_W]
            if below:
                pts = tuple(p for p in pts if p.power_w >= below[-1] - _EPS_W)
        h = cache[key] = build_hull(pts)
    return h


def _release_min_on(
    clist: list[_Class],
    hulls: dict[tuple[int, bool, float | None, float | None], Hull],
    rigs: Sequence[PlanRig],
    floor_w: float,
    budget_w: float,
    max_j_per_th: float | None = None,
) -> tuple[list[_Class], float]:
    """Shedding beats min-on: let the least efficient min-on rigs sleep until the floor fits."""
    held = [c for c in clist if c.kind is _Kind.MIN_ON]

    def efficiency(c: _Class) -> float:
        v = c.hull.vertices[0]
        return v.hashrate_ths / v.power_w if v.power_w > 0 else math.inf

    held.sort(key=lambda c: (efficiency(c), c.model.name, c.current_w))
    out = [c for c in clist if c.kind is not _Kind.MIN_ON]
    for c in held:
        excess = floor_w - budget_w
        base = c.hull.vertices[0].power_w
        sleep_w = c.model.sleep_power_w
        saving = base - sleep_w
        if excess <= _EPS_W or saving <= 0:
            out.append(c)
            continue
        k = min(len(c.members), math.ceil(excess / saving - 1e-9))
        c.members.sort(key=lambda i: rigs[i].rig_id)
        # The last members by rig_id go first; the first ones keep their window.
        keep, free = c.members[: len(c.members) - k], c.members[len(c.members) - k :]
        floor_w -= k * saving
        if keep:
            c.members = keep
            out.append(c)
        hull = _hull(hulls, c.model, True, c.cap_w, max_j_per_th)
        released = _Class(
            c.model, _Kind.RELEASED, c.regime, c.cap_w, c.current_w, free, hull, c.derate_note
        )
        out.append(released)
    return out, floor_w


def _greedy(
    clist: list[_Class], remaining_w: float, max_wakes: int | None, slow_first: bool = False
) -> int:
    """Buy hull upgrades best slope first; returns the number of rigs woken.

    slow_first: slowest-obeying models first, so the fastest are the ones left out."""
    segs: list[tuple[float, float, int, float, int, int]] = []
    for ci, c in enumerate(clist):
        c.taken = [0.0] * len(c.hull.segments)
        asleep = 1 if c.kind is _Kind.ASLEEP else 0
        speed = -c.model.sleep_time_s if slow_first else 0.0
        for k, s in enumerate(c.hull.segments):
            # Ties: awake rigs before waking sleepers, rigs already higher before lower ones.
            segs.append((speed, -s.slope, asleep, -c.current_w, ci, k))
    segs.sort()
    tokens = math.inf if max_wakes is None else max(0, max_wakes)
    wakes = 0
    for _, _, asleep, _, ci, k in segs:
        if remaining_w <= _EPS_W:
            break
        c = clist[ci]
        avail = float(len(c.members)) if k == 0 else math.floor(c.taken[k - 1] + 1e-9)
        if avail <= 0:
            continue
        s = c.hull.segments[k]
        if s.continuous:
            units = min(avail, remaining_w / s.dp_w)
        else:
            units = float(min(avail, math.floor(remaining_w / s.dp_w + 1e-9)))
        waking = asleep == 1 and k == 0
        if waking and units > tokens:
            units = float(tokens)
            c.wake_limited = True
        if units <= 0:
            continue
        c.taken[k] = units
        remaining_w -= units * s.dp_w
        if waking:
            tokens -= units
            wakes += int(units)
    for c in clist:
        c.groups = _groups_from_taken(c)
    return wakes


def _groups_from_taken(c: _Class) -> list[tuple[int, OpPoint]]:
    """Turn per-segment purchases into (count, point) groups, one partial rig at most."""
    verts = c.hull.vertices
    n = len(c.members)
    full = [math.floor(t + 1e-9) for t in c.taken]
    groups: list[tuple[int, OpPoint]] = []
    prev = n
    for j, v in enumerate(verts):
        nxt = full[j] if j < len(full) else 0
        count = prev - nxt
        if j < len(full):
            frac = c.taken[j] - full[j]
            if frac > 1e-9 and count > 0:
                s = c.hull.segments[j]
                part = OpPoint(
                    v.power_w + frac * s.dp_w, v.hashrate_ths + frac * s.dh_ths, None, v.curve_idx
                )
                groups.append((1, part))
                count -= 1
        if count > 0:
            groups.append((count, v))
        prev = nxt
    return groups


def _class_power(c: _Class) -> float:
    return sum(k * p.power_w for k, p in c.groups)


def _fixups(clist: list[_Class], remaining_w: float, max_wakes: int | None, wakes: int) -> int:
    """Spend what the greedy left on single-rig moves, biggest hashrate gain first."""
    tokens = math.inf if max_wakes is None else max(0, max_wakes) - wakes
    woken = 0
    for _ in range(_MAX_FIXUPS):
        if remaining_w <= _EPS_W:
            break
        best: tuple[float, float, int, int] | None = None
        best_to: OpPoint | None = None
        for ci, c in enumerate(clist):
            for gi, (_, p) in enumerate(c.groups):
                if p.sleep and c.kind is _Kind.ASLEEP and tokens < 1:
                    continue
                limit_w = p.power_w + remaining_w + _EPS_W
                for q in c.hull.points:
                    if q.power_w > limit_w:
                        break
                    gain = q.hashrate_ths - p.hashrate_ths
                    if gain > 1e-12:
                        cand = (gain, p.power_w - q.power_w, -ci, -gi)
                        if best is None or cand > best:
                            best, best_to = cand, q
                top = c.hull.curve_max_w
                if p.curve_idx >= 0 and p.power_w < top:
                    to_w = min(top, p.power_w + remaining_w)
                    gain = c.model.hashrate_at(to_w) - p.hashrate_ths
                    if gain > 1e-12:
                        cand = (gain, p.power_w - to_w, -ci, -gi)
                        if best is None or cand > best:
                            q = OpPoint(to_w, c.model.hashrate_at(to_w), None, p.curve_idx)
                            best, best_to = cand, q
        if best is None or best_to is None:
            break
        c = clist[-best[2]]
        gi = -best[3]
        count, p = c.groups[gi]
        if p.sleep and c.kind is _Kind.ASLEEP:
            tokens -= 1
            woken += 1
        remaining_w -= best_to.power_w - p.power_w
        if count == 1:
            c.groups[gi] = (1, best_to)
        else:
            c.groups[gi] = (count - 1, p)
            c.groups.append((1, best_to))
    return woken


def _reason(c: _Class, p: OpPoint) -> str:
    if p.sleep and c.priced_out:
        return PRICED_OUT_REASON
    if p.sleep:
        if c.kind is _Kind.ASLEEP:
            why = "asleep: max wakes per cycle" if c.wake_limited else "asleep: budget"
        elif c.kind is _Kind.RELEASED:
            why = "sleep: shedding overrides min-on"
        else:
            why = "sleep: budget"
        return why
    what = p.profile if p.profile is not None else f"{p.power_w:.0f} W"
    if c.kind is _Kind.ASLEEP:
        why = f"wake: {what}"
    elif c.kind is _Kind.MIN_ON and p == c.hull.vertices[0]:
        why = f"min-on: held awake at {what}"
    else:
        why = f"run: {what}"
    return why + c.derate_note


def _emit(c: _Class, rigs: Sequence[PlanRig], out: list[RigSetpoint]) -> None:
    """Hand out the groups to members: highest power to the lowest rig_ids (stable)."""
    members = c.members
    groups = sorted(c.groups, key=lambda g: -g[1].power_w)
    if len(groups) > 1:
        members.sort(key=lambda i: rigs[i].rig_id)
    pos = 0
    new_setpoint = RigSetpoint
    for count, p in groups:
        awake, power, profile, reason = not p.sleep, p.power_w, p.profile, _reason(c, p)
        for i in members[pos : pos + count] if pos or count < len(members) else members:
            r = rigs[i]
            prev = r.setpoint
            # Reusing an equal frozen setpoint skips a costly __init__ and lets the caller
            # find changes with `is`.
            if (
                prev is not None
                and prev.power_w == power
                and prev.awake is awake
                and prev.profile == profile
                and prev.reason == reason
                and prev.rig_id == r.rig_id
            ):
                out[i] = prev
            else:
                out[i] = new_setpoint(r.rig_id, awake, power, profile, reason)
        pos += count
