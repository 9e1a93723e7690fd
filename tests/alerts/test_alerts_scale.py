"""50,000 rigs: an evaluation is cheap, and cheaper still when the fleet state hands out
the same status objects (nothing changed)."""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

from alerts_helpers import FACTS, make_engine, rig, snap

from minerd.alerts import ChangeKind
from minerd.clock import ManualClock
from minerd.model import RigState

N = 50_000


def test_50k_rig_evaluation_cost(tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    t0 = clock.now_s()
    rigs = [
        rig(f"r{i:05d}", f"C{i // 500:03d}", t=t0, hashrate_ths=50.0 if i % 1000 == 0 else 100.0)
        for i in range(N)
    ]
    s = snap(t0, rigs)

    def timed() -> float:
        clock.advance(1)
        start = time.perf_counter()
        engine.evaluate(s, FACTS, clock.now_s())
        return time.perf_counter() - start

    first = timed()
    reused = statistics.median(timed() for _ in range(15))
    # New status objects every time (nothing cached): the full per-rig check.
    fresh_objs = [dataclasses.replace(r) for r in rigs]
    full = []
    for _ in range(3):
        fresh_objs = [dataclasses.replace(r) for r in fresh_objs]
        clock.advance(1)
        s2 = snap(clock.now_s(), fresh_objs)
        start = time.perf_counter()
        engine.evaluate(s2, FACTS, clock.now_s())
        full.append(time.perf_counter() - start)
    full_s = statistics.median(full)
    print(f"50k rigs: first {first * 1e3:.1f} ms, unchanged {reused * 1e3:.2f} ms, "
          f"all new objects {full_s * 1e3:.1f} ms ({full_s / reused:.0f}x)")  # fmt: skip
    assert len(engine.active()) == N // 1000  # the low-hashrate rigs fired
    assert reused < 0.1
    assert full_s < 1.0
    assert reused * 3 < full_s

    # One container of 500 goes dark: one container alert, and the cost stays small.
    dark = [
        dataclasses.replace(r, fresh=False,
                            reading=dataclasses.replace(r.reading, state=RigState.OFFLINE))
        if r.container == "C007" else r
        for r in fresh_objs
    ]  # fmt: skip
    changes = []
    for _ in range(70):
        clock.advance(1)
        changes += engine.evaluate(snap(clock.now_s(), dark), FACTS, clock.now_s())
    fired = [c.alert for c in changes if c.kind is ChangeKind.FIRED]
    assert [(a.rule, dict(a.labels)["container"]) for a in fired] == [
        ("ContainerRigsOffline", "C007")
    ]
    db.close()
