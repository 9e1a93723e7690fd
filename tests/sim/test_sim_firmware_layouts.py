"""The simulator answers in the layouts real firmware sends (tests/fixtures/firmware).

For each firmware family the simulator emulates, a reply over TCP must have the fixture's
keys, the same JSON type per key and the same units; the values come from the rig's physics.
minerd's parser is checked on the same replies against the simulator's own state, so the
simulator is no longer its own reference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from firmware_fixtures import load
from sim_fleet import manual_clock, manual_fleet
from simtest_helpers import cgminer

from minerd.devices.rig_cgminer import parse_reading, profile_for_model_type, version_model_hint
from minerd.model import RigProtocol, RigState
from minerd.sim.fleet import RigFleet
from minerd.sim.rig import RigSim
from minerd.sim.spec import RigGroupSpec, SiteSpec

# rig id -> (model, protocol, fixture directory, commands with a fixture)
REPORTS = ("version", "summary", "stats", "devs")
RIGS = {
    "c001-r001": ("bitmain-s19jpro", RigProtocol.CGMINER, "antminer-s19j-pro", REPORTS),
    "c001-r002": ("bitmain-s21", RigProtocol.CGMINER, "antminer-s21", REPORTS),
    "c001-r003": ("bitmain-s19jpro", RigProtocol.LUXOS, "luxos-s19kpro", REPORTS),
    "c001-r004": ("microbt-m50s", RigProtocol.CGMINER, "whatsminer-m50s-v2", REPORTS[1:]),
}
SECTIONS = {"version": "VERSION", "summary": "SUMMARY", "stats": "STATS", "devs": "DEVS"}


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(
        groups=tuple(RigGroupSpec(model, 1, proto) for model, proto, _, _ in RIGS.values()),
        rig_port=0,
        base_octet=73,
    )
    async with manual_fleet(spec, start_s=1_764_400_000.0) as f:
        yield f


def _kind(value: object) -> str:
    """The JSON type a client sees (int and float are both JSON numbers)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def _layout(item: dict[str, Any]) -> dict[str, str]:
    return {k: _kind(v) for k, v in item.items()}


async def _ask(fleet: RigFleet, rig: RigSim, command: str) -> Any:
    return await cgminer(rig.plan.host, fleet.port_of(rig), command)


@pytest.mark.asyncio
@pytest.mark.parametrize("rig_id", sorted(RIGS))
async def test_replies_have_the_fixture_layout(fleet: RigFleet, rig_id: str) -> None:
    _, _, fixture, commands = RIGS[rig_id]
    rig = fleet.rigs[rig_id]
    manual_clock(fleet).advance(600)  # past warm-up: counters and uptime are non-zero
    for command in commands:
        want, got = load(fixture, command), await _ask(fleet, rig, command)
        section = SECTIONS[command]
        assert set(got) == set(want), (command, set(got) ^ set(want))
        assert _layout(got["STATUS"][0]) == _layout(want["STATUS"][0]), command
        assert (
            got["STATUS"][0]["Description"].split()[0]
            == want["STATUS"][0]["Description"].split()[0]
        ), command
        assert len(got[section]) == len(want[section]), command
        for g, w in zip(got[section], want[section], strict=True):
            assert _layout(g) == _layout(w), (command, _diff(_layout(g), _layout(w)))


def _diff(got: dict[str, str], want: dict[str, str]) -> dict[str, tuple[str, str]]:
    keys = set(got) | set(want)
    return {
        k: (got.get(k, "-"), want.get(k, "-")) for k in sorted(keys) if got.get(k) != want.get(k)
    }


@pytest.mark.asyncio
@pytest.mark.parametrize("rig_id", sorted(RIGS))
async def test_units_and_model_as_firmware_sends_them(fleet: RigFleet, rig_id: str) -> None:
    model_name, protocol, _, _ = RIGS[rig_id]
    rig = fleet.rigs[rig_id]
    manual_clock(fleet).advance(600)
    now_s = manual_clock(fleet).now_s()
    truth_ths = rig.view(now_s).hashrate_ths
    assert truth_ths > 50
    summary = (await _ask(fleet, rig, "summary"))["SUMMARY"][0]
    if model_name == "microbt-m50s":
        # btminer v2: MH/s keys, Factory GHS in GH/s, power in W
        assert "GHS 5s" not in summary
        assert summary["MHS 5s"] / 1e6 == pytest.approx(truth_ths, rel=1e-6)
        assert summary["Factory GHS"] == rig.model.nominal_hashrate_ths * 1000
        assert summary["Power"] == pytest.approx(rig.view(now_s).power_w, abs=0.5)
        return
    assert not any(k.startswith("MHS") for k in summary)
    assert summary["GHS 5s"] / 1000 == pytest.approx(truth_ths, rel=1e-6)
    stats = (await _ask(fleet, rig, "stats"))["STATS"]
    s1 = stats[1]
    assert s1["rate_unit"] == "GH"
    assert s1["GHS av"] / 1000 == pytest.approx(truth_ths, rel=1e-6)
    assert s1["total_rateideal"] == rig.model.nominal_hashrate_ths * 1000
    chain_ths = sum(float(s1[f"chain_rate{n}"]) for n in range(1, 4)) / 1000
    assert chain_ths == pytest.approx(truth_ths, rel=1e-3)
    # 4 slots for a 3-board S19-class rig; the 4th is empty the way each firmware says it
    assert s1["chain_acn4"] == 0 and s1["chain_acs4"] == ""
    assert s1["chain_rate4"] == ("0" if protocol is RigProtocol.LUXOS else "")
    assert "chain_acn5" not in s1
    typ = (await _ask(fleet, rig, "version"))["VERSION"][0]["Type"]
    assert typ == stats[0]["Type"] == rig.model.model and not typ.startswith("Bitmain")
    assert profile_for_model_type(typ) == model_name
    if protocol is RigProtocol.CGMINER:
        assert "POWER" not in str(stats) and "Power" not in s1  # stock: no power on 4028


@pytest.mark.asyncio
@pytest.mark.parametrize("rig_id", sorted(RIGS))
async def test_minerd_reads_the_simulator_as_it_is(fleet: RigFleet, rig_id: str) -> None:
    from minerd.profiles import load_rig_model

    model_name, _, _, _ = RIGS[rig_id]
    rig = fleet.rigs[rig_id]
    clock = manual_clock(fleet)
    model = load_rig_model(model_name)
    clock.advance(600)
    now_s = clock.now_s()
    summary, stats = await _ask(fleet, rig, "summary"), await _ask(fleet, rig, "stats")
    r = parse_reading(rig_id, now_s, model, summary, stats)
    v = rig.view(now_s)
    assert r.state is RigState.HASHING, r.reason
    assert r.hashrate_ths == pytest.approx(v.hashrate_ths, rel=1e-6)
    assert (r.boards_ok, r.boards_total) == (3, 3)
    assert r.chip_temp_max_c == pytest.approx(max(v.chip_temps_c), abs=0.5)
    assert r.fan_rpm_min == min(v.fan_rpms)
    hint = version_model_hint(await _ask(fleet, rig, "version"))
    assert hint.startswith(model.model)

    if model_name != "microbt-m50s":
        # Antminer layouts show a dead board in stats; btminer shows boards only in `devs`,
        # which the read-only cgminer driver does not request.
        rig.set_fault("dead_board", True, now_s)
        clock.advance(60)
        now_s = clock.now_s()
        stats = await _ask(fleet, rig, "stats")
        r = parse_reading(rig_id, now_s, model, await _ask(fleet, rig, "summary"), stats)
        assert r.state is RigState.FAULT and r.reason == "dead board: 1 of 3"
        assert (r.boards_ok, r.boards_total) == (2, 3)
        s1 = stats["STATS"][1]
        assert s1["miner_count"] == 2 and s1["chain_acn3"] == 0 and s1["chain_acs3"] == ""
        rig.set_fault("dead_board", False, now_s)

    rig.command_sleep(now_s)
    clock.advance(60)
    now_s = clock.now_s()
    r = parse_reading(
        rig_id, now_s, model, await _ask(fleet, rig, "summary"), await _ask(fleet, rig, "stats")
    )
    assert r.state is RigState.SLEEPING and r.hashrate_ths == 0
    assert r.boards_total == 3  # asleep is not "boards missing"
