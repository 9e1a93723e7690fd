"""IntentBook, directly and table-driven: setpoints in, commands out; readings in, verdicts
out, cycle by cycle on a ManualClock (issue 14.8). Rig models come from
tests/control/control_models.py: profile, power-target and sleep-only rigs."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from control.control_models import CURVE_RIG, PROFILE_RIG, SLEEP_ONLY_RIG

from minerd.clock import ManualClock
from minerd.model import (
    RigAction,
    RigCommand,
    RigProtocol,
    RigReading,
    RigSetpoint,
    RigState,
    RigStatus,
)
from minerd.runtime.intents import IntentBook

H, S = RigState.HASHING, RigState.SLEEPING
MODELS = {"prof": PROFILE_RIG, "curve": CURVE_RIG, "sleeper": SLEEP_ONLY_RIG}


def status(
    rig_id: str,
    at_s: float,
    state: RigState,
    power_w: float = 0.0,
    profile: str | None = None,
    *,
    fresh: bool = True,
    maintenance: bool = False,
) -> RigStatus:
    reading = RigReading(rig_id, at_s, state, "", power_w=power_w, profile=profile)
    return RigStatus(
        rig_id,
        MODELS[rig_id].name,
        "c1",
        "127.0.0.1",
        4028,
        RigProtocol.LUXOS,
        reading,
        fresh,
        maintenance=maintenance,
    )


@dataclass(frozen=True)
class DiffRow:
    rig: str
    state: RigState
    power_w: float
    profile: str | None
    setpoint: tuple[bool, float, str | None]  # awake, power_w, profile
    want: RigAction | None
    shed: bool = True  # where the command goes: shed (first) or raise
    maintenance: bool = False


DIFF_ROWS = [
    DiffRow("prof", H, 3200.0, "p3200", (False, 20.0, None), RigAction.SLEEP),
    DiffRow("prof", H, 3200.0, "p3200", (True, 2600.0, "p2600"), RigAction.SET_PROFILE),
    DiffRow("prof", H, 2000.0, "p2000", (True, 3200.0, "p3200"), RigAction.SET_PROFILE, False),
    DiffRow("prof", H, 2600.0, "p2600", (True, 2600.0, "p2600"), None),
    DiffRow("prof", S, 20.0, None, (False, 20.0, None), None),
    DiffRow("curve", H, 3000.0, None, (True, 2990.0, None), None),  # inside the deadband
    DiffRow("curve", H, 3000.0, None, (True, 2000.0, None), RigAction.SET_POWER),
    DiffRow("curve", H, 2000.0, None, (True, 3000.0, None), RigAction.SET_POWER, False),
    DiffRow("curve", S, 20.0, None, (True, 3000.0, None), RigAction.WAKE, False),
    DiffRow("sleeper", H, 3000.0, None, (False, 20.0, None), RigAction.SLEEP),
    DiffRow("sleeper", H, 3000.0, None, (True, 3000.0, None), None),
    DiffRow("prof", H, 3200.0, "p3200", (False, 20.0, None), None, maintenance=True),
]


@pytest.mark.parametrize("row", DIFF_ROWS, ids=lambda r: f"{r.rig}-{r.state.value}-{r.want}")
def test_diff_makes_only_the_commands_that_change_something(row: DiffRow) -> None:
    clock = ManualClock()
    book = IntentBook(MODELS)
    st = status(
        row.rig, clock.now_s(), row.state, row.power_w, row.profile, maintenance=row.maintenance
    )
    awake, power_w, profile = row.setpoint
    d = book.diff([RigSetpoint(row.rig, awake, power_w, profile)], {row.rig: st}, clock.now_s())
    cmds = [*d.shed, *d.raise_]
    assert [c.action for c in cmds] == ([] if row.want is None else [row.want])
    if row.want is not None:
        assert (d.shed if row.shed else d.raise_) == tuple(cmds)
    # Told once: the same setpoint a cycle later sends nothing (nothing was read since).
    clock.advance(1.0)
    again = book.diff([RigSetpoint(row.rig, awake, power_w, profile)], {row.rig: st}, clock.now_s())
    assert not again.shed and not again.raise_


def test_raises_are_held_while_shedding_is_outstanding() -> None:
    clock = ManualClock()
    book = IntentBook(MODELS)
    statuses = {
        "prof": status("prof", clock.now_s(), H, 3200.0, "p3200"),
        "curve": status("curve", clock.now_s(), H, 2000.0),
    }
    setpoints = [RigSetpoint("prof", False, 20.0), RigSetpoint("curve", True, 3000.0)]
    d = book.diff(setpoints, statuses, clock.now_s(), allow_raise=False)
    assert [c.rig_id for c in d.shed] == ["prof"] and d.raise_ == () and d.held == ("curve",)
    # The plan counts the held raise; the loop must not (the rig still draws 2,000 W).
    assert d.held_rise_w == 1000.0
    clock.advance(1.0)
    # The caller no longer holds raises, but the shed is still landing (no reading yet).
    d = book.diff(setpoints, statuses, clock.now_s())
    assert d.shed == () and d.raise_ == () and d.held == ("curve",) and d.held_rise_w == 1000.0
    clock.advance(5.0)  # its sleep time is up: the held raise goes out now
    d = book.diff(setpoints, statuses, clock.now_s())
    assert d.shed == () and [(c.rig_id, c.power_w) for c in d.raise_] == [("curve", 3000.0)]
    assert d.held_rise_w == 0.0


def test_a_raise_waits_for_the_sheds_still_landing_then_goes() -> None:
    clock = ManualClock()
    book = IntentBook(MODELS)
    statuses = {
        "prof": status("prof", clock.now_s(), H, 3200.0, "p3200"),
        "curve": status("curve", clock.now_s(), H, 2000.0),
    }
    d = book.diff([RigSetpoint("prof", False, 20.0)], statuses, clock.now_s())
    assert [c.rig_id for c in d.shed] == ["prof"]
    clock.advance(1.0)
    # Its reading still shows it hashing: the shed is landing, the raise waits.
    assert book.sheds_landing(clock.now_s(), lambda r: statuses[r])
    raise_curve = [RigSetpoint("curve", True, 3000.0)]
    d = book.diff(raise_curve, statuses, clock.now_s())
    assert d.raise_ == () and d.held == ("curve",)
    # Read asleep: landed, the raise goes.
    statuses["prof"] = status("prof", clock.now_s(), S, 20.0)
    assert not book.sheds_landing(clock.now_s(), lambda r: statuses[r])
    d = book.diff(raise_curve, statuses, clock.now_s())
    assert [(c.rig_id, c.power_w) for c in d.raise_] == [("curve", 3000.0)]


def test_a_wake_paid_by_sheds_goes_with_them_when_it_draws_only_after_they_fall() -> None:
    """In a wave of wakes (wakes_with_sheds: the wake limit holds rigs back), one rig
    lowered and another woken with its watts: the woken rig draws after its wake time
    (10 s), the lowered one has fallen by its sleep time (5 s), so the wake need not wait
    for the shed; a raise that lands at once (a power target), or a wake faster than the
    shed falls, still waits."""
    fast = replace(SLEEP_ONLY_RIG, name="fast-waker", wake_time_s=2.0)
    models = {**MODELS, "fast": fast}
    clock = ManualClock()
    book = IntentBook(models)
    statuses = {
        "prof": status("prof", clock.now_s(), H, 3200.0, "p3200"),
        "curve": status("curve", clock.now_s(), H, 2000.0),
        "sleeper": status("sleeper", clock.now_s(), S, 20.0),
    }
    fast_st = status("sleeper", clock.now_s(), S, 20.0)
    statuses["fast"] = replace(fast_st, rig_id="fast", model=fast.name)
    setpoints = [
        RigSetpoint("prof", True, 2000.0, "p2000"),  # lowered: falls within 5 s
        RigSetpoint("sleeper", True, 3000.0),  # woken: draws after 10 s
        RigSetpoint("curve", True, 3000.0),  # raised: lands at once
        RigSetpoint("fast", True, 3000.0),  # woken: draws after 2 s
    ]
    d = book.diff(setpoints, statuses, clock.now_s(), wakes_with_sheds=True)
    assert [c.rig_id for c in d.shed] == ["prof"]
    assert [(c.rig_id, c.action) for c in d.raise_] == [("sleeper", RigAction.WAKE)]
    assert set(d.held) == {"curve", "fast"}
    # Six seconds on, the shed's sleep time is up: the others go.
    clock.advance(6.0)
    d = book.diff(setpoints[2:], statuses, clock.now_s())
    assert {c.rig_id for c in d.raise_} == {"curve", "fast"} and d.held == ()


def test_outside_a_wave_of_wakes_a_swap_waits_for_its_shed() -> None:
    """A steady block (the wake limit holds nothing back): the same swap keeps today's
    order, the wake held until the lowered rig has fallen."""
    clock = ManualClock()
    book = IntentBook(MODELS)
    statuses = {
        "prof": status("prof", clock.now_s(), H, 3200.0, "p3200"),
        "sleeper": status("sleeper", clock.now_s(), S, 20.0),
    }
    setpoints = [RigSetpoint("prof", True, 2000.0, "p2000"), RigSetpoint("sleeper", True, 3000.0)]
    d = book.diff(setpoints, statuses, clock.now_s())
    assert [c.rig_id for c in d.shed] == ["prof"] and d.raise_ == () and d.held == ("sleeper",)
    clock.advance(1.0)
    d = book.diff(setpoints[1:], statuses, clock.now_s())
    assert d.raise_ == () and d.held == ("sleeper",)  # still landing: no reading at p2000
    clock.advance(5.0)
    d = book.diff(setpoints[1:], statuses, clock.now_s())
    assert [(c.rig_id, c.action) for c in d.raise_] == [("sleeper", RigAction.WAKE)]


def test_a_profile_rig_woken_at_a_new_profile_gets_the_profile_first() -> None:
    """Per cycle: the profile is set while it sleeps, and the wake follows on the next diff."""
    clock = ManualClock()
    book = IntentBook(MODELS)
    asleep = {"prof": status("prof", clock.now_s(), S, 20.0)}
    sp = [RigSetpoint("prof", True, 2600.0, "p2600")]
    steps = []
    for _ in range(3):
        d = book.diff(sp, asleep, clock.now_s())
        steps.append([(c.action, c.profile) for c in d.raise_])
        book.take_redo()
        clock.advance(1.0)
    assert steps == [[(RigAction.SET_PROFILE, "p2600")], [(RigAction.WAKE, "p2600")], []]


# (seconds after the command, reading state, verdict: "bad", "good" or "")
VERIFY_ROWS = [
    (10.0, H, ""),  # before sleep_time_s + margin (5 + 20 s): not judged yet
    (26.0, H, ""),  # first reading that disobeys: one mismatch is not a verdict
    (30.0, H, "bad"),  # the second: unresponsive
    (32.0, H, "bad"),  # still disobeying: every reading judged says so
    (35.0, S, "good"),  # obeys again
    (40.0, S, ""),
]


def test_verify_judges_each_reading_once_after_the_settle_time() -> None:
    clock = ManualClock()
    book = IntentBook(MODELS, verify_margin_s=20.0)
    t0 = clock.now_s()
    d = book.diff(
        [RigSetpoint("prof", False, 20.0)],
        {"prof": status("prof", t0, H, 3200.0, "p3200")},
        t0,
    )
    assert [c.action for c in d.shed] == [RigAction.SLEEP]
    verdicts = []
    for after_s, state, _ in VERIFY_ROWS:
        clock.advance(t0 + after_s - clock.now_s())
        st = status("prof", clock.now_s(), state, 3200.0 if state is H else 20.0, "p3200")
        bad, good = book.verify([st], clock.now_s())
        # The same reading seen by a second cycle is not a second mismatch.
        assert book.verify([st], clock.now_s()) == (set(), set())
        verdicts.append("bad" if bad else "good" if good else "")
    assert verdicts == [v for _, _, v in VERIFY_ROWS]


def test_a_shed_is_unconfirmed_until_a_reading_after_its_show_time_shows_it() -> None:
    clock = ManualClock()
    book = IntentBook(MODELS)
    t0 = clock.now_s()
    hashing = status("prof", t0, H, 3200.0, "p3200")
    book.diff([RigSetpoint("prof", False, 20.0)], {"prof": hashing}, t0)
    assert book.unconfirmed(t0 + 60.0) == ([], [])  # not acknowledged: not in the meter yet
    clock.advance(0.5)
    show_s = book.acknowledged("prof", clock.now_s())
    assert show_s == pytest.approx(1.0)  # a fifth of the 5 s sleep time
    assert book.acknowledged("prof", clock.now_s()) is None  # once
    acked = clock.now_s()
    # (meter reading time, reading of the rig or None, (caught, unread))
    rows: list[tuple[float, RigStatus | None, tuple[list[str], list[str]]]] = [
        (acked + 0.9, None, ([], [])),  # the meter could not show it yet
        (acked + 1.0, None, ([], ["prof"])),  # it could: not read since
        (acked + 2.0, status("prof", acked + 1.5, H, 3200.0, "p3200"), (["prof"], [])),
        (acked + 3.0, status("prof", acked + 2.5, S, 20.0), ([], [])),  # seen asleep
    ]
    for meter_at_s, reading, want in rows:
        if reading is not None:
            book.observe_sheds(lambda _rig, st=reading: st)
        assert book.unconfirmed(meter_at_s) == want, meter_at_s


def test_restored_intents_are_not_sent_again() -> None:
    clock = ManualClock()
    book = IntentBook(MODELS)
    slept_at = clock.now_s() - 120.0
    book.restore(
        [(RigCommand("prof", RigAction.SLEEP), slept_at)],
        switches={"prof": slept_at, "unknown-rig": slept_at},
    )
    assert len(book) == 1 and book.since_switch_s("prof", clock.now_s()) == pytest.approx(120.0)
    # The rig still reads as hashing (it has not been read since the restart): no re-send.
    st = status("prof", clock.now_s(), H, 3200.0, "p3200")
    d = book.diff([RigSetpoint("prof", False, 20.0)], {"prof": st}, clock.now_s())
    assert d.shed == () and d.raise_ == ()
    book.forget("prof")  # an unresponsive rig: the next diff sends it again
    d = book.diff([RigSetpoint("prof", False, 20.0)], {"prof": st}, clock.now_s())
    assert [c.action for c in d.shed] == [RigAction.SLEEP]
    assert book.since_switch_s("prof", clock.now_s()) == 0.0  # told to switch just now


def test_a_restored_profile_command_counts_at_its_profile_not_at_nominal() -> None:
    """After a restart a rig last told p2000 is believed at 2000 W: raising it to p2600
    is a raise, held until the loop has measured the site (it was taken for a shed from
    nominal 3200 W and sent at once)."""
    clock = ManualClock()
    book = IntentBook(MODELS)
    told_at = clock.now_s() - 60.0
    book.restore([(RigCommand("prof", RigAction.SET_PROFILE, profile="p2000"), told_at)])
    st = status("prof", clock.now_s(), H, 2000.0, "p2000")
    up = [RigSetpoint("prof", True, 2600.0, profile="p2600")]
    d = book.diff(up, {"prof": st}, clock.now_s(), allow_raise=False)
    assert d.shed == () and d.raise_ == () and d.held == ("prof",)
    d = book.diff(up, {"prof": st}, clock.now_s(), allow_raise=True)
    assert [c.profile for c in d.raise_] == ["p2600"] and d.shed == ()


def test_a_shed_after_a_raise_its_reading_predates_is_tracked_from_the_raise() -> None:
    """Raised p2000 -> p3200, then lowered to p2600 before a reading shows the raise: the
    shed is tracked from 3200 W, what the rig may draw by now. From the old 2000 W reading
    it looked like no shed at all, and a rig that took the raise and ignored the cut was
    never caught."""
    clock = ManualClock()
    book = IntentBook(MODELS)
    t0 = clock.now_s()
    before_raise = status("prof", t0, H, 2000.0, "p2000")
    clock.advance(1.0)
    up = book.diff([RigSetpoint("prof", True, 3200.0, "p3200")], {"prof": before_raise}, t0 + 1)
    assert [c.profile for c in up.raise_] == ["p3200"]
    clock.advance(1.0)
    down = book.diff([RigSetpoint("prof", True, 2600.0, "p2600")], {"prof": before_raise}, t0 + 2)
    assert [c.profile for c in down.shed] == ["p2600"]
    clock.advance(0.5)
    show_s = book.acknowledged("prof", clock.now_s())
    assert show_s is not None
    acked = clock.now_s()
    took_the_raise = status("prof", acked + show_s + 0.5, H, 3200.0, "p3200")
    book.observe_sheds(lambda _rig: took_the_raise)
    assert book.unconfirmed(acked + show_s + 1.0) == (["prof"], [])
    # A reading that shows the cut confirms it.
    book.observe_sheds(lambda _rig: status("prof", acked + show_s + 1.5, H, 2600.0, "p2600"))
    assert book.unconfirmed(acked + show_s + 2.0) == ([], [])
