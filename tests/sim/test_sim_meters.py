"""Simulated meters read with a plain pymodbus client at the vendor-documented wire addresses
(firmware-apis.md section 7), never through minerd's profiles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pymodbus.client import AsyncModbusTcpClient
from simtest_helpers import f32, i64

from minerd.model import RigProtocol
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

SPEED = 10.0


def spec(grid_profile: str, base_octet: int, feeder_profile: str = "eastron-sdm630") -> SiteSpec:
    return SiteSpec(
        groups=(
            RigGroupSpec("bitmain-s19jpro", 6, RigProtocol.LUXOS),
            RigGroupSpec("bitmain-s21", 4, RigProtocol.CGMINER),
        ),
        rigs_per_container=5,
        rig_port=0,
        base_octet=base_octet,
        speed=SPEED,
        grid_meter_profile=grid_profile,
        feeder_meter_profile=feeder_profile,
        noise_fraction=0.002,
        workers=1,
    )


@pytest_asyncio.fixture
async def site() -> AsyncIterator[SimSite]:
    async with SimSite(spec("janitza-umg604", 71)) as s:
        yield s


async def client_for(site: SimSite, meter: str) -> tuple[AsyncModbusTcpClient, int]:
    host, port, unit = site.meter_endpoint(meter)
    client = AsyncModbusTcpClient(host, port=port, timeout=2)
    assert await client.connect()
    return client, unit


async def janitza_power_w(client: AsyncModbusTcpClient, unit: int) -> float:
    rr = await client.read_holding_registers(1369, count=2, device_id=unit)
    assert not rr.isError(), rr
    return f32(rr.registers)


async def eastron_power_w(client: AsyncModbusTcpClient, unit: int) -> float:
    rr = await client.read_input_registers(52, count=2, device_id=unit)
    assert not rr.isError(), rr
    return f32(rr.registers)


@pytest.mark.asyncio
async def test_janitza_grid_and_eastron_feeders_at_vendor_addresses(site: SimSite) -> None:
    truth = await site.truth()
    grid, unit = await client_for(site, "grid")
    try:
        power = await janitza_power_w(grid, unit)
        assert power == pytest.approx(truth["site"]["power_w"], rel=0.01)  # type: ignore[index]
        volts = await grid.read_holding_registers(1317, count=6, device_id=unit)
        assert all(225 < f32(volts.registers[i : i + 2]) < 235 for i in (0, 2, 4))
        energy = await grid.read_holding_registers(9851, count=2, device_id=unit)
        assert f32(energy.registers) > 1_000_000.0  # Wh on the Janitza
        # per-phase power in the 1xxx block, and the 19000 float block beside it
        phases = await grid.read_holding_registers(1333, count=6, device_id=unit)
        phase_sum = sum(f32(phases.registers[i : i + 2]) for i in (0, 2, 4))
        assert phase_sum == pytest.approx(truth["site"]["power_w"], rel=0.01)  # type: ignore[index]
        block = await grid.read_holding_registers(19000, count=28, device_id=unit)
        assert all(225 < f32(block.registers[i : i + 2]) < 235 for i in (0, 2, 4))
        p_sum = f32(block.registers[26:28])  # 19026
        assert p_sum == pytest.approx(truth["site"]["power_w"], rel=0.01)  # type: ignore[index]
        assert sum(f32(block.registers[i : i + 2]) for i in (20, 22, 24)) == pytest.approx(p_sum)
        energy = await grid.read_holding_registers(19068, count=2, device_id=unit)
        assert f32(energy.registers) > 1_000_000.0  # Wh
        wrong_fc = await grid.read_input_registers(1369, count=2, device_id=unit)
        assert wrong_fc.isError() and wrong_fc.exception_code == 1
    finally:
        grid.close()
    feeder, unit = await client_for(site, "feeder-c002")
    try:
        rigs = [r for r in truth["rigs"] if r["container"] == "c002"]  # type: ignore[union-attr]
        expected = sum(r["power_w"] for r in rigs)
        assert await eastron_power_w(feeder, unit) == pytest.approx(expected, rel=0.01)
        phases = await feeder.read_input_registers(12, count=6, device_id=unit)
        phase_sum = sum(f32(phases.registers[i : i + 2]) for i in (0, 2, 4))
        assert phase_sum == pytest.approx(expected, rel=0.01)
        kwh = await feeder.read_input_registers(72, count=2, device_id=unit)
        assert 1_000.0 < f32(kwh.registers) < 2_000.0  # kWh on the Eastron
    finally:
        feeder.close()


@pytest.mark.asyncio
async def test_schneider_kw_and_int64_wh() -> None:
    async with SimSite(spec("schneider-iem3000", 72)) as site:
        truth = await site.truth()
        client, unit = await client_for(site, "grid")
        try:
            # the manual's 3060 and 3204 are wire addresses 3059 and 3203
            rr = await client.read_holding_registers(3059, count=2, device_id=unit)
            kw = f32(rr.registers)
            assert kw * 1000.0 == pytest.approx(truth["site"]["power_w"], rel=0.01)  # type: ignore[index]
            amps = await client.read_holding_registers(2999, count=2, device_id=unit)
            volts = await client.read_holding_registers(3027, count=2, device_id=unit)
            assert 225 < f32(volts.registers) < 235
            assert f32(amps.registers) == pytest.approx(
                kw * 1000.0 * 0.336 / (f32(volts.registers) * 0.99), rel=0.02
            )
            clock = site.clock
            # Each counter was taken at some moment of its request: bracket it by the sim
            # clock around the request, so a slow reply widens the bounds, never fails them.
            t1a = clock.now_s()
            e1 = await client.read_holding_registers(3203, count=4, device_id=unit)
            t1b = clock.now_s()
            wh1 = i64(e1.registers)
            assert wh1 >= 1_010_000  # starts at 1,010 kWh
            await asyncio.sleep(1.0)  # 10 s of sim time at ~40 kW: ~110 Wh
            t2a = clock.now_s()
            e2 = await client.read_holding_registers(3203, count=4, device_id=unit)
            t2b = clock.now_s()
            gained_wh = i64(e2.registers) - wh1
            power_w = truth["site"]["power_w"]  # type: ignore[index]
            least_wh = power_w * (t2a - t1b) / 3600.0 * 0.97 - 1.0  # whole Wh on the wire
            most_wh = power_w * (t2b - t1a) / 3600.0 * 1.03 + 1.0
            assert least_wh <= gained_wh <= most_wh, (least_wh, gained_wh, most_wh)
        finally:
            client.close()


@pytest.mark.asyncio
async def test_energy_is_conserved_grid_equals_rigs_plus_aux(site: SimSite) -> None:
    truth = await site.truth()
    rig_w = sum(r["power_w"] for r in truth["rigs"])  # type: ignore[union-attr]
    aux_w = site.aux_w(rig_w)
    assert aux_w > site.spec.aux_base_w
    grid, unit = await client_for(site, "grid")
    feeders = [await client_for(site, f"feeder-c00{i}") for i in (1, 2)]
    try:
        samples = [await janitza_power_w(grid, unit) for _ in range(20)]
        mean = sum(samples) / len(samples)
        assert mean == pytest.approx(rig_w + aux_w, rel=0.003)
        assert max(samples) != min(samples), "a real meter is noisy"
        feeder_sum = sum([await eastron_power_w(c, u) for c, u in feeders])
        assert mean - feeder_sum == pytest.approx(aux_w, abs=0.01 * mean)
    finally:
        grid.close()
        for c, _ in feeders:
            c.close()


@pytest.mark.asyncio
async def test_meter_faults_exception_offline_frozen(site: SimSite) -> None:
    client, unit = await client_for(site, "grid")
    try:
        await site.inject("grid", "modbus_exception")
        rr = await client.read_holding_registers(1369, count=2, device_id=unit)
        assert rr.isError() and rr.exception_code == 4
        await site.inject("grid", "offline")
        rr = await client.read_holding_registers(1369, count=2, device_id=unit)
        assert rr.isError() and rr.exception_code == 0x0B
        await site.clear("grid")
        before = await janitza_power_w(client, unit)
        await site.inject("grid", "frozen")
        frozen = await janitza_power_w(client, unit)
        for rig in list(site.fleet.rigs.values())[:5]:
            rig.command_sleep(site.clock.now_s())
        await asyncio.sleep(1.0)
        assert await janitza_power_w(client, unit) == frozen
        await site.clear()
        live = await janitza_power_w(client, unit)
        assert live < before - 10_000.0, "five rigs asleep show once the meter thaws"
    finally:
        client.close()
