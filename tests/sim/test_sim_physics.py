"""The simulator's rig physics: first-order ramps, and when a slice counts as ramping (its
worker then reports its power ten times as often: the site sums slices read at different
moments, and a swap across two workers read over a limit no rig passed)."""

from __future__ import annotations

import pytest

from minerd.sim.physics import RAMP_TAUS_PER_TIME, RAMPING_W, RampBank


def test_a_ramp_starts_at_once_and_settles_within_its_time() -> None:
    bank = RampBank([25.0, 3000.0], now_s=0.0)
    assert not bank.ramping(bank.power_all_w(0.0))
    bank.set_target(0, 10.0, 3000.0, 10.0)  # a wake over 10 s
    bank.set_target(1, 10.0, 25.0, 5.0)  # a sleep over 5 s
    first = bank.power_all_w(10.2)
    assert first[0] > 25.0 + 300.0 and first[1] < 3000.0 - 300.0  # both move at once
    assert bank.ramping(first)
    tau_s = 10.0 / RAMP_TAUS_PER_TIME
    assert bank.power_w(0, 10.0 + tau_s) == pytest.approx(3000.0 - 2975.0 / 2.718281828, rel=1e-6)
    settled = bank.power_all_w(10.0 + 2.0 * 10.0)  # 12 tau of the slower ramp
    assert not bank.ramping(settled)
    assert abs(settled[0] - 3000.0) <= RAMPING_W and abs(settled[1] - 25.0) <= RAMPING_W
