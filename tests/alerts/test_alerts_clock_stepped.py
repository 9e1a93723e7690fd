"""A system clock step raises ClockStepped (issue 18): from a SiteClock whose wall source
steps, through step_status() into the alert engine's facts; it resolves once the wall clock
is back within the threshold of site time."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from alerts_helpers import FACTS, SITE, make_engine, rig, snap

from minerd.alerts import AlertChange, ChangeKind
from minerd.clock import ManualClock, SiteClock, TimerHandle, step_status
from minerd.model import Severity

T0 = 1_800_000_000.0


class SteppableWall:
    """A ManualClock's time, with a wall that can step alone (as a system clock step does)."""

    speed = 1.0

    def __init__(self, base: ManualClock) -> None:
        self.base = base
        self.step_s = 0.0

    def now_s(self) -> float:
        return self.base.now_s() + self.step_s

    def monotonic_s(self) -> float:
        return self.base.monotonic_s()

    async def sleep(self, seconds: float) -> None:
        await self.base.sleep(seconds)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return self.base.timeout(seconds)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> TimerHandle:
        return self.base.call_later(seconds, callback)


def test_clock_step_fires_clock_stepped_and_resolves(tmp_path: Path) -> None:
    base = ManualClock(T0)
    wall = SteppableWall(base)
    clock = SiteClock(wall)
    engine, db = make_engine(tmp_path / "alerts.db", base)
    changes: list[AlertChange] = []

    def evaluate(seconds: int) -> None:
        for _ in range(seconds):
            base.advance(1.0)
            step = step_status(clock)
            facts = dataclasses.replace(
                FACTS, clock_stepped=step.stepped, clock_offset_s=step.offset_s
            )
            t = clock.now_s()
            changes.extend(engine.evaluate(snap(t, [rig("r0", t=t)]), facts, t))

    evaluate(5)
    assert changes == []
    wall.step_s = -600.0
    evaluate(1)
    assert [(c.kind, c.alert.rule, c.alert.severity) for c in changes] == [
        (ChangeKind.FIRED, "ClockStepped", Severity.WARNING)
    ]
    alert = changes[0].alert
    assert dict(alert.labels) == {"site": SITE}
    assert "-600" in alert.summary and "restart minerd" in alert.description
    evaluate(120)
    assert len(changes) == 1  # one alert while the step lasts
    wall.step_s = 0.0  # the time source is fixed
    evaluate(30)
    assert len(changes) == 1  # clears only after 60 s back within the threshold
    evaluate(40)
    assert [(c.kind, c.alert.rule) for c in changes[1:]] == [(ChangeKind.RESOLVED, "ClockStepped")]
    db.close()
