"""A raised limit is followed at the wake limit's pace (issue 19, "loss 2"): while
max_wakes_per_cycle holds rigs back, each batch of wakes goes out with the profile cuts that
pay for it, rather than a sleep time after them with the power already dropped. Outside such
waves a swap still waits for its shed (tests/runtime/test_runtime_intents.py). The real
ControlCycle on the in-process plant, LuxOS S19j Pro rigs (wake 10 s, fall 5 s), whose wake
takes two cycles: the profile is set while the rig sleeps, then it is woken."""

from __future__ import annotations

import math
from pathlib import Path

from cycle_plant import CyclePlant

from minerd.model import RigAction, RigProtocol
from minerd.profiles.loader import load_rig_model

RIGS = 200
WAKES_PER_CYCLE = 10


def test_a_raised_limit_wakes_a_batch_every_two_cycles_and_stays_under(tmp_path: Path) -> None:
    model = load_rig_model("bitmain-s19jpro").for_family(RigProtocol.LUXOS)
    p = CyclePlant(
        tmp_path,
        model,
        n=RIGS,
        min_on_s=5.0,
        min_off_s=5.0,
        margin_kw=2.0,
        ramp_up_kw_per_s=500.0,
        max_wakes_per_cycle=WAKES_PER_CYCLE,
    )
    p.run(10)
    p.set_limit(round(0.30 * p.full_kw, 1))
    p.run(90)
    raised_at_s = p.clock.now_s()
    first = len(p.results)
    p.set_limit(round(0.75 * p.full_kw, 1))
    p.run(60)

    wakes = [t for t, c in p.executor.sent if c.action is RigAction.WAKE and t > raised_at_s]
    assert len(wakes) > 5 * WAKES_PER_CYCLE, "the raise woke too few rigs to test waves"
    wave = p.results[first:]
    limited = [r for r in wave if r.plan is not None and r.plan.wake_limited]
    assert limited, "the wake limit never held a rig back"
    # Profile cuts went out during the waves: the wakes were paid for by lowering others.
    assert sum(len(r.dispatch.shed) for r in limited) > 0
    # A batch every two cycles (profile set, then wake) from the first: no wave waits for
    # the cuts that pay for it. Waiting a sleep time per wave took 38 cycles here, not 28.
    batches = math.ceil(len(wakes) / WAKES_PER_CYCLE)
    last_wake_cycle = round(max(wakes) - raised_at_s)
    assert last_wake_cycle <= 2 * batches + 2, f"last wake {last_wake_cycle} s after the raise"
    # Never over the limit on the way up.
    after = [(imp, lim) for t, imp, lim in p.history if t > raised_at_s]
    assert all(imp <= lim for imp, lim in after), max(imp - lim for imp, lim in after)
