"""Rigs whose next read is only late (issue 19): a poller fallen behind is not a fleet at
nominal power. The real ControlCycle on the in-process plant, LuxOS S19j Pro rigs held at
lowered profiles by a limit, then 40 % of them not read for longer than their stale age
(30 s here) while the grid meter stays fresh. Counted at nominal, those rigs looked about
30 kW heavier than they drew and the cycle shed the rigs it could read; counted at their
last reading they leave the others alone, and a late rig that does rise is load the meter
shows. Past late_reading_trust_s, or with the grid meter silent, they are counted at nominal
again."""

from __future__ import annotations

from pathlib import Path

from cycle_plant import CyclePlant

from minerd.model import RigAction, RigProtocol
from minerd.profiles.loader import load_rig_model

RIGS = 50
LATE = {f"r{i:03d}" for i in range(1, 21)}
LATE_S = 45  # past the plant's 30 s stale age, within the cycle's 60 s trust


def _plant(tmp_path: Path) -> CyclePlant:
    model = load_rig_model("bitmain-s19jpro").for_family(RigProtocol.LUXOS)
    p = CyclePlant(tmp_path, model, n=RIGS, margin_kw=2.0, ramp_up_kw_per_s=500.0)
    p.run(10)
    p.set_limit(round(0.70 * p.full_kw, 1))
    p.run(120)
    return p


def _lowering(p: CyclePlant, since_s: float) -> list[str]:
    """Rigs the cycle slept or moved to a lower profile after since_s."""
    out = []
    for t, c in p.executor.sent:
        if t <= since_s:
            continue
        if c.action is RigAction.SLEEP:
            out.append(c.rig_id)
        elif c.action is RigAction.SET_PROFILE and c.profile is not None:
            profile = p.model.profile(c.profile)
            if profile is not None and profile.power_w < p.rigs[c.rig_id].power_w:
                out.append(c.rig_id)
    return out


def test_late_rigs_are_counted_as_read_and_healthy_rigs_are_not_shed(tmp_path: Path) -> None:
    p = _plant(tmp_path)
    limit_kw = p.limit_kw
    late_w = sum(p.rigs[r].power_w for r in LATE)
    overcount_w = len(LATE) * p.model.nominal_power_w - late_w
    assert overcount_w > 10_000.0, "the late rigs must run well under nominal for this test"
    settled_kw = p.true_import_kw()
    assert settled_kw > 0.95 * (limit_kw - 2.0), "the site did not settle near its limit"

    p.late |= LATE
    late_from_s = p.clock.now_s()
    p.run(LATE_S)
    last = p.results[-1]
    assert last.plan is not None
    reasons = {s.rig_id: s.reason for s in last.plan.setpoints}
    # Stale by now, and counted at the last reading, not moved.
    assert all("counted as measured" in reasons[r] for r in LATE), reasons
    assert _lowering(p, late_from_s) == []
    during = [imp for t, imp, _ in p.history if t > late_from_s]
    assert min(during) > 0.95 * (limit_kw - 2.0)
    assert max(during) <= limit_kw


def _counted_at_nominal(p: CyclePlant) -> bool:
    last = p.results[-1]
    assert last.plan is not None
    counted = {s.rig_id: s for s in last.plan.setpoints}
    return all(
        "nominal" in counted[r].reason and counted[r].power_w == p.model.nominal_power_w
        for r in LATE
    )


def test_late_rigs_go_back_to_nominal_past_the_trust(tmp_path: Path) -> None:
    p = _plant(tmp_path)
    p.late |= LATE
    p.run(31)  # stale now, within the trust
    assert not _counted_at_nominal(p)
    p.run(40)  # their readings are over 60 s old: unknown again
    assert _counted_at_nominal(p)


def test_late_rigs_are_counted_at_nominal_on_a_silent_grid_meter(tmp_path: Path) -> None:
    p = _plant(tmp_path)
    p.late |= LATE
    p.run(31)
    assert not _counted_at_nominal(p)
    p.read_meter = lambda: None  # type: ignore[method-assign]
    p.run(8)  # past the meter's 5 s stale age: the fail-safe's worst case
    assert p.results[-1].decision.failsafe
    assert _counted_at_nominal(p)


def test_a_late_rig_that_rises_unseen_is_shed_for_by_the_meter(tmp_path: Path) -> None:
    p = _plant(tmp_path)
    limit_kw = p.limit_kw
    p.late |= LATE
    p.run(35)
    # Unseen, the late rigs go back to full power (a reboot to the stock profile).
    for r in LATE:
        p.rigs[r].target_w = p.model.nominal_power_w
    rose_at_s = p.clock.now_s()
    p.run(25)
    after = [(t, imp) for t, imp, _ in p.history if t > rose_at_s]
    over = [t for t, imp in after if imp > limit_kw]
    # The meter shows it and the loop sheds the rigs it reads for it, within a few cycles.
    assert _lowering(p, rose_at_s), "nothing was shed for the rise"
    assert after[-1][1] <= limit_kw
    assert len(over) <= 8, f"over the limit for {len(over)} s"
