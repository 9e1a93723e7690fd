"""50,000 rigs: an evaluation checks only the rigs whose status object changed, so it stays
cheap when the fleet state hands out the same objects (nothing changed). Counted here; how
fast it is (unchanged < 100 ms, all-new < 1 s, ratio >= 3) is benchmarks/bench_alerts.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from alerts_helpers import FACTS, make_engine, rig, snap

from minerd.alerts import ChangeKind
from minerd.alerts import engine as engine_module
from minerd.clock import ManualClock
from minerd.model import RigState

N = 50_000


def test_50k_rig_evaluation_checks_only_changed_rigs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real_mask = engine_module.rig_mask

    def counting_mask(st, *args):  # type: ignore[no-untyped-def]
        checked.append(st.rig_id)
        return real_mask(st, *args)

    monkeypatch.setattr(engine_module, "rig_mask", counting_mask)
    clock = ManualClock(1_800_000_000.0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    t0 = clock.now_s()
    rigs = [
        rig(f"r{i:05d}", f"C{i // 500:03d}", t=t0, hashrate_ths=50.0 if i % 1000 == 0 else 100.0)
        for i in range(N)
    ]
    s = snap(t0, rigs)

    def evaluate(snapshot: object) -> int:
        checked.clear()
        clock.advance(1)
        engine.evaluate(snapshot, FACTS, clock.now_s())  # type: ignore[arg-type]
        return len(checked)

    assert evaluate(s) == N  # first sight: every rig
    assert [evaluate(s) for _ in range(20)] == [0] * 20  # the same objects: none
    # New status objects every time (nothing cached): the full per-rig check.
    fresh_objs = [dataclasses.replace(r) for r in rigs]
    assert evaluate(snap(clock.now_s(), fresh_objs)) == N
    one = [*fresh_objs]
    one[7] = dataclasses.replace(one[7])
    assert evaluate(snap(clock.now_s(), one)) == 1  # one rig re-read: one rig checked
    fresh_objs = one
    assert len(engine.active()) == N // 1000  # the low-hashrate rigs fired

    # One container of 500 goes dark: one container alert, and only its rigs are checked.
    dark = [
        dataclasses.replace(r, fresh=False,
                            reading=dataclasses.replace(r.reading, state=RigState.OFFLINE))
        if r.container == "C007" else r
        for r in fresh_objs
    ]  # fmt: skip
    changes = []
    checked.clear()
    for _ in range(70):
        clock.advance(1)
        changes += engine.evaluate(snap(clock.now_s(), dark), FACTS, clock.now_s())
    fired = [c.alert for c in changes if c.kind is ChangeKind.FIRED]
    assert [(a.rule, dict(a.labels)["container"]) for a in fired] == [
        ("ContainerRigsOffline", "C007")
    ]
    assert len(checked) == 500
    db.close()
