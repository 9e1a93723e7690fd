"""Use the limit (issue 19), the control logic alone: the issue's schedule on the issue's
site, run by the real ControlCycle (loop, planner, IntentBook, verification) on the
in-process plant (tests/cycle_plant.py) one second at a time on a ManualClock.

1,000 LuxOS S19j Pro rigs (the shipped profile, four presets), a day-ahead schedule of four
uneven blocks (60 %, 30 %, 75 %, 45 % of full load, 100 s each), 5 % of the rigs offline but
drawing power and 5 % ignoring commands, then every rig healthy. Judged by the plant's true
import once each block has settled (40 s): mean >= 97 % (faulted) / 98.5 % (healthy) of the
limit, never over it, energy over the limit <= 0.1 % of the energy allowed in all. As in the
benchmark, the seconds before a lower block in which the cycle meets that cut early (its
look-ahead) are not judged.

Deterministic: no sockets, no wall-clock, no CPU contention. The scenario test
(tests/scenarios/test_scenario_utilization.py) and `make bench` (bench_utilization.py) run
the same schedule against the simulator over the network, where timing adds to the gap; this
test pins what the control logic itself reaches, so a change to it that gives up utilization
fails here whatever the machine's load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cycle_plant import CyclePlant

from minerd.model import Quota, QuotaSource, RigProtocol
from minerd.profiles.loader import load_rig_model

RIGS = 1000
SHARES = (0.60, 0.30, 0.75, 0.45)
BLOCK_S = 100
SETTLE_S = 40
MARGIN_KW = 10.0  # 1 % of the lowest block, as in the benchmark


def faulted(ids: list[str], share: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Offline and ignoring rigs spread over the ids (the planner favours low ids)."""
    n = round(len(ids) * share)
    if n == 0:
        return (), ()
    step = len(ids) / n
    offline = tuple(ids[int(k * step)] for k in range(n))
    ignoring = tuple(ids[int(k * step + step / 2)] for k in range(n))
    return offline, ignoring


@pytest.mark.parametrize(("fault_share", "floor"), [(0.05, 0.97), (0.0, 0.985)])
def test_schedule_of_uneven_blocks_uses_the_limit_and_never_goes_over(
    tmp_path: Path, fault_share: float, floor: float
) -> None:
    model = load_rig_model("bitmain-s19jpro").for_family(RigProtocol.LUXOS)
    ids = [f"r{i:03d}" for i in range(1, RIGS + 1)]
    offline, ignoring = faulted(ids, fault_share)
    p = CyclePlant(
        tmp_path,
        model,
        n=RIGS,
        offline=offline,
        ignoring=ignoring,
        min_on_s=60.0,
        min_off_s=60.0,
        margin_kw=MARGIN_KW,
        ramp_up_kw_per_s=500.0,
        max_wakes_per_cycle=50,
    )
    p.run(20)
    full_kw = p.true_import_kw()
    start_s = p.clock.now_s() + 5.0
    blocks = [
        Quota(
            f"block-{i}",
            round(share * full_kw, 1),
            start_s + i * BLOCK_S,
            start_s + (i + 1) * BLOCK_S,
            QuotaSource.SCHEDULE,
            p.clock.now_s(),
            "day-ahead",
        )
        for i, share in enumerate(SHARES)
    ]
    p.cycle.quotas = blocks
    p.run(5 + len(blocks) * BLOCK_S)

    over_kws = allowed_kws = 0.0
    for i, q in enumerate(blocks):
        assert q.end_s is not None
        during = [(t, imp) for t, imp, _ in p.history if q.start_s < t <= q.end_s]
        over_kws += sum(max(0.0, imp - q.limit_kw) for _, imp in during)
        allowed_kws += q.limit_kw * len(during)
        # Before a lower block the cut is met early (the look-ahead): not judged as unused.
        lower_next = i + 1 < len(blocks) and blocks[i + 1].limit_kw < q.limit_kw
        end_s = q.end_s - (p.cycle.lookahead_s if lower_next else 0.0)
        settled = [imp for t, imp in during if q.start_s + SETTLE_S < t <= end_s]
        mean_kw = sum(settled) / len(settled)
        used = mean_kw / q.limit_kw
        print(f"block {i} {SHARES[i]:.0%}: limit {q.limit_kw} kW, settled mean {mean_kw:.1f} kW")
        assert max(settled) <= q.limit_kw, f"block {i}: {max(settled):.1f} kW over {q.limit_kw}"
        assert used >= floor, f"block {i} ({SHARES[i]:.0%}): {100 * used:.2f} % used"
    assert over_kws <= 0.001 * allowed_kws, f"{100 * over_kws / allowed_kws:.3f} % over"
    # The cycle knew why every kW under the limit went where it did.
    assert all(r.utilization is not None for r in p.results[-10:])
