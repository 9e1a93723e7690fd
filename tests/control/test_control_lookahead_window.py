"""A scheduled cut is met when it starts, whatever comes after it: the look-ahead takes the
lowest limit anywhere in the next sleep time + 2 cycles, not only the limit at its far end.
A short low block (or the last block of a schedule, followed by the contract) inside the
look-ahead was missed by a single look at now + look-ahead (issue 13: with the stock
family's 45 s sleep the look-ahead spans several short blocks)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from control_models import PROFILE_RIG
from cycle_plant import CyclePlant

from minerd.model import Quota, QuotaSource

# Slow to shed, quick to wake (stock-like sleep): a look-ahead of 42 s.
SLOW_SHED_RIG = replace(PROFILE_RIG, name="test-slow-shed", sleep_time_s=40.0, wake_time_s=5.0)


def block(i: int, limit_kw: float, start_s: float, end_s: float | None) -> Quota:
    return Quota(f"b{i}", limit_kw, start_s, end_s, QuotaSource.SCHEDULE, start_s - 60.0, "t")


@pytest.mark.parametrize("then", ["higher block", "end of schedule"])
def test_short_low_block_inside_the_look_ahead_is_met_when_it_starts(
    tmp_path: Path, then: str
) -> None:
    p = CyclePlant(tmp_path, SLOW_SHED_RIG, n=20)
    p.run(20)
    full_kw = p.true_import_kw()
    ahead_s = p.cycle.lookahead_s
    now = p.clock.now_s()
    # A low block shorter than the look-ahead, known long before it starts: a look at the
    # far end alone sees it only while the far end is inside it, then wakes rigs again
    # before the block has even begun.
    low_from = now + 2 * ahead_s
    low_to = low_from + 10.0
    low_kw = round(0.3 * full_kw, 1)
    blocks = [block(0, full_kw * 1.5, now - 60.0, low_from), block(1, low_kw, low_from, low_to)]
    if then == "higher block":
        blocks.append(block(2, full_kw * 1.5, low_to, low_to + 600.0))
    p.cycle.quotas = blocks
    p.run(int(low_to - now) + 2)

    during = [imp for t, imp, _ in p.history if low_from <= t < low_to]
    assert during, "no step inside the low block"
    assert max(during) <= low_kw, f"{max(during):.1f} kW during a {low_kw} kW block"
