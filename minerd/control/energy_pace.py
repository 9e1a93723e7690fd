"""Energy inside a settlement interval: count what the site imported, pace the rest.

Two pure parts, both `f(state, inputs, config) -> state`-shaped:

count()  keeps the interval's energy so far from the grid meter: fresh power readings are
         integrated (trapezoid on the reading times) and, where the meter has an energy
         register, its delta is used instead while it agrees with the integral. A register
         that goes backwards or jumps by more than the site could draw at max_kw is a fault:
         it is no longer believed for the interval and the integral carries on. A stale meter
         counts the gap at the worst case until a fresh reading (or the register) settles it.

pace()   turns award, energy so far and time into a power limit: what is left of the target
         (target_fraction of the award) spread over what is left of the interval, plus the
         loop's margin (the loop aims margin under its limit), plus a learnt bias. In the
         last no_catchup part of the interval the pace may only fall: a site behind does
         not surge to catch up.

follow() learns that bias: the import the loop and planner settle at sits some kW under the
         limit they are given (plan granularity, faulted rigs, the loop's own residual). It
         integrates asked - drawn while the pace is the limit in force, bounded, so the site
         draws what the pace asks for instead of catching up only as the interval runs out.

Nothing here reads a clock: every time is passed in, epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

S_PER_H = 3600.0

FAULT_BACKWARDS = "energy register went backwards"
FAULT_JUMP = "energy register jumped"
FAULT_DRIFT = "energy register disagrees with integrated power"


@dataclass(frozen=True)
class PaceConfig:
    max_kw: float  # the most the site may draw (contracted limit): bounds a register step
    margin_kw: float = 0.0  # the loop's margin, given back so the import runs at the pace
    target_fraction: float = 0.998  # of the award: lag and noise stay within 99-100.2 %
    no_catchup_fraction: float = 0.1  # last part of the interval where the pace only falls
    agree_fraction: float = 0.02  # register and integral agree within this share...
    agree_floor_kwh: float = 0.02  # ...or this much (register resolution)...
    # ...or this many seconds at max_kw: a step in power between two readings puts the
    # trapezoid off by half of it, more than 2 % early in an interval.
    agree_floor_s: float = 10.0
    # A reading is stamped when its request starts; a stalled loop (or a slow meter) may
    # read the register seconds later, so one step can hold a few seconds more than its
    # stamps say. The steps sum to the truth all the same, and the drift check bounds
    # what is left: a jump is what not even this much slack explains (a meter swapped).
    step_slack_s: float = 10.0
    edge_split_s: float = 10.0  # readings this far apart split at an edge by time share
    bias_per_s: float = 0.05  # share of the shortfall (asked - drawn) learnt per second
    bias_max_fraction: float = 0.1  # |bias| at most this share of max_kw


@dataclass(frozen=True)
class MeterSample:
    """What the grid meter(s) said this cycle; energy_kwh None when a meter has no register."""

    taken_at_s: float
    power_kw: float
    energy_kwh: float | None
    fresh: bool
    read: bool = True  # False: no reading at all yet (the other fields mean nothing)
    # The meter sampled the register somewhere in [earliest_s, latest_s] (None: taken_at_s):
    # a read held by a busy loop or link. Edges and carrying on are judged on the safe side.
    earliest_s: float | None = None
    latest_s: float | None = None

    @property
    def first_s(self) -> float:
        return self.taken_at_s if self.earliest_s is None else self.earliest_s

    @property
    def final_s(self) -> float:
        return self.taken_at_s if self.latest_s is None else self.latest_s


@dataclass(frozen=True)
class EnergyCount:
    """Energy imported since start_s, as far as counted up to last_s."""

    start_s: float
    integral_kwh: float = 0.0  # trapezoid of fresh power, gaps settled
    register_kwh: float | None = None  # sum of accepted register deltas; None: not believed
    last_s: float | None = None  # time of the last fresh reading counted
    last_power_kw: float = 0.0
    last_register_kwh: float | None = None  # register at last_s
    pending_kwh: float = 0.0  # worst-case estimate of the gap since last_s (meter stale)
    pending_to_s: float | None = None  # pending_kwh counts up to here
    fault: str = ""  # "" or why the register is not believed in this interval
    # The interval's start, when the last reading was taken before it: the next reading's
    # step is split there (see _before_edge), the part before it being the last interval's.
    edge_s: float | None = None
    # The last reading's register was sampled within [last_first_s, last_final_s] (None:
    # last_s); see MeterSample.
    last_first_s: float | None = None
    last_final_s: float | None = None

    @property
    def energy_kwh(self) -> float:
        """Best estimate: the register while it agrees with the integral, plus any gap."""
        return self.settled_kwh + self.pending_kwh

    def energy_at_kwh(self, now_s: float) -> float:
        """energy_kwh carried on to now_s at the last power read: a reading is a second or
        more old when a cycle sees it, and the pace must not take that as energy missing.
        Carried on from the earliest moment the register may have been sampled, so a read
        held by a busy loop counts high, never low."""
        if self.pending_to_s is not None or self.last_s is None:
            return self.energy_kwh
        from_s = self.last_s if self.last_first_s is None else self.last_first_s
        if now_s <= from_s:
            return self.energy_kwh
        return self.energy_kwh + max(0.0, self.last_power_kw) * (now_s - from_s) / S_PER_H

    @property
    def final_s(self) -> float | None:
        """The latest moment the last reading's register may have been sampled."""
        return self.last_s if self.last_final_s is None else self.last_final_s

    @property
    def settled_kwh(self) -> float:
        if self.register_kwh is not None and not self.fault:
            return self.register_kwh
        return self.integral_kwh


def start_count(
    start_s: float, at_s: float, energy_kwh: float, sample: MeterSample | None
) -> EnergyCount:
    """A count that already holds energy_kwh at at_s (0 at the interval's start; below 0
    when at_s is before it: what was drawn from at_s to the start is the last interval's)."""
    if sample is None or not sample.fresh:
        return EnergyCount(start_s, integral_kwh=energy_kwh, pending_to_s=at_s)
    return EnergyCount(
        start_s,
        integral_kwh=energy_kwh,
        register_kwh=energy_kwh if sample.energy_kwh is not None else None,
        last_s=at_s,
        last_power_kw=sample.power_kw,
        last_register_kwh=sample.energy_kwh,
        last_first_s=sample.earliest_s,
        last_final_s=sample.latest_s,
    )


def _register_step(
    c: EnergyCount, reg_kwh: float | None, dt_s: float, config: PaceConfig
) -> tuple[float | None, str]:
    """(accepted register delta, fault) for one step; delta None when not usable."""
    if reg_kwh is None or c.last_register_kwh is None or c.fault:
        return None, c.fault
    delta = reg_kwh - c.last_register_kwh
    floor = config.agree_floor_kwh
    if delta < -floor:
        return None, FAULT_BACKWARDS
    if delta > config.max_kw * (dt_s + config.step_slack_s) / S_PER_H + floor:
        return None, FAULT_JUMP
    return max(0.0, delta), ""


def _before_edge(
    c: EnergyCount, sample: MeterSample, step_kwh: float, edge_s: float, config: PaceConfig
) -> float:
    """Of one step's energy, what was drawn before the edge. Readings a few seconds apart:
    its share by time (the power moves little in between). Further apart (a blind meter),
    the power may have done anything in between: only what the site cannot have drawn
    after the edge at max_kw, so the new interval is counted high rather than low (an
    interval counted low would draw over its award). Either way each register is taken as
    sampled as late as its read allows (MeterSample.latest_s): that too counts high."""
    a_s, b_s = c.final_s, sample.final_s
    assert a_s is not None and c.last_s is not None
    if b_s <= edge_s:
        return step_kwh  # all of it before the edge
    if sample.taken_at_s - c.last_s > config.edge_split_s:
        return max(0.0, step_kwh - config.max_kw * (b_s - edge_s) / S_PER_H)
    if a_s >= edge_s or b_s <= a_s:
        return 0.0
    share = (edge_s - a_s) / (b_s - a_s)
    return max(0.0, step_kwh * share)


def count(
    c: EnergyCount, sample: MeterSample, now_s: float, worst_kw: float, config: PaceConfig
) -> EnergyCount:
    """Take one cycle's meter sample. A stale meter adds worst_kw for the time it is blind."""
    if not sample.fresh:
        since = c.pending_to_s if c.pending_to_s is not None else c.last_s
        if since is None or now_s <= since:
            return replace(c, pending_to_s=now_s if since is None else max(now_s, since))
        return replace(
            c,
            pending_kwh=c.pending_kwh + max(0.0, worst_kw) * (now_s - since) / S_PER_H,
            pending_to_s=now_s,
        )
    t_s = sample.taken_at_s
    if c.last_s is None:
        # First fresh reading (after a start without one): the time before it is the gap.
        gap_kwh = c.pending_kwh
        if c.pending_to_s is not None and t_s > c.pending_to_s:
            gap_kwh += max(0.0, worst_kw) * (t_s - c.pending_to_s) / S_PER_H
        settled = c.integral_kwh + gap_kwh
        return replace(
            c,
            integral_kwh=settled,
            # The register counts on from here, on top of what was settled before it.
            register_kwh=settled if sample.energy_kwh is not None and not c.fault else None,
            last_s=t_s,
            last_power_kw=sample.power_kw,
            last_register_kwh=sample.energy_kwh,
            pending_kwh=0.0,
            pending_to_s=None,
            last_first_s=sample.earliest_s,
            last_final_s=sample.latest_s,
        )
    if t_s <= c.last_s:
        return c  # the same reading again: nothing new
    dt_s = t_s - c.last_s
    reg_delta, fault = _register_step(c, sample.energy_kwh, dt_s, config)
    if c.pending_to_s is not None:
        # Back from a stale spell: the register settles the gap when it has one, else the
        # worst case counted meanwhile (plus the last stretch at the fresh power) stands.
        tail_kwh = max(0.0, sample.power_kw) * max(0.0, t_s - c.pending_to_s) / S_PER_H
        step_kwh = reg_delta if reg_delta is not None else c.pending_kwh + tail_kwh
    else:
        step_kwh = (c.last_power_kw + sample.power_kw) / 2.0 * dt_s / S_PER_H
        step_kwh = max(0.0, step_kwh)
    before_kwh = 0.0
    if c.edge_s is not None:
        blind_no_register = c.pending_to_s is not None and reg_delta is None
        before_kwh = (
            0.0 if blind_no_register else _before_edge(c, sample, step_kwh, c.edge_s, config)
        )
    integral = c.integral_kwh + step_kwh - before_kwh
    register = c.register_kwh
    if register is not None and reg_delta is not None and not fault:
        register += reg_delta - before_kwh
        tolerance = max(
            config.agree_floor_kwh,
            config.max_kw * config.agree_floor_s / S_PER_H,
            config.agree_fraction * integral,
        )
        if abs(register - integral) > tolerance:
            fault = FAULT_DRIFT
    return EnergyCount(
        start_s=c.start_s,
        integral_kwh=integral,
        register_kwh=register if not fault else None,
        last_s=t_s,
        last_power_kw=sample.power_kw,
        last_register_kwh=sample.energy_kwh,
        fault=fault,
        edge_s=c.edge_s if c.edge_s is not None and sample.final_s <= c.edge_s else None,
        last_first_s=sample.earliest_s,
        last_final_s=sample.latest_s,
    )


@dataclass(frozen=True)
class Pace:
    """The power limit that ends the interval on its target, and why."""

    limit_kw: float
    target_kwh: float
    remaining_kwh: float
    remaining_s: float
    frozen_kw: float | None  # the cap held through the no-catch-up part (None before it)
    asked_kw: float = 0.0  # the import this pace wants (limit less margin and bias)


def follow(
    bias_kw: float, asked_kw: float, drawn_kw: float, dt_s: float, config: PaceConfig
) -> float:
    """The bias after dt_s in which the site drew drawn_kw while the pace asked asked_kw.
    Call it only while the pace was the limit in force (else the shortfall is the power
    limit's doing, and learning it would wind the bias up)."""
    rate = min(1.0, config.bias_per_s * max(0.0, dt_s))
    bound = config.bias_max_fraction * config.max_kw
    return max(-bound, min(bound, bias_kw + rate * (asked_kw - drawn_kw)))


def pace(
    award_kwh: float,
    energy_kwh: float,
    now_s: float,
    start_s: float,
    end_s: float,
    frozen_kw: float | None,
    config: PaceConfig,
    bias_kw: float = 0.0,
) -> Pace:
    """remaining target / remaining time (+ margin + bias), never rising in the no-catch-up
    part. Pace.asked_kw is the import wanted (without margin and bias).

    frozen_kw: the previous cycle's Pace.frozen_kw within the same interval (None at first).
    """
    target_kwh = config.target_fraction * award_kwh
    remaining_kwh = target_kwh - energy_kwh
    remaining_s = max(0.0, end_s - now_s)
    if remaining_kwh <= 0.0:
        return Pace(0.0, target_kwh, remaining_kwh, remaining_s, 0.0)
    if remaining_s <= 0.0:
        return Pace(0.0, target_kwh, remaining_kwh, 0.0, 0.0)
    asked_kw = remaining_kwh * S_PER_H / remaining_s
    limit_kw = max(0.0, asked_kw + config.margin_kw + bias_kw)
    # At most what the site may draw: a bigger figure only means "behind" and is no limit.
    limit_kw = min(limit_kw, config.max_kw)
    no_catchup_s = config.no_catchup_fraction * (end_s - start_s)
    if remaining_s > no_catchup_s:
        return Pace(limit_kw, target_kwh, remaining_kwh, remaining_s, None, asked_kw)
    if frozen_kw is not None:
        limit_kw = min(limit_kw, frozen_kw)
        asked_kw = min(asked_kw, limit_kw - config.margin_kw - bias_kw)
    return Pace(limit_kw, target_kwh, remaining_kwh, remaining_s, limit_kw, asked_kw)
