"""Simulated firmware families (issue 13): --fleet groups, reaction times, the written config."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest
from firmware_fixtures import load
from simtest_helpers import cgminer

from minerd.clock import ManualClock
from minerd.model import RigProtocol
from minerd.settings import load_settings
from minerd.sim import SimSite
from minerd.sim.catalog import rig_model_names
from minerd.sim.cli import add_arguments, spec_from_args
from minerd.sim.family_servers import FAMILY_LISTENERS
from minerd.sim.fleet import RigFleet
from minerd.sim.fleet_spec import parse_fleet
from minerd.sim.spec import RigGroupSpec, SiteSpec, plan_rigs

ANTMINERS = ("bitmain-s19jpro", "bitmain-s21")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_fleet_text_makes_one_group_per_family_and_model() -> None:
    groups = parse_fleet(
        "luxos:2000,stock:4000,vnish:2000,whatsminer:1000,braiins:500,cgminer:501",
        ANTMINERS,
        rig_model_names(),
    )
    counts: dict[RigProtocol, int] = {}
    for g in groups:
        counts[g.protocol] = counts.get(g.protocol, 0) + g.count
        assert g.model == "microbt-m50s" if g.protocol is RigProtocol.WHATSMINER else True
    assert counts == {
        RigProtocol.LUXOS: 2000,
        RigProtocol.STOCK: 4000,
        RigProtocol.VNISH: 2000,
        RigProtocol.WHATSMINER: 1000,
        RigProtocol.BRAIINS: 500,
        RigProtocol.CGMINER: 501,
    }
    cg = [g for g in groups if g.protocol is RigProtocol.CGMINER]
    assert [(g.model, g.count) for g in cg] == [("bitmain-s19jpro", 251), ("bitmain-s21", 250)]


def test_fleet_item_with_a_model() -> None:
    (g,) = parse_fleet("stock:3:bitmain-s21", ANTMINERS, rig_model_names())
    assert (g.model, g.count, g.protocol) == ("bitmain-s21", 3, RigProtocol.STOCK)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("antos:5", "--fleet 'antos:5': unknown family (known: luxos, cgminer, stock,"),
        ("stock", "--fleet 'stock': expected FAMILY:COUNT or FAMILY:COUNT:MODEL"),
        ("stock:many", "--fleet 'stock:many': count must be a whole number"),
        ("stock:-1", "--fleet 'stock:-1': count must not be negative"),
        ("stock:1:s99", "--fleet 'stock:1:s99': unknown rig model 's99' (known: "),
        ("stock:1,stock:2", "--fleet 'stock:2': given twice"),
    ],
)
def test_fleet_mistakes_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_fleet(text, ANTMINERS, rig_model_names())
    assert str(info.value).startswith(message)


def test_cli_fleet_replaces_rigs_and_keeps_other_flags() -> None:
    spec = spec_from_args(_args("--fleet", "stock:2,vnish:1", "--modbus-rigs", "3"))
    assert [(g.protocol, g.count) for g in spec.groups] == [
        (RigProtocol.STOCK, 1),
        (RigProtocol.STOCK, 1),
        (RigProtocol.VNISH, 1),
        (RigProtocol.MODBUS, 3),
    ]
    plain = spec_from_args(_args("--rigs", "4"))  # without --fleet: LuxOS as before
    assert {g.protocol for g in plain.groups} == {RigProtocol.LUXOS}
    with pytest.raises(SystemExit, match="unknown family"):
        spec_from_args(_args("--fleet", "antos:1"))


def test_plans_carry_family_and_its_port() -> None:
    spec = SiteSpec(
        groups=(
            RigGroupSpec("bitmain-s21", 1, RigProtocol.STOCK),
            RigGroupSpec("microbt-m50s", 1, RigProtocol.WHATSMINER),
            RigGroupSpec("bitmain-s21", 1, RigProtocol.BRAIINS),
            RigGroupSpec("bitmain-s21", 1, RigProtocol.LUXOS),
        ),
        grpc_port=50061,
    )
    ports = {p.family: p.family_port for p in plan_rigs(spec)}
    assert ports == {
        RigProtocol.STOCK: 8080,
        RigProtocol.WHATSMINER: 4433,
        RigProtocol.BRAIINS: 50061,
        RigProtocol.LUXOS: 0,
    }
    assert set(FAMILY_LISTENERS) == {
        RigProtocol.STOCK,
        RigProtocol.VNISH,
        RigProtocol.WHATSMINER,
        RigProtocol.BRAIINS,
    }


def test_simulated_rig_sleeps_at_its_family_pace() -> None:
    spec = SiteSpec(
        groups=(
            RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.LUXOS),
            RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.STOCK),
        ),
        rig_port=0,
    )
    clock = ManualClock(1_764_400_000.0)
    fleet = RigFleet(plan_rigs(spec), clock)  # not started: physics only
    lux, stock = fleet.rigs["c001-r001"], fleet.rigs["c001-r002"]
    lux.command_sleep(clock.now_s())
    stock.command_sleep(clock.now_s())
    sleep_w = lux.model.sleep_power_w
    clock.advance(lux.model.reaction(RigProtocol.LUXOS).sleep_time_s + 1)
    assert lux.view(clock.now_s()).power_w < sleep_w + 50
    assert stock.view(clock.now_s()).power_w > 1000  # stock restarts bmminer: still drawing
    clock.advance(stock.model.reaction(RigProtocol.STOCK).sleep_time_s)
    assert stock.view(clock.now_s()).power_w < sleep_w + 50


@pytest.mark.asyncio
async def test_written_config_has_a_group_and_private_password_per_family(
    tmp_path: Path,
) -> None:
    spec = SiteSpec(
        groups=(
            RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.LUXOS),
            RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.STOCK),
            RigGroupSpec("bitmain-s21", 1, RigProtocol.VNISH),
            RigGroupSpec("microbt-m50s", 1, RigProtocol.WHATSMINER),
            RigGroupSpec("bitmain-s21", 1, RigProtocol.BRAIINS),
        ),
        rig_port=0,
        base_octet=94,
        workers=1,
        speed=10.0,
    )
    async with SimSite(spec) as site:
        path = tmp_path / "site.toml"
        site.write_config(path, api_listen="127.0.0.1:18081")
        settings = load_settings(path)
    groups = {g.driver: g for g in settings.rigs}
    assert set(groups) == {"luxos", "stock", "vnish", "whatsminer", "braiins"}
    assert groups["luxos"].password_file is None
    for driver, password in (
        ("stock", "root"),
        ("vnish", "admin"),
        ("whatsminer", "super"),
        ("braiins", "root"),
    ):
        g = groups[driver]
        assert g.password_value == password
        assert g.password_file is not None and g.password_file.parent == tmp_path
        assert stat.S_IMODE(os.stat(g.password_file).st_mode) == 0o600
    assert (groups["stock"].web_port, groups["vnish"].web_port) == (8080, 8080)
    assert groups["whatsminer"].api_port == 4433 and groups["braiins"].grpc_port == 50051


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("family", "fixture", "octet"),
    [(RigProtocol.VNISH, "vnish-s19", 95), (RigProtocol.BRAIINS, "bosminer-plus", 96)],
)
async def test_family_answers_4028_in_its_fixture_layout(
    family: RigProtocol, fixture: str, octet: int
) -> None:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", 1, family),), rig_port=0, base_octet=octet
    )
    clock = ManualClock(1_764_400_000.0)
    fleet = RigFleet(plan_rigs(spec), clock)
    await fleet.start()
    try:
        clock.advance(600)
        rig = fleet.rigs["c001-r001"]
        sections = {"version": "VERSION", "summary": "SUMMARY", "stats": "STATS", "devs": "DEVS"}
        for command, section in sections.items():
            want = load(fixture, command)
            got = await cgminer(rig.plan.host, fleet.port_of(rig), command)
            assert set(got) == set(want), command
            assert (
                got["STATUS"][0]["Description"].split()[0]
                == want["STATUS"][0]["Description"].split()[0]
            )
            assert len(got[section]) == len(want[section]), command
            for g, w in zip(got[section], want[section], strict=True):
                assert {k: _kind(v) for k, v in g.items()} == {k: _kind(v) for k, v in w.items()}, (
                    command
                )
        version = (await cgminer(rig.plan.host, fleet.port_of(rig), "version"))["VERSION"][0]
        if family is RigProtocol.VNISH:
            assert version["Type"] == "Antminer S19j Pro (vnish 1.2.6)"
        else:  # Braiins legacy: MH/s keys, BOSminer in version
            summary = (await cgminer(rig.plan.host, fleet.port_of(rig), "summary"))["SUMMARY"][0]
            assert summary["MHS 5s"] / 1e6 == pytest.approx(rig.view(clock.now_s()).hashrate_ths)
            assert "BOSminer" in version and not any(k.startswith("GHS") for k in summary)
    finally:
        await fleet.close()
