"""Acceptance: a day-ahead schedule of 24 blocks with 10 % rig faults injected mid-way keeps
the energy over the limit at most 0.1 % of the energy the limit allows.

SHORTENED: the 24 blocks last BLOCK_S = 15 sim seconds each (a day of 6 minutes), run at 10x,
so each limit step weighs 240 times more than in a real day of one-hour blocks. 30 LuxOS
S19j Pro rigs; at block 12 three rigs (10 %) fail: one goes offline (refuses connections but
keeps drawing power), one ignores commands (answers success, does nothing), one hangs
(accepts, never answers). Energy over is integrated from the simulator's truth.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from scenario_kit import energy_over, running_site, site_spec

from minerd.model import Quota, QuotaSource

SPEED = 10.0
RIGS = 30
BLOCK_S = 15.0
# Share of full load per block: a night-high, day-low day with a second evening valley.
SHAPE = (
    0.90, 0.85, 0.80, 0.70, 0.50, 0.35, 0.30, 0.30, 0.45, 0.60, 0.75, 0.90,
    0.90, 0.80, 0.60, 0.40, 0.30, 0.50, 0.70, 0.85, 0.90, 0.70, 0.50, 0.40,
)  # fmt: skip
FAULTS = (("c001-r001", "offline"), ("c001-r002", "ignores_commands"), ("c001-r003", "hung"))


@pytest.mark.asyncio
async def test_day_ahead_schedule_with_rig_faults(tmp_path: Path) -> None:
    async with running_site(site_spec(RIGS, base_octet=205, speed=SPEED), tmp_path) as run:
        await run.sleep_sim(3.0)
        full_kw = await run.truth_kw()
        issued = run.now_s()
        start = issued + 10.0
        blocks = [
            Quota(
                quota_id=f"block-{i:02d}-{uuid.uuid4().hex[:6]}",
                limit_kw=round(share * full_kw, 1),
                start_s=start + i * BLOCK_S,
                end_s=start + (i + 1) * BLOCK_S,
                source=QuotaSource.SCHEDULE,
                issued_at_s=issued,
                issued_by="scenario-grid",
                reference=f"day-ahead block {i}",
            )
            for i, share in enumerate(SHAPE)
        ]
        run.site.stores.quotas.replace_schedule(blocks, by="scenario-grid")
        run.site.quotas_changed()
        end = start + len(SHAPE) * BLOCK_S

        await run.sleep_sim(start + 12 * BLOCK_S - run.now_s())
        for rig_id, fault in FAULTS:
            await run.sim.inject(rig_id, fault)
        await run.sleep_sim(end - run.now_s() + 0.5)

        def limit_at(t_s: float) -> float:
            return blocks[min(len(blocks) - 1, int((t_s - start) // BLOCK_S))].limit_kw

        samples = run.recorder.between(start, end)
        over_kws, allowed_kws = energy_over(samples, limit_at)
        share = over_kws / allowed_kws
        worst = max(s.power_kw - limit_at(s.t_s) for s in samples)
        used = sum(s.power_kw for s in samples) / sum(limit_at(s.t_s) for s in samples)
        second_half = [s for s in samples if s.t_s >= start + 12 * BLOCK_S]
        over_2, allowed_2 = energy_over(second_half, limit_at)
        daemon = run.site.stores.compliance.query(start - 60.0, end, 60.0, "minute")
        daemon_over_kwh = sum(r.energy_over_kwh for r in daemon)
        print(
            f"\nschedule {len(blocks)} x {BLOCK_S:.0f} s: energy over {over_kws / 3600:.4f} kWh "
            f"of {allowed_kws / 3600:.2f} kWh allowed = {100 * share:.4f} % "
            f"(after faults {100 * over_2 / allowed_2:.4f} %), worst excess {worst:.2f} kW, "
            f"import / limit {100 * used:.1f} %; daemon's minute records: "
            f"{daemon_over_kwh:.4f} kWh over in {len(daemon)} minutes"
        )
        assert share <= 0.001, run.trace(start - 1, end)
        truth = await run.sim.truth()
        rigs = truth["rigs"]
        assert isinstance(rigs, list)
        faulted = {r["id"]: r["faults"] for r in rigs if r["faults"]}
        assert set(faulted) == {rig_id for rig_id, _ in FAULTS}
