"""A rig the grid meter catches before its shed shows is trusted again as soon as a reading
shows the shed taking effect (issue 19). The real ControlCycle on the in-process plant, 20
LuxOS S19j Pro rigs at full load, some at the +1 profile, cut to 30 %: a rig whose last
reading predated its raise to +1 falls from 3.4 kW, which reads as "not yet moved" from
the 3.07 kW the cycle last saw, so the over-limit meter has it counted at nominal. Kept at
nominal while asleep until verification's settle time (25 s), it taught the loop a 2.6 kW
surplus that was not there, and the next raise went 0.47 kW over the limit. The plant's
auxiliary-load model is exact, so the loop has nothing real to learn."""

from __future__ import annotations

from pathlib import Path

from cycle_plant import CyclePlant

from minerd.model import RigProtocol, RigState
from minerd.profiles.loader import load_rig_model


def test_a_caught_rig_seen_asleep_is_not_counted_at_nominal_and_the_raise_stays_under(
    tmp_path: Path,
) -> None:
    model = load_rig_model("bitmain-s19jpro").for_family(RigProtocol.LUXOS)
    p = CyclePlant(tmp_path, model, n=20, margin_kw=0.61, ramp_up_kw_per_s=1.0, ki=0.3)
    p.run(5)
    full_kw = p.true_import_kw()
    p.set_limit(round(0.3 * full_kw, 1))
    first = len(p.results)
    p.run(30)

    caught = [r for r in p.results[first:] if r.decision.distrust]
    assert caught, "the meter never caught a shed early: nothing tested"
    # From 10 s after the cut (every shed landed by 5 s), no rig read asleep and told to
    # sleep is counted at nominal.
    for r in p.results[first + 10 :]:
        assert r.plan is not None
        for st, sp in zip(r.snapshot.rigs, r.plan.setpoints, strict=True):
            if st.fresh and st.reading.state is RigState.SLEEPING:
                assert "nominal" not in sp.reason, (st.rig_id, sp.reason)
    assert abs(p.results[-1].loop_integral_kw) < 1.0, p.results[-1].loop_integral_kw

    limit_kw = round(0.7 * full_kw, 1)
    raised_at_s = p.clock.now_s()
    p.set_limit(limit_kw)
    p.run(120)
    after = [imp for t, imp, _ in p.history if t > raised_at_s]
    assert max(after) <= limit_kw, max(after)
    assert sum(after[-10:]) / 10 >= 0.97 * limit_kw
