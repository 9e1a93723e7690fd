"""RigOffline says how long the rig has been silent: the time the condition held, not the age
of its last failed poll (which is only seconds old)."""

from __future__ import annotations

from pathlib import Path

from alerts_helpers import FACTS, make_engine, rig, snap

from minerd.alerts import ChangeKind
from minerd.clock import ManualClock
from minerd.model import RigState

T0 = 1_800_000_000.0


def test_rig_offline_states_the_silence_it_fired_after(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    fired = []
    for _ in range(40):
        clock.advance(1.0)
        t = clock.now_s()
        # Each failed poll writes a fresh offline reading: its age stays near zero.
        rigs = [rig("r0", "C1", t=t), rig("r1", "C1", t=t, state=RigState.OFFLINE, fresh=False)]
        fired += [
            c for c in engine.evaluate(snap(t, rigs, None), FACTS, t) if c.kind is ChangeKind.FIRED
        ]
    (change,) = fired
    alert = change.alert
    assert alert.rule == "RigOffline"
    assert alert.starts_at_s == T0 + 1.0  # the condition began at the first evaluation
    # Fired when the condition had held `for` (10 s in these thresholds): it says so.
    assert "has not answered for 10 s" in alert.description
    db.close()
