"""Each meter profile against an independent reference: a pymodbus server laid out from the
vendor tables in manual_tables.py (hand-copied from the reference notes, not from the
profiles), read through minerd's meter driver; and the simulator read at the same manual
addresses by clients that are not minerd (a raw pymodbus client, and mbpoll when installed).
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import tomllib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from manual_tables import (
    GENERIC,
    IEM3000,
    IEM3000_NEIGHBOURS,
    JANITZA_19000,
    JANITZA_LEGACY,
    SDM630,
    TABLES,
    Row,
    Table,
    layout,
)
from modbus_test_server import CountingModbusServer, free_port
from pymodbus.client import AsyncModbusTcpClient

from minerd.clock import ManualClock
from minerd.devices.meter import Meter
from minerd.model import MeterRole
from minerd.profiles import drivers_dir, load_meter_map
from minerd.sim.gateway import ModbusGateway
from minerd.sim.meters import MeterSim
from minerd.transports.modbus import ModbusHub

# unit id of each table on the by-manual server; the two Janitza blocks are one device
UNIT = {SDM630: 1, JANITZA_19000: 2, JANITZA_LEGACY: 2, IEM3000: 3, GENERIC: 4}
# requests one poll takes, given the manual's layout (blocks merge across gaps up to 64)
REQUESTS = {SDM630: 1, JANITZA_19000: 1, JANITZA_LEGACY: 2, IEM3000: 2, GENERIC: 1}


def _ids(table: Table) -> str:
    return table.profile


async def _raw_read(client: AsyncModbusTcpClient, fc: int, row: Row, unit: int) -> list[int]:
    count = len(row.registers())
    read = client.read_input_registers if fc == 4 else client.read_holding_registers
    rr = await read(row.wire, count=count, device_id=unit)
    assert not rr.isError(), (row, rr)
    return list(rr.registers)


@pytest_asyncio.fixture
async def manual_server() -> AsyncIterator[CountingModbusServer]:
    units = {
        UNIT[SDM630]: ({}, layout(SDM630)),
        UNIT[JANITZA_19000]: (layout(JANITZA_19000, JANITZA_LEGACY), {}),
        UNIT[IEM3000]: (layout(IEM3000, extra=IEM3000_NEIGHBOURS), {}),
        UNIT[GENERIC]: (layout(GENERIC), {}),
    }
    server = CountingModbusServer(free_port(), units)
    await server.start()
    yield server
    await server.stop()


@pytest.mark.asyncio
async def test_the_server_holds_the_manual_table(manual_server: CountingModbusServer) -> None:
    # Guards the reference itself: a plain client finds each value at its wire address.
    client = AsyncModbusTcpClient("127.0.0.1", port=manual_server.port, timeout=2)
    assert await client.connect()
    try:
        for table in TABLES:
            for row in table.rows:
                registers = await _raw_read(client, table.function_code, row, UNIT[table])
                assert registers == row.registers(), (table.profile, row)
        iem_power = next(r for r in IEM3000.rows if r.quantity == "power_w")
        registers = await _raw_read(client, 3, iem_power, UNIT[IEM3000])
        assert iem_power.decode(registers) == 250_500.0  # wire 3059 holds 250.5 kW
    finally:
        client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("table", TABLES, ids=_ids)
async def test_profile_reads_what_the_manual_server_holds(
    manual_server: CountingModbusServer, table: Table
) -> None:
    regmap = load_meter_map(table.profile)
    # every point the profile reads is a line of the manual table, and the other way round
    assert sorted(p.name for p in regmap.points) == sorted(r.quantity for r in table.rows)
    assert regmap.function_code == table.function_code
    hub = ModbusHub("127.0.0.1", manual_server.port, timeout_s=2.0)
    try:
        meter = Meter(table.profile, regmap, hub, UNIT[table])
        before = manual_server.requests[UNIT[table]]
        reading = await meter.read(now_s=1.0)
        assert manual_server.requests[UNIT[table]] - before == REQUESTS[table]
    finally:
        await hub.close()
    for row in table.rows:
        got = getattr(reading, row.quantity)
        assert got == pytest.approx(row.expected, rel=1e-6), (row.quantity, row.wire)


def test_profile_files_use_the_manuals_numbers() -> None:
    # A profile line can be checked against the manual by eye: same number, declared convention.
    declared = {"eastron-sdm630": "input_30001", "schneider-iem3000": "one_based"}
    for table in TABLES:
        path = drivers_dir() / "meters" / f"{table.profile}.toml"
        data = tomllib.loads(path.read_text())
        assert data["addressing"] == declared.get(table.profile, "wire"), table.profile
        in_file = {p["name"]: p["address"] for p in data["points"]}
        assert in_file == {r.quantity: r.manual for r in table.rows}, table.profile


# ----------------------------------------------------------------- the simulator, by manual

SIM_POWER_W = 123_456.0


def _sim(profile: str) -> MeterSim:
    clock = ManualClock()  # never moves: the energy counter stays where it starts
    sim = MeterSim(
        "grid",
        MeterRole.GRID,
        load_meter_map(profile),
        1,
        "",
        0.0,  # no noise: the power read must equal the power set
        random.Random(7),
        clock,
    )
    sim.advance(clock.now_s(), SIM_POWER_W)
    return sim


async def _read_sim_rows(gateway: ModbusGateway, table: Table) -> dict[str, float]:
    client = AsyncModbusTcpClient("127.0.0.1", port=gateway.port, timeout=2)
    assert await client.connect()
    try:
        return {
            row.quantity: row.decode(await _raw_read(client, table.function_code, row, 1))
            for row in table.rows
        }
    finally:
        client.close()


def _assert_sensible(table: Table, v: dict[str, float], sim: MeterSim) -> None:
    resolution_w = 0.1 if table is GENERIC else 1e-6 * SIM_POWER_W
    assert v["power_w"] == pytest.approx(SIM_POWER_W, abs=resolution_w), table.profile
    phases = [v.get(f"power_l{i}_w") for i in (1, 2, 3)]
    if table is not GENERIC:  # the generic layout has no per-phase power
        assert all(p is not None and p > 0.3 * SIM_POWER_W for p in phases), phases
        assert sum(p for p in phases if p is not None) == pytest.approx(SIM_POWER_W, rel=1e-5)
    for i in (1, 2, 3):
        volts = v[f"voltage_l{i}_v"]
        assert 225.0 < volts < 235.0, (table.profile, i, volts)
        assert 0.3 * SIM_POWER_W / (volts * 0.99) < v[f"current_l{i}_a"] < SIM_POWER_W / 230
    resolution_kwh = 0.01 if table is GENERIC else 1e-6 * sim.energy_import_kwh
    assert v["energy_import_kwh"] == pytest.approx(sim.energy_import_kwh, abs=resolution_kwh)
    assert v["energy_export_kwh"] == 0.0


@pytest.mark.asyncio
@pytest.mark.parametrize("table", [SDM630, IEM3000, GENERIC], ids=_ids)
async def test_simulator_answers_at_the_manual_addresses(table: Table) -> None:
    sim = _sim(table.profile)
    gateway = ModbusGateway("127.0.0.1", 0, {1: sim})
    await gateway.start()
    try:
        _assert_sensible(table, await _read_sim_rows(gateway, table), sim)
    finally:
        await gateway.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("profile", ["janitza-umg604", "janitza-umg604-legacy"])
async def test_simulated_umg604_serves_both_blocks(profile: str) -> None:
    # Whichever block a site's profile reads, the simulated UMG 604 answers both, like the
    # real one, with the same measurements in each (per-phase power 1333..1337 included).
    sim = _sim(profile)
    gateway = ModbusGateway("127.0.0.1", 0, {1: sim})
    await gateway.start()
    try:
        new = await _read_sim_rows(gateway, JANITZA_19000)
        old = await _read_sim_rows(gateway, JANITZA_LEGACY)
    finally:
        await gateway.close()
    _assert_sensible(JANITZA_19000, new, sim)
    _assert_sensible(JANITZA_LEGACY, old, sim)
    for quantity in ("power_w", "power_l1_w", "power_l2_w", "power_l3_w", "energy_import_kwh"):
        assert old[quantity] == new[quantity], quantity


async def _mbpoll(port: int, kind: str, reference: int, *flags: str) -> float:
    """One float read by mbpoll; `reference` is 1-based unless "-0" is among the flags."""
    args = ["-m", "tcp", "-p", str(port), "-a", "1", "-t", kind, "-B", "-1", "-c", "1"]
    proc = await asyncio.create_subprocess_exec(
        "mbpoll",
        *args,
        *flags,
        "-r",
        str(reference),
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    found = re.search(rf"^\[{reference}\]:\s*(\S+)", text, re.MULTILINE)
    assert found is not None, text
    return float(found.group(1))


@pytest.mark.asyncio
@pytest.mark.skipif(
    shutil.which("mbpoll") is None,
    reason="mbpoll is not installed (Debian package mbpoll; scripts/install-test-servers.sh)",
)
async def test_mbpoll_reads_the_simulator_at_the_manual_numbers() -> None:
    # mbpoll's default references count from 1, like Schneider's table: 3060 is wire 3059.
    cases = [
        (IEM3000, "4:float", 3060, (), 1000.0),
        (SDM630, "3:float", 0x0034, ("-0",), 1.0),
        (JANITZA_19000, "4:float", 19026, ("-0",), 1.0),
        (JANITZA_LEGACY, "4:float", 1369, ("-0",), 1.0),
    ]
    for table, kind, reference, flags, to_w in cases:
        gateway = ModbusGateway("127.0.0.1", 0, {1: _sim(table.profile)})
        await gateway.start()
        try:
            value = await _mbpoll(gateway.port, kind, reference, *flags)
        finally:
            await gateway.close()
        assert value * to_w == pytest.approx(SIM_POWER_W, rel=1e-5), table.profile
