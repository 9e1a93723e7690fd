"""OpenADR 2.0b events to quotas: pure, so every mapping rule is testable without a VTN.

An event's signals become a timeline of limits: SIMPLE levels through the configured
level-to-kW table, LOAD_DISPATCH setpoints (kW, or the contract minus a delta) and
LOAD_CONTROL capacities (a fraction of the contract). Where signals overlap the lowest
limit holds. The first interval starts early by the event's ramp-up period, so the site is
at the target when the event begins. Each step is one quota, named by its reference
openadr:<event_id>:<modification>:<n>, so a re-delivered event stores nothing twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from minerd.gridlink.orders import Order, Refused

Event = Mapping[str, Any]  # as openleadr parses it

# SI scale prefixes of a signal's measurement, as factors to kW.
_TO_KW = {"none": 0.001, "k": 1.0, "M": 1000.0, "G": 1_000_000.0}


@dataclass(frozen=True)
class Step:
    start_s: float
    end_s: float
    limit_kw: float | None  # None: this interval sets no limit (e.g. SIMPLE level 0)


def event_id(event: Event) -> str:
    return str(event["event_descriptor"]["event_id"])


def modification(event: Event) -> int:
    return int(event["event_descriptor"].get("modification_number") or 0)


def status(event: Event) -> str:
    return str(event["event_descriptor"].get("event_status") or "")


def reference_prefix(ev_id: str) -> str:
    return f"openadr:{ev_id}:"


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else 0.0


def _ts(value: object) -> float:
    if not isinstance(value, datetime):
        raise ValueError(f"not a time: {value!r}")
    return value.timestamp()


def _signal_kw(
    signal: Mapping[str, Any], payload: float, levels: Mapping[int, float], contracted_kw: float
) -> float | Refused | None:
    name = str(signal.get("signal_name", "")).upper()
    kind = str(signal.get("signal_type", ""))
    measurement = signal.get("measurement") or {}
    factor = _TO_KW.get(str(measurement.get("scale", "k")), 1.0) if measurement else 1.0
    if name == "SIMPLE":
        return levels.get(round(payload))
    if name == "LOAD_DISPATCH" and kind == "setpoint":
        return max(0.0, payload * factor)
    if name == "LOAD_DISPATCH" and kind == "delta":
        return max(0.0, contracted_kw - payload * factor)
    if name == "LOAD_CONTROL" and kind == "x-loadControlCapacity":
        return max(0.0, min(1.0, payload)) * contracted_kw
    if name == "LOAD_CONTROL" and kind == "x-loadControlSetpoint":
        return max(0.0, payload * factor)
    return Refused(f"signal {name}/{kind} is not supported")


def _intervals(signal: Mapping[str, Any], event_start_s: float) -> list[tuple[float, float, float]]:
    """(start_s, end_s, payload) per interval; intervals without dtstart follow each other."""
    out = []
    at_s = event_start_s
    for interval in signal.get("intervals") or []:
        start_s = _ts(interval["dtstart"]) if interval.get("dtstart") else at_s
        end_s = start_s + _seconds(interval.get("duration"))
        out.append((start_s, end_s, float(interval["signal_payload"])))
        at_s = end_s
    return out


def event_steps(
    event: Event, levels: Mapping[int, float], contracted_kw: float
) -> list[Step] | Refused:
    """The event's limit over time, lowest where signals overlap, ramp-up included."""
    period = event.get("active_period") or {}
    start_s = _ts(period["dtstart"])
    pieces: list[tuple[float, float, float | None]] = []
    supported = False
    for signal in event.get("event_signals") or []:
        for a, b, payload in _intervals(signal, start_s):
            kw = _signal_kw(signal, payload, levels, contracted_kw)
            if isinstance(kw, Refused):
                continue
            supported = True
            if b > a:
                pieces.append((a, b, kw))
    if not supported:
        return Refused("no supported signal (SIMPLE, LOAD_DISPATCH, LOAD_CONTROL)")
    edges = sorted({t for a, b, _ in pieces for t in (a, b)})
    steps: list[Step] = []
    for a, b in itertools.pairwise(edges):
        covering = [kw for pa, pb, kw in pieces if pa <= a and b <= pb]
        if not covering:
            continue
        limits = [kw for kw in covering if kw is not None]
        kw = min(limits) if limits else None
        if steps and steps[-1].end_s == a and steps[-1].limit_kw == kw:
            steps[-1] = Step(steps[-1].start_s, b, kw)
        else:
            steps.append(Step(a, b, kw))
    # openleadr parses <x-eiRampUp> as "ramp_up"; its own objects call it ramp_up_period.
    ramp_s = _seconds(period.get("ramp_up", period.get("ramp_up_period")))
    if steps and ramp_s > 0:
        steps[0] = Step(steps[0].start_s - ramp_s, steps[0].end_s, steps[0].limit_kw)
    return steps


def event_orders(steps: Sequence[Step], ev_id: str, mod: int, now_s: float) -> list[Order]:
    """One quota per step that sets a limit and is not over yet."""
    prefix = reference_prefix(ev_id)
    return [
        Order(
            s.limit_kw,
            start_s=None if s.start_s <= now_s else s.start_s,
            end_s=s.end_s,
            reference=f"{prefix}{mod}:{n}",
        )
        for n, s in enumerate(steps)
        if s.limit_kw is not None and s.end_s > now_s
    ]
