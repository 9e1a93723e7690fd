"""Site time does not jump with a stepped system clock (issue 18, fault matrix "clock ±10 min").

A fake source gives wall and monotonic time separately, as the kernel does: a step moves
only the wall; the SiteClock must keep site time on the monotonic seconds, report the step
(offset, once in the log), follow small differences by slewing, and never run backwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from minerd.clock import (
    SLEW_RATE,
    STEP_THRESHOLD_S,
    ManualClock,
    SiteClock,
    StepStatus,
    TimerHandle,
    step_status,
)
from minerd.sinks.clock_metrics import ClockOffsetCollector

T0 = 1_800_000_000.0


class FakeSource:
    """Wall and monotonic seconds that the test moves; a step moves the wall alone."""

    speed = 1.0

    def __init__(self) -> None:
        self.wall_s = T0
        self.mono_s = 100.0

    def pass_s(self, seconds: float) -> None:
        self.wall_s += seconds
        self.mono_s += seconds

    def step_s(self, seconds: float) -> None:
        self.wall_s += seconds

    def now_s(self) -> float:
        return self.wall_s

    def monotonic_s(self) -> float:
        return self.mono_s

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("not used")

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        raise AssertionError("not used")

    def call_later(self, seconds: float, callback: Callable[[], object]) -> TimerHandle:
        raise AssertionError("not used")


def steps_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "stepped" in r.getMessage()]


def test_undisturbed_site_time_is_the_wall() -> None:
    src = FakeSource()
    clock = SiteClock(src)
    for _ in range(10):
        src.pass_s(1.0)
        assert clock.now_s() == pytest.approx(src.wall_s)
    status = clock.status()
    assert status.offset_s == pytest.approx(0.0)
    assert (status.stepped, status.steps_total) == (False, 0)


def test_step_back_keeps_site_time_and_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="minerd.clock")
    src = FakeSource()
    clock = SiteClock(src)
    src.pass_s(5.0)
    before = clock.now_s()
    src.step_s(-600.0)
    for _ in range(30):
        src.pass_s(1.0)
        clock.now_s()
    assert clock.now_s() == pytest.approx(before + 30.0)  # the monotonic seconds, no jump
    status = clock.status()
    assert status.stepped and status.steps_total == 1
    assert status.offset_s == pytest.approx(-600.0)
    assert len(steps_logged(caplog)) == 1
    assert "-600.0 s" in steps_logged(caplog)[0]


def test_step_forward_does_not_end_a_quota_in_force() -> None:
    src = FakeSource()
    clock = SiteClock(src)
    quota_end_s = clock.now_s() + 120.0  # a quota in force for two more minutes
    src.step_s(+600.0)
    src.pass_s(60.0)
    assert clock.now_s() < quota_end_s  # still in force one minute later
    assert clock.status().offset_s == pytest.approx(600.0)
    assert clock.status().stepped
    src.pass_s(61.0)
    assert clock.now_s() > quota_end_s  # it ends when its time is up, not earlier


def test_small_difference_is_followed_by_slewing_never_backwards() -> None:
    src = FakeSource()
    clock = SiteClock(src)
    src.step_s(-1.5)  # within the threshold: an NTP correction, not a step
    last = clock.now_s()
    assert last == pytest.approx(T0)  # no time passed: nothing slewed, nothing went back
    for _ in range(200):
        src.pass_s(1.0)
        now = clock.now_s()
        # Forwards, at most 1 % slow (float seconds near 1.8e9 carry ~1e-6 of noise).
        assert 1.0 - SLEW_RATE - 1e-5 <= now - last <= 1.0 + 1e-5
        assert now >= src.wall_s - 1e-5  # approaches the wall from ahead, never overshoots
        last = now
    assert clock.now_s() == pytest.approx(src.wall_s)  # 1.5 s absorbed at 1 % in 150 s
    assert not clock.status().stepped and clock.status().steps_total == 0


def test_small_forward_difference_is_followed_at_the_slew_rate() -> None:
    src = FakeSource()
    clock = SiteClock(src)
    src.step_s(+1.0)
    src.pass_s(10.0)
    assert clock.now_s() == pytest.approx(T0 + 10.0 * (1.0 + SLEW_RATE))
    src.pass_s(100.0)
    assert clock.now_s() == pytest.approx(src.wall_s)


def test_wall_back_within_threshold_clears_the_step(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="minerd.clock")
    src = FakeSource()
    clock = SiteClock(src)
    src.step_s(-600.0)
    src.pass_s(1.0)
    assert clock.status().stepped
    src.step_s(+599.5)  # the operator fixes the time source; NTP steps it back
    src.pass_s(1.0)
    status = clock.status()
    assert not status.stepped and status.steps_total == 1
    assert abs(status.offset_s) <= STEP_THRESHOLD_S
    assert any("back within" in r.getMessage() for r in caplog.records)


def test_each_further_step_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="minerd.clock")
    src = FakeSource()
    clock = SiteClock(src)
    src.step_s(-600.0)
    clock.now_s()
    src.step_s(-600.0)
    clock.now_s()
    assert clock.status().steps_total == 2
    assert clock.status().offset_s == pytest.approx(-1200.0)
    assert len(steps_logged(caplog)) == 2


def test_step_status_and_metric() -> None:
    src = FakeSource()
    clock = SiteClock(src)
    assert step_status(ManualClock()) == StepStatus()  # a clock that cannot step
    src.step_s(-600.0)
    registry = CollectorRegistry()
    registry.register(ClockOffsetCollector(lambda: (clock.status().offset_s, 1)))
    text = generate_latest(registry).decode()
    assert "minerd_clock_offset_seconds -600.0" in text
    assert "minerd_clock_steps_total 1.0" in text
    assert step_status(clock).stepped


@pytest.mark.asyncio
async def test_waits_are_the_sources_and_wrap_is_idempotent() -> None:
    source = ManualClock(T0)
    clock = SiteClock.wrap(source)
    assert SiteClock.wrap(clock) is clock
    fired: list[float] = []
    clock.call_later(5.0, lambda: fired.append(clock.now_s()))
    await clock.sleep(4.0)
    assert fired == []
    await clock.sleep(1.0)
    await clock.sleep(0.0)  # the timer fires through the loop
    assert fired == [pytest.approx(T0 + 5.0)]
    assert clock.monotonic_s() == source.monotonic_s()
