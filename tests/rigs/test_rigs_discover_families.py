"""`minerd discover` on a mixed simulated fleet: each rig's firmware family and model, one
inventory per (family, model), [[rigs]] groups that `minerd check` accepts; a hung rig does
not stall the scan and a model without a profile is reported, not crashed on."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import struct
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from firmware_fixtures import FIRMWARE_DIR, load
from servers import free_port
from sim_fleet import start_on_free_ports

from minerd.cli.check import run_check
from minerd.cli.discover import ScanProgress, add_arguments, discover, run
from minerd.clock import ManualClock
from minerd.daemon.assembly import build_devices
from minerd.devices.detect import FamilyPorts
from minerd.devices.inventory import read_inventory_csv
from minerd.devices.rig_braiins import BraiinsRig
from minerd.devices.rig_luxos import CgminerRig, LuxosRig
from minerd.devices.rig_stock import StockRig
from minerd.devices.rig_vnish import VnishRig
from minerd.devices.rig_whatsminer import WhatsminerRig
from minerd.model import RigProtocol
from minerd.settings.loader import load_settings
from minerd.sim.family_base import SIM_LOGINS
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec, plan_rigs

NET = "127.163.0"
# Rigs land on NET.1, NET.2, ... in group order.
GROUPS = (
    RigGroupSpec("bitmain-s19jpro", 2, RigProtocol.LUXOS),
    RigGroupSpec("bitmain-s19jpro", 2, RigProtocol.STOCK),
    RigGroupSpec("bitmain-s21", 1, RigProtocol.STOCK),
    RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.VNISH),
    RigGroupSpec("microbt-m50s", 1, RigProtocol.WHATSMINER),
    RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.BRAIINS),
    RigGroupSpec("bitmain-s21", 1, RigProtocol.CGMINER),
)
EXPECTED = {  # group name -> last octets of its rigs
    "luxos-bitmain-s19jpro": [1, 2],
    "stock-bitmain-s19jpro": [3, 4],
    "stock-bitmain-s21": [5],
    "vnish-bitmain-s19jpro": [6],
    "whatsminer-microbt-m50s": [7],
    "braiins-bitmain-s19jpro": [8],
    "cgminer-bitmain-s21": [9],
}
DRIVER_CLASSES: dict[RigProtocol, type] = {
    RigProtocol.LUXOS: LuxosRig,
    RigProtocol.STOCK: StockRig,
    RigProtocol.VNISH: VnishRig,
    RigProtocol.WHATSMINER: WhatsminerRig,
    RigProtocol.BRAIINS: BraiinsRig,
    RigProtocol.CGMINER: CgminerRig,
}
BASE_CONFIG = """\
[site]
name = "t"
timezone = "UTC"

[grid]
contracted_limit_kw = 5000
failsafe_limit_kw = 3000
margin_kw = 50

[[meters]]
name = "grid-main"
profile = "eastron-sdm630"
endpoint = "tcp://127.0.0.1:1502"
role = "grid"

"""
# A site-local rig profile (fictional model "M1") kept by the profiles_dir tests.
ACME_M1 = (
    Path(__file__).parents[1] / "config" / "fixtures" / "site-profiles" / "rigs" / "acme-m1.toml"
)
# Generous per-probe timeout: the simulated rigs answer at once, but the machine is loaded.
TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Site:
    fleet: RigFleet
    port: int
    ports: FamilyPorts


@pytest_asyncio.fixture
async def site() -> AsyncIterator[Site]:
    # Every rig has its own loopback address, so all share one port per API, as on a real
    # site (80, 4433, 50051): discover probes the same ports on every host.
    def pick() -> tuple[int, FamilyPorts]:
        return free_port(), FamilyPorts(free_port(), free_port(), free_port())

    def build(picked: tuple[int, FamilyPorts]) -> RigFleet:
        port, ports = picked
        spec = SiteSpec(
            groups=GROUPS,
            rig_port=port,
            web_port=ports.web_port,
            whatsminer_api_port=ports.api_port,
            grpc_port=ports.grpc_port,
            base_octet=163,
            workers=1,
        )
        return RigFleet(plan_rigs(spec), ManualClock())

    fleet, (port, ports) = await start_on_free_ports(pick, build)
    try:
        yield Site(fleet, port, ports)
    finally:
        await fleet.close()


Answer = Callable[[bytes], bytes]


@contextlib.asynccontextmanager
async def fake_tcp(
    host: str, port: int, answer: Answer | None, keep_open: bool = False
) -> AsyncIterator[None]:
    """A server that sends `answer(request)` and closes (or holds the connection open with
    keep_open); answer None: accepts, reads, never answers (a hung rig)."""
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            data = await reader.read(4096)
            if answer is not None:
                writer.write(answer(data))
                await writer.drain()
            if answer is None or keep_open:
                await asyncio.Event().wait()
        finally:
            tasks.discard(task)
            writer.close()

    server = await asyncio.start_server(on_connect, host, port)
    try:
        yield
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await server.wait_closed()


def cgminer(replies: Mapping[str, object]) -> Answer:
    """A cgminer API: `replies[command]`, else "Invalid command" (Code 14)."""
    invalid = {"STATUS": [{"STATUS": "E", "Code": 14, "Msg": "Invalid command"}], "id": 1}

    def answer(data: bytes) -> bytes:
        command = json.loads(data)["command"]
        return json.dumps(replies.get(command, invalid)).encode() + b"\x00"

    return answer


def fake_server(
    host: str, port: int, replies: Mapping[str, object] | None
) -> contextlib.AbstractAsyncContextManager[None]:
    """A cgminer-style rig answering `replies`; None: hung."""
    return fake_tcp(host, port, None if replies is None else cgminer(replies))


def _bytes(body: bytes) -> Answer:
    return lambda _request: body


def _v3(body: bytes) -> Answer:
    """Whatsminer API v3 framing: a 4-byte little-endian length, then the JSON."""
    return lambda _request: struct.pack("<I", len(body)) + body


def _fixture(family: str, name: str) -> bytes:
    return (FIRMWARE_DIR / family / name).read_bytes()


def _version(**fields: str) -> dict[str, object]:
    ok = {"STATUS": "S", "Code": 22, "Msg": "CGMiner versions", "Description": "cgminer 1.0.0"}
    return {"STATUS": [ok], "VERSION": [fields], "id": 1}


def _args(site: Site, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ports = site.ports
    return parser.parse_args(
        [
            *argv,
            "--port",
            str(site.port),
            "--web-port",
            str(ports.web_port),
            "--api-port",
            str(ports.api_port),
            "--grpc-port",
            str(ports.grpc_port),
            "--timeout",
            str(TIMEOUT_S),
        ]
    )


@pytest.mark.asyncio
async def test_mixed_fleet_one_inventory_per_family_and_model_that_check_accepts(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "inventory"
    code = await asyncio.to_thread(run, _args(site, f"{NET}.1-12", "--out-dir", str(out)))
    assert code == 0
    captured = capsys.readouterr()

    # One CSV per (family, model), each holding exactly that group's rigs.
    written = sorted(p.name for p in out.glob("*.csv"))
    assert written == sorted(f"{name}.csv" for name in EXPECTED)
    for name, octets in EXPECTED.items():
        rows = read_inventory_csv(out / f"{name}.csv")
        assert [r.host for r in rows] == [f"{NET}.{o}" for o in octets], name
        assert all(r.port == site.port for r in rows)
    braiins = read_inventory_csv(out / "braiins-bitmain-s19jpro.csv")
    assert braiins[0].model_hint.startswith("Antminer S19j Pro")  # from devdetails

    # The printed groups are the kept ones, and they parse as TOML with the family port keys.
    assert captured.out == (out / "rigs.toml").read_text()
    groups = {g["name"]: g for g in tomllib.loads(captured.out)["rigs"]}
    assert set(groups) == set(EXPECTED)
    assert groups["stock-bitmain-s21"]["driver"] == "stock"
    assert groups["stock-bitmain-s21"]["profile"] == "bitmain-s21"
    assert groups["stock-bitmain-s21"]["web_port"] == site.ports.web_port
    assert groups["whatsminer-microbt-m50s"]["api_port"] == site.ports.api_port
    assert groups["braiins-bitmain-s19jpro"]["grpc_port"] == site.ports.grpc_port
    assert "password_file" not in groups["cgminer-bitmain-s21"]
    assert "not grouped" not in captured.err
    assert "stock-bitmain-s19jpro: 2 rig(s)" in captured.err

    # Pasted into a config (with the password files the operator creates), minerd check
    # accepts it and the daemon's loader sees every group with its rigs, driver and profile.
    config = tmp_path / "site.toml"
    config.write_text(BASE_CONFIG + captured.out)
    for family, (_user, password) in SIM_LOGINS.items():
        (tmp_path / f"{family}.password").write_text(password + "\n")
    report = io.StringIO()
    problems = io.StringIO()
    assert run_check(config, out=report, err=problems) == 0, problems.getvalue()
    settings = load_settings(config)
    loaded = {g.name: g for g in settings.rigs}
    assert set(loaded) == set(EXPECTED)
    for name, octets in EXPECTED.items():
        group = loaded[name]
        assert (group.driver, group.profile) == tuple(name.split("-", 1)), name
        assert group.csv is not None and len(read_inventory_csv(group.csv)) == len(octets)
    assert loaded["vnish-bitmain-s19jpro"].password_value == SIM_LOGINS["vnish"][1]

    # The daemon's assembly builds each family's own driver from the groups, and each reads
    # its rig through the ports and logins the groups name.
    devices = build_devices(settings)
    try:
        by_id = {rig.rig_id: rig for rig in devices.rigs}
        assert len(by_id) == sum(len(o) for o in EXPECTED.values())
        for name, octets in EXPECTED.items():
            family = RigProtocol(name.split("-", 1)[0])
            for octet in octets:
                rig = by_id[f"{NET}.{octet}:{site.port}"]
                assert type(rig) is DRIVER_CLASSES[family], name
                reading = await rig.read(0.0)
                assert reading.hashrate_ths > 0, (name, reading)
    finally:
        await devices.aclose()


@pytest.mark.asyncio
async def test_hung_rigs_do_not_stall_discovery(site: Site) -> None:
    # A rig hung on 4028 is not a rig found; a rig that answers 4028 but hangs on its web
    # port is found as read-only cgminer with the reason. One worker: each hung probe must
    # end by its timeout for the next address to be probed at all.
    await site.fleet.inject("c001-r003", "hung")
    half = f"{NET}.20"
    version = _version(CGMiner="1.0.0", Type="Antminer S19j Pro")
    seen: list[ScanProgress] = []
    async with (
        fake_server(half, site.port, {"version": version}),
        fake_server(half, site.ports.web_port, None),
        fake_server(f"{NET}.21", site.port, None),
    ):
        rigs = await discover(
            [f"{NET}.{i}" for i in (*range(1, 10), 20, 21)],
            site.port,
            ports=site.ports,
            timeout_s=TIMEOUT_S,
            concurrency=1,
            progress=seen.append,
        )
    hosts = [r.row.host for r in rigs]
    assert hosts == [f"{NET}.{i}" for i in (1, 2, 4, 5, 6, 7, 8, 9, 20)]
    assert seen[-1].done == 11 and seen[-1].found == 9
    last = rigs[-1].detection
    assert last.family is RigProtocol.CGMINER and last.profile == "bitmain-s19jpro"
    assert "did not answer within" in last.note


@pytest.mark.asyncio
async def test_unknown_models_are_listed_apart_not_crashed_on(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s9 = _version(CGMiner="4.9.0", Type="Antminer S9 (vnish 3.8.6)")
    nameless = _version(LUXminer="2025.4.8", API="3.7")  # no Type, stats refused
    out = tmp_path / "inv"
    async with (
        fake_server(f"{NET}.30", site.port, {"version": s9}),
        fake_server(f"{NET}.31", site.port, {"version": nameless}),
    ):
        code = await asyncio.to_thread(
            run, _args(site, f"{NET}.1-2", f"{NET}.30-31", "--out-dir", str(out))
        )
    assert code == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.glob("*.csv")) == [
        "luxos-bitmain-s19jpro.csv",
        "unknown-models.csv",
    ]
    unknown = read_inventory_csv(out / "unknown-models.csv")
    assert [(r.host, r.model_hint) for r in unknown] == [
        (f"{NET}.30", "Antminer S9 / vnish / vnish 3.8.6"),
        (f"{NET}.31", "no model / luxos / LUXminer 2025.4.8"),
    ]
    assert "2 rig(s) not grouped (listed in unknown-models.csv)" in captured.err
    assert "vnish: model 'Antminer S9': 1 rig(s) (127.163.0.30)" in captured.err
    assert "luxos: no model reported: 1 rig(s) (127.163.0.31)" in captured.err
    doc = tomllib.loads(captured.out)
    assert [g["name"] for g in doc["rigs"]] == ["luxos-bitmain-s19jpro"]
    assert "# Not grouped: 2 rig(s)" in captured.out
    both = _args(site, f"{NET}.1", "--out-dir", str(out), "-o", str(tmp_path / "x.csv"))
    assert await asyncio.to_thread(run, both) == 2
    assert "either --out-dir or -o" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_site_profiles_dir_groups_models_the_shipped_profiles_lack(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profiles = tmp_path / "site-profiles"
    (profiles / "rigs").mkdir(parents=True)
    (profiles / "rigs" / "acme-m1.toml").write_text(ACME_M1.read_text())
    out = tmp_path / "inv"
    acme = _version(LUXminer="2025.4.8", API="3.7", Type="M1")
    async with fake_server(f"{NET}.40", site.port, {"version": acme}):
        code = await asyncio.to_thread(
            run,
            _args(site, f"{NET}.40", "--out-dir", str(out), "--profiles-dir", str(profiles)),
        )
    assert code == 0
    captured = capsys.readouterr()
    assert [r.host for r in read_inventory_csv(out / "luxos-acme-m1.csv")] == [f"{NET}.40"]
    assert not (out / "unknown-models.csv").exists()
    assert f"profiles_dir = {json.dumps(str(profiles))}" in captured.out
    # The config that names the same profiles_dir accepts the group.
    config = tmp_path / "site.toml"
    site_table = f'timezone = "UTC"\nprofiles_dir = {json.dumps(str(profiles))}\n'
    config.write_text(BASE_CONFIG.replace('timezone = "UTC"\n', site_table) + captured.out)
    problems = io.StringIO()
    assert run_check(config, out=io.StringIO(), err=problems) == 0, problems.getvalue()


@pytest.mark.asyncio
async def test_families_told_apart_from_recorded_replies(site: Site) -> None:
    # Layouts recorded from real firmware (tests/fixtures/firmware), one rig per address.
    ports = site.ports
    servers = [
        # Braiins OS+ without its gRPC port open: read only, model from legacy devdetails.
        (
            51,
            site.port,
            cgminer(
                {
                    "version": load("bosminer-plus", "version"),
                    "devdetails": json.loads(_fixture("braiins-grpc", "legacy-devdetails.json")),
                }
            ),
        ),
        # Braiins OS (2018, bmminer): no OS+ API at all.
        (52, site.port, cgminer({"version": load("braiins-bmminer", "version")})),
        # Whatsminer refusing `version`; its summary names btminer, API v3 names the model.
        (53, site.port, cgminer({"summary": load("whatsminer-m50s-v2", "summary")})),
        (53, ports.api_port, _v3(_fixture("whatsminer-api", "v3_get.device.info.json"))),
        # Vnish without the Type suffix, found by /api/v1/info from a server that keeps the
        # connection open after the body.
        (54, site.port, cgminer({"version": load("antminer-s19j-pro", "version")})),
        (
            54,
            ports.web_port,
            _bytes(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(_fixture("vnish-web", "GET_info.json"))).encode()
                + b"\r\n\r\n"
                + _fixture("vnish-web", "GET_info.json")
            ),
        ),
        # Stock: the recorded 401 with Bitmain's digest realm.
        (55, site.port, cgminer({"version": load("antminer-s19j-pro", "version")})),
        (55, ports.web_port, _bytes(_fixture("stock-cgi", "unauthorized.http"))),
        (56, site.port, cgminer({"version": load("luxos-s19kpro", "version")})),
        (57, site.port, cgminer({"version": load("vnish-s17plus", "version")})),
        (58, site.port, cgminer({"version": load("antminer-s9", "version")})),
    ]
    async with contextlib.AsyncExitStack() as stack:
        for octet, port, answer in servers:
            keep_open = octet == 54 and port == ports.web_port
            await stack.enter_async_context(fake_tcp(f"{NET}.{octet}", port, answer, keep_open))
        rigs = await discover(
            [f"{NET}.{o}" for o in range(51, 59)], site.port, ports=ports, timeout_s=TIMEOUT_S
        )
    found = {
        int(r.row.host.rsplit(".", 1)[1]): (
            r.detection.family.value,
            r.detection.model_type,
            r.detection.profile,
        )
        for r in rigs
    }
    assert found == {
        51: ("cgminer", "Antminer S19j Pro", "bitmain-s19jpro"),
        52: ("cgminer", "Antminer S9", None),
        53: ("whatsminer", "Whatsminer M50S", "microbt-m50s"),
        54: ("vnish", "Antminer S19j Pro", "bitmain-s19jpro"),
        55: ("stock", "Antminer S19j Pro", "bitmain-s19jpro"),
        56: ("luxos", "Antminer S19k Pro", None),
        57: ("vnish", "Antminer S17+", None),
        58: ("cgminer", "Antminer S9", None),
    }
    notes = {int(r.row.host.rsplit(".", 1)[1]): r.detection.note for r in rigs}
    assert "without gRPC" in notes[51] and "without gRPC" in notes[52]
    assert notes[53] == notes[54] == notes[55] == ""
    firmware = {int(r.row.host.rsplit(".", 1)[1]): r.detection.firmware for r in rigs}
    assert firmware[54] == "vnish 1.2.6" and firmware[57] == "vnish 2.0.3"
