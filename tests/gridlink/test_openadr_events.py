"""OpenADR events to quota steps: the mapping rules, without a VTN."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from openleadr import objects
from openleadr.messaging import create_message, parse_message

from minerd.gridlink.openadr_events import Step, event_orders, event_steps
from minerd.gridlink.orders import Refused

T0 = 1_800_000_000.0
LEVELS = {1: 300.0, 2: 150.0, 3: 0.0}
CONTRACT_KW = 500.0


def at(s: float) -> datetime:
    return datetime.fromtimestamp(T0 + s, UTC)


def signal(name: str, kind: str, *intervals: tuple[float | None, float, float]) -> dict[str, Any]:
    return {
        "signal_name": name,
        "signal_type": kind,
        "intervals": [
            {"duration": timedelta(seconds=d), "signal_payload": p}
            | ({} if start is None else {"dtstart": at(start)})
            for start, d, p in intervals
        ],
    }


def event(*signals: dict[str, Any], ramp_s: float = 0.0) -> dict[str, Any]:
    period: dict[str, Any] = {"dtstart": at(0), "duration": timedelta(seconds=600)}
    if ramp_s:
        period["ramp_up"] = timedelta(seconds=ramp_s)
    return {
        "event_descriptor": {"event_id": "e1", "modification_number": 0},
        "active_period": period,
        "event_signals": list(signals),
    }


def test_simple_levels_map_through_the_table_and_level_0_sets_no_limit() -> None:
    ev = event(signal("simple", "level", (0, 60, 2.0), (60, 60, 0.0), (120, 60, 3.0)))
    assert event_steps(ev, LEVELS, CONTRACT_KW) == [
        Step(T0, T0 + 60, 150.0),
        Step(T0 + 60, T0 + 120, None),
        Step(T0 + 120, T0 + 180, 0.0),
    ]


def test_intervals_without_dtstart_follow_each_other_from_the_event_start() -> None:
    ev = event(signal("SIMPLE", "level", (None, 30, 1.0), (None, 30, 1.0)))
    assert event_steps(ev, LEVELS, CONTRACT_KW) == [Step(T0, T0 + 60, 300.0)]


def test_load_dispatch_setpoint_delta_and_load_control_capacity() -> None:
    setpoint = event(signal("LOAD_DISPATCH", "setpoint", (0, 60, 220.0)))
    delta = event(signal("LOAD_DISPATCH", "delta", (0, 60, 100.0)))
    capacity = event(signal("LOAD_CONTROL", "x-loadControlCapacity", (0, 60, 0.4)))
    assert event_steps(setpoint, LEVELS, CONTRACT_KW) == [Step(T0, T0 + 60, 220.0)]
    assert event_steps(delta, LEVELS, CONTRACT_KW) == [Step(T0, T0 + 60, 400.0)]
    assert event_steps(capacity, LEVELS, CONTRACT_KW) == [Step(T0, T0 + 60, 200.0)]


def test_setpoint_in_watts_is_scaled_to_kw() -> None:
    sig = signal("LOAD_DISPATCH", "setpoint", (0, 60, 220_000.0))
    sig["measurement"] = {"name": "powerReal", "scale": "none"}
    assert event_steps(event(sig), LEVELS, CONTRACT_KW) == [Step(T0, T0 + 60, 220.0)]


def test_overlapping_signals_hold_the_lowest_limit() -> None:
    ev = event(
        signal("simple", "level", (0, 120, 1.0)),
        signal("LOAD_DISPATCH", "setpoint", (60, 120, 200.0)),
    )
    assert event_steps(ev, LEVELS, CONTRACT_KW) == [
        Step(T0, T0 + 60, 300.0),
        Step(T0 + 60, T0 + 180, 200.0),
    ]


def test_ramp_up_starts_the_first_step_early() -> None:
    ev = event(signal("simple", "level", (0, 60, 2.0)), ramp_s=30.0)
    assert event_steps(ev, LEVELS, CONTRACT_KW) == [Step(T0 - 30, T0 + 60, 150.0)]


def test_an_event_with_no_supported_signal_is_refused() -> None:
    ev = event(signal("ELECTRICITY_PRICE", "price", (0, 60, 0.3)))
    out = event_steps(ev, LEVELS, CONTRACT_KW)
    assert isinstance(out, Refused) and "no supported signal" in out.reason


def test_orders_skip_steps_without_limit_and_past_ones_and_start_now_when_begun() -> None:
    steps = [
        Step(T0, T0 + 60, 150.0),
        Step(T0 + 60, T0 + 120, None),
        Step(T0 + 120, T0 + 180, 0.0),
    ]
    orders = event_orders(steps, "e1", 3, now_s=T0 + 30)
    assert [(o.limit_kw, o.start_s, o.end_s, o.reference) for o in orders] == [
        (150.0, None, T0 + 60, "openadr:e1:3:0"),
        (0.0, T0 + 120, T0 + 180, "openadr:e1:3:2"),
    ]
    assert event_orders(steps, "e1", 3, now_s=T0 + 200) == []


def test_ramp_up_as_openleadr_parses_it_off_the_wire() -> None:
    ev = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id="e1",
            modification_number=0,
            market_context="http://program.example",
            event_status="far",
            created_date_time=at(-60),
        ),
        active_period=objects.ActivePeriod(
            dtstart=at(0), duration=timedelta(seconds=60), ramp_up_period=timedelta(seconds=30)
        ),
        event_signals=[
            objects.EventSignal(
                intervals=[objects.Interval(at(0), timedelta(seconds=60), signal_payload=2.0)],
                signal_name="simple",
                signal_type="level",
                signal_id="s1",
            )
        ],
        targets=[{"ven_id": "v1"}],
    )
    xml = create_message(
        "oadrDistributeEvent", request_id="r1", vtn_id="VTN", events=[ev], disable_signature=True
    )
    _, payload = parse_message(xml)
    (parsed,) = payload["events"]
    assert event_steps(parsed, LEVELS, CONTRACT_KW) == [Step(T0 - 30, T0 + 60, 150.0)]
