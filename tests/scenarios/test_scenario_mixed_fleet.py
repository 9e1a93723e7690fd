"""Acceptance (issue 13): the real daemon on a mixed simulated fleet of every firmware family.

The fleet follows the shares of a real site (scenario_kit.FLEET_SHARES: LuxOS 20 %, stock
Antminer 40 %, Vnish 20 %, Whatsminer 10 %, Braiins OS+ 5 %, read-only cgminer 5 %), each
family through its own driver and simulated API (stock CGI with its 21 s replies and miner
restart, Vnish REST, Whatsminer v2/v3, Braiins gRPC). SHORTENED: 80 rigs at 5x (the 2,000-rig
run is benchmarks/bench_mixed_fleet.py). Rigs polled every 2 s, meter every 1 s, one control
cycle per second (all sim seconds). The import judged is the simulator's truth.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from scenario_kit import (
    COMMANDED,
    FAMILY_MODELS,
    Running,
    Sample,
    energy_over,
    fleet_counts,
    mixed_site_spec,
    running_site,
)

from minerd.model import Quota, QuotaSource, RigProtocol
from minerd.profiles import load_rig_model

SPEED = 5.0
RIGS = 80
CYCLE_S = 1.0
# The slowest commanded family's documented sleep time (stock Antminer, 45 s).
SLOWEST_SLEEP_S = max(load_rig_model(FAMILY_MODELS[f]).reaction(f).sleep_time_s for f in COMMANDED)


def ignoring_rigs(run: Running, share: float) -> list[str]:
    """`share` of the commanded rigs, taken from every commanded family in turn."""
    by_family: dict[RigProtocol, list[str]] = {}
    for plan in run.sim.plans:
        if plan.protocol in COMMANDED:
            by_family.setdefault(plan.protocol, []).append(plan.rig_id)
    want = max(len(by_family), round(share * len(run.sim.plans)))
    picked: list[str] = []
    while len(picked) < want:
        for ids in by_family.values():
            taken = [r for r in ids if r not in picked]
            if taken and len(picked) < want:
                picked.append(taken[len(taken) // 2])
    return picked


def over_message(run: Running, samples: list[Sample], limit_kw: float, t_cut: float) -> str:
    """Where the import went over the limit, and the daemon's cycles before it."""
    worst = max(samples, key=lambda s: s.power_kw)
    return (
        f"over {limit_kw} kW at {worst.t_s - t_cut:.2f} s after the cut "
        f"({worst.power_kw:.2f} kW):\n" + run.trace(worst.t_s - 20.0, worst.t_s + 2.0)
    )


async def site_api(run: Running) -> dict[str, object]:
    """GET /api/v1/site as a viewer, the way the status page reads it."""
    tokens = await asyncio.to_thread(Path(str(run.config) + ".tokens").read_text, "utf-8")
    viewer = next(
        line.split(" = ", 1)[1].strip('"')
        for line in tokens.splitlines()
        if line.startswith("viewer")
    )
    assert run.daemon.components is not None
    await run.daemon.components.api_started.wait()
    url = f"http://{run.daemon.settings.api.listen}/api/v1/site"
    async with httpx.AsyncClient(timeout=10.0) as http:
        reply = await http.get(url, headers={"Authorization": f"Bearer {viewer}"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert isinstance(body, dict)
    return body


async def cut_to_30_percent(run: Running) -> tuple[float, float, float]:
    """(full kW, limit kW, cut time) after a cut from full load to 30 %."""
    await run.sleep_sim(5.0)
    full_kw = await run.truth_kw()
    limit_kw = round(0.3 * full_kw, 1)
    return full_kw, limit_kw, run.post_quota(limit_kw).issued_at_s


@pytest.mark.asyncio
async def test_mixed_fleet_cut_to_30_percent_within_slowest_family_plus_two_cycles(
    tmp_path: Path,
) -> None:
    spec = mixed_site_spec(fleet_counts(RIGS), base_octet=191, speed=SPEED)
    async with running_site(spec, tmp_path) as run:
        # At least 90 % of the fleet's power can be commanded; plain cgminer is the rest.
        nominal = {f: load_rig_model(m).nominal_power_w for f, m in FAMILY_MODELS.items()}
        counts = fleet_counts(RIGS)
        fleet_w = sum(nominal[f] * n for f, n in counts.items())
        able_w = sum(nominal[f] * n for f, n in counts.items() if f in COMMANDED)
        await run.sleep_sim(3.0)
        site = await site_api(run)
        assert site["commandable_share"] == pytest.approx(able_w / fleet_w, abs=1e-4)
        assert float(str(site["commandable_share"])) >= 0.9
        rig_kw = float(str(site["rig_power_kw"]))
        assert 0.85 * rig_kw < float(str(site["commandable_power_kw"])) < rig_kw

        full_kw, limit_kw, t_cut = await cut_to_30_percent(run)
        await run.sleep_sim(SLOWEST_SLEEP_S + 30.0)

        under_s = run.recorder.first_under(limit_kw, t_cut) - t_cut
        after = run.recorder.between(t_cut + under_s)
        worst_kw = max(s.power_kw for s in after)
        bound_s = SLOWEST_SLEEP_S + 2 * CYCLE_S
        print(
            f"\nmixed {RIGS} rigs: cut {full_kw:.1f} -> {limit_kw} kW: under after "
            f"{under_s:.2f} s (bound {bound_s:.0f} s), worst afterwards {worst_kw:.2f} kW"
        )
        assert under_s <= bound_s, run.trace(t_cut - 1, t_cut + bound_s + 5)
        assert worst_kw <= limit_kw, over_message(run, after, limit_kw, t_cut)


@pytest.mark.asyncio
async def test_mixed_fleet_cut_met_with_10_percent_of_rigs_ignoring_commands(
    tmp_path: Path,
) -> None:
    spec = mixed_site_spec(fleet_counts(RIGS), base_octet=192, speed=SPEED)
    async with running_site(spec, tmp_path) as run:
        ignoring = ignoring_rigs(run, 0.10)
        for rig_id in ignoring:
            await run.sim.inject(rig_id, "ignores_commands")
        full_kw, limit_kw, t_cut = await cut_to_30_percent(run)
        # Seen to disobey only after its family's sleep time: then others are shed.
        settle_s = 2 * SLOWEST_SLEEP_S + 10.0
        await run.sleep_sim(settle_s + 30.0)

        under_s = run.recorder.first_under(limit_kw, t_cut) - t_cut
        late = run.recorder.between(t_cut + settle_s)
        worst_kw = max(s.power_kw for s in late)
        print(
            f"\nmixed {RIGS} rigs, {len(ignoring)} ignoring commands: cut {full_kw:.1f} -> "
            f"{limit_kw} kW: under after {under_s:.2f} s, worst after {settle_s:.0f} s "
            f"{worst_kw:.2f} kW"
        )
        assert worst_kw <= limit_kw, over_message(run, late, limit_kw, t_cut)
        truth = await run.sim.truth()
        rigs = truth["rigs"]
        assert isinstance(rigs, list)
        awake_ignoring = [r["id"] for r in rigs if r["id"] in ignoring and r["power_w"] > 1000]
        assert sorted(awake_ignoring) == sorted(ignoring), "the faulted rigs did not disobey"


SCHEDULE_SPEED = 8.0
SCHEDULE_RIGS = 60
BLOCK_S = 12.0
# Share of full load per block: a night-high, day-low day with a second evening valley.
SHAPE = (
    0.90, 0.85, 0.80, 0.70, 0.50, 0.35, 0.30, 0.30, 0.45, 0.60, 0.75, 0.90,
    0.90, 0.80, 0.60, 0.40, 0.30, 0.50, 0.70, 0.85, 0.90, 0.70, 0.50, 0.40,
)  # fmt: skip
# 10 % of the rigs fail at block 12, spread over the families (index into each family).
FAULTS = (
    (RigProtocol.LUXOS, "offline"),
    (RigProtocol.STOCK, "ignores_sleep"),
    (RigProtocol.STOCK, "hung"),
    (RigProtocol.VNISH, "hung"),
    (RigProtocol.WHATSMINER, "ignores_commands"),
    (RigProtocol.BRAIINS, "offline"),
)


@pytest.mark.asyncio
async def test_mixed_fleet_day_ahead_schedule_with_faults(tmp_path: Path) -> None:
    """SHORTENED like test_scenario_schedule: 24 blocks of 12 sim s (each limit step weighs
    300 times more than in a day of one-hour blocks, and a block is shorter than the stock
    family's 45 s sleep), 60 rigs at 8x; energy over integrated from the simulator's truth."""
    spec = mixed_site_spec(fleet_counts(SCHEDULE_RIGS), base_octet=193, speed=SCHEDULE_SPEED)
    async with running_site(spec, tmp_path) as run:
        faults = fault_rigs(run)
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
        for rig_id, fault in faults:
            await run.sim.inject(rig_id, fault)
        await run.sleep_sim(end - run.now_s() + 0.5)

        def limit_at(t_s: float) -> float:
            return blocks[min(len(blocks) - 1, int((t_s - start) // BLOCK_S))].limit_kw

        samples = run.recorder.between(start, end)
        over_kws, allowed_kws = energy_over(samples, limit_at)
        share = over_kws / allowed_kws
        worst = max(samples, key=lambda s: s.power_kw - limit_at(s.t_s))
        used = sum(s.power_kw for s in samples) / sum(limit_at(s.t_s) for s in samples)
        print(
            f"\nmixed schedule {len(blocks)} x {BLOCK_S:.0f} s, {SCHEDULE_RIGS} rigs, "
            f"{len(faults)} faulted: energy over {over_kws / 3600:.4f} kWh of "
            f"{allowed_kws / 3600:.2f} kWh allowed = {100 * share:.4f} %, worst excess "
            f"{worst.power_kw - limit_at(worst.t_s):.2f} kW, import / limit {100 * used:.1f} %"
        )
        assert share <= 0.001, run.trace(worst.t_s - 30.0, worst.t_s + 2.0)
        truth = await run.sim.truth()
        rigs = truth["rigs"]
        assert isinstance(rigs, list)
        faulted = {r["id"] for r in rigs if r["faults"]}
        assert faulted == {rig_id for rig_id, _ in faults}


def fault_rigs(run: Running, share: float = 0.10) -> list[tuple[str, str]]:
    """`share` of the rigs faulted, FAULTS taken in turn (the first, second... rig of each
    family named): on 60 rigs exactly FAULTS."""
    by_family: dict[RigProtocol, list[str]] = {}
    for plan in run.sim.plans:
        by_family.setdefault(plan.protocol, []).append(plan.rig_id)
    want = round(share * len(run.sim.plans))
    taken: dict[RigProtocol, int] = {}
    out: list[tuple[str, str]] = []
    while len(out) < want:
        before = len(out)
        for family, fault in FAULTS:
            i = taken.get(family, 0)
            if len(out) < want and i < len(by_family.get(family, [])):
                taken[family] = i + 1
                out.append((by_family[family][i], fault))
        if len(out) == before:
            break
    return out
