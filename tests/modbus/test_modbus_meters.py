"""Meters read over a real pymodbus TCP server on loopback, at the vendors' addresses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import pytest
import pytest_asyncio
from modbus_test_server import CountingModbusServer, free_port, words
from pymodbus.constants import ExcCodes

from minerd.devices.meter import Meter
from minerd.devices.modbus_reader import RegisterReader
from minerd.errors import DeviceError, DeviceTimeout, DeviceUnreachable, ModbusException
from minerd.profiles import load_meter_map, load_rig_register_map
from minerd.transports.modbus import ModbusHub
from minerd.transports.modbus_pool import ModbusHubPool

SDM, JANITZA, SCHNEIDER, GENERIC, SCHNEIDER_SPARSE, PLC_RIG = 1, 2, 3, 4, 5, 7


def _put(regs: dict[int, int], address: int, type_: str, raw: float) -> None:
    for i, w in enumerate(words(type_, raw)):
        regs[address + i] = w


def _zeros(first: int, last: int) -> dict[int, int]:
    return dict.fromkeys(range(first, last + 1), 0)


def sdm630() -> dict[int, int]:
    regs = _zeros(0, 79)  # a real SDM630 answers for every register in this range
    for addr, value in {0: 230.1, 2: 231.2, 4: 229.8, 6: 10.5, 8: 11.0, 10: 9.5}.items():
        _put(regs, addr, "float32", value)
    for addr, value in {12: 2400.0, 14: 2500.0, 16: 2300.0, 52: 7200.0}.items():
        _put(regs, addr, "float32", value)
    _put(regs, 72, "float32", 12345.5)
    _put(regs, 74, "float32", 12.25)
    return regs


def janitza() -> dict[int, int]:
    # The UMG 604 answers the same measurements in its 1xxx block and its 19000 block.
    regs = _zeros(1300, 1400) | _zeros(9840, 9870) | _zeros(19000, 19080)
    for base in (1317, 19000):
        for i, value in enumerate((400.5, 401.0, 399.5)):
            _put(regs, base + 2 * i, "float32", value)
    for base in (1325, 19012):
        for i, value in enumerate((200.0, 210.0, 190.0)):
            _put(regs, base + 2 * i, "float32", value)
    for base in (1333, 19020):
        for i, value in enumerate((50_500.0, 50_000.0, 49_500.0)):
            _put(regs, base + 2 * i, "float32", value)
    for address in (1369, 19026):
        _put(regs, address, "float32", 150_000.0)
    for address in (9851, 19068):
        _put(regs, address, "float32", 2_500_000.0)  # Wh
    for address in (9863, 19076):
        _put(regs, address, "float32", 1_250.0)  # Wh
    return regs


def schneider(sparse: bool = False) -> dict[int, int]:
    # Wire addresses: the manual's register numbers minus one (3060 -> 3059, 3204 -> 3203).
    regs = {} if sparse else _zeros(2990, 3070) | _zeros(3200, 3215)
    for addr, value in {2999: 100.0, 3001: 101.0, 3003: 99.0}.items():
        _put(regs, addr, "float32", value)
    for addr, value in {3027: 230.0, 3029: 231.0, 3031: 229.0}.items():
        _put(regs, addr, "float32", value)
    for addr, value in {3053: 83.5, 3055: 84.0, 3057: 83.0, 3059: 250.5}.items():
        _put(regs, addr, "float32", value)  # kW
    _put(regs, 3203, "int64", 987_654_321)  # Wh
    _put(regs, 3207, "int64", 1_234)  # Wh
    return regs


def generic() -> dict[int, int]:
    regs = _zeros(0, 11)
    _put(regs, 0, "int32", -12345)  # 0.1 W: exporting 1234.5 W
    for i, raw in enumerate((2301, 2312, 2298)):
        _put(regs, 2 + i, "uint16", raw)
    for i, raw in enumerate((1050, 1100, 950)):
        _put(regs, 5 + i, "uint16", raw)
    _put(regs, 8, "uint32", 123_456_789)
    _put(regs, 10, "uint32", 42)
    return regs


def plc_rig() -> dict[int, int]:
    regs = _zeros(0, 13)
    _put(regs, 0, "uint16", 1)
    _put(regs, 1, "uint32", 10_425)  # 104.25 TH/s
    _put(regs, 3, "uint32", 3068)
    _put(regs, 5, "int16", 712)  # 71.2 C
    _put(regs, 6, "uint16", 4800)
    _put(regs, 7, "uint16", 3)
    _put(regs, 8, "uint16", 1)
    _put(regs, 9, "uint32", 3500)
    _put(regs, 11, "uint32", 86_400)
    return regs


UNITS: Mapping[int, tuple[Mapping[int, int], Mapping[int, int]]] = {
    SDM: ({}, sdm630()),
    JANITZA: (janitza(), {}),
    SCHNEIDER: (schneider(), {}),
    GENERIC: (generic(), {}),
    SCHNEIDER_SPARSE: (schneider(sparse=True), {}),
    PLC_RIG: (plc_rig(), {}),
}


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[CountingModbusServer]:
    server = CountingModbusServer(free_port(), UNITS)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def hub(gateway: CountingModbusServer) -> AsyncIterator[ModbusHub]:
    h = ModbusHub("127.0.0.1", gateway.port, timeout_s=1.0)
    yield h
    await h.close()


async def _read_counted(
    meter: Meter, server: CountingModbusServer, unit_id: int
) -> tuple[float, int, object]:
    before = server.requests[unit_id]
    reading = await meter.read(now_s=1_700_000_000.0)
    return reading.power_w, server.requests[unit_id] - before, reading


@pytest.mark.asyncio
async def test_sdm630_one_request_per_poll(gateway: CountingModbusServer, hub: ModbusHub) -> None:
    meter = Meter("grid", load_meter_map("eastron-sdm630"), hub, SDM)
    assert meter.requests_per_read == 1
    for _ in range(3):
        before, sent_before = gateway.requests[SDM], hub.requests_sent
        r = await meter.read(now_s=1_700_000_000.0)
        assert gateway.requests[SDM] - before == 1  # one FC4 read of 0..75 on the wire
        assert hub.requests_sent - sent_before == 1
    assert r.meter == "grid" and r.taken_at_s == 1_700_000_000.0
    assert r.power_w == pytest.approx(7200.0)
    assert (r.power_l1_w, r.power_l2_w, r.power_l3_w) == pytest.approx((2400.0, 2500.0, 2300.0))
    assert (r.voltage_l1_v, r.voltage_l2_v, r.voltage_l3_v) == pytest.approx((230.1, 231.2, 229.8))
    assert (r.current_l1_a, r.current_l2_a, r.current_l3_a) == pytest.approx((10.5, 11.0, 9.5))
    assert r.energy_import_kwh == pytest.approx(12345.5)
    assert r.energy_export_kwh == pytest.approx(12.25)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("profile", "requests"), [("janitza-umg604", 1), ("janitza-umg604-legacy", 2)]
)
async def test_janitza_energy_wh_becomes_kwh(
    gateway: CountingModbusServer, hub: ModbusHub, profile: str, requests: int
) -> None:
    # 19000..19077 in one read; the legacy block takes 1317..1370 and 9851..9864
    meter = Meter("feeder-a", load_meter_map(profile), hub, JANITZA)
    before = gateway.requests[JANITZA]
    r = await meter.read(now_s=5.0)
    assert gateway.requests[JANITZA] - before == meter.requests_per_read == requests
    assert r.power_w == pytest.approx(150_000.0)
    assert r.voltage_l2_v == pytest.approx(401.0)
    assert r.current_l3_a == pytest.approx(190.0)
    assert (r.power_l1_w, r.power_l2_w, r.power_l3_w) == pytest.approx(
        (50_500.0, 50_000.0, 49_500.0)
    )
    assert r.energy_import_kwh == pytest.approx(2_500.0)
    assert r.energy_export_kwh == pytest.approx(1.25)


@pytest.mark.asyncio
async def test_schneider_kw_and_int64_wh(gateway: CountingModbusServer, hub: ModbusHub) -> None:
    meter = Meter("grid-2", load_meter_map("schneider-iem3000"), hub, SCHNEIDER)
    before = gateway.requests[SCHNEIDER]
    r = await meter.read(now_s=5.0)
    assert gateway.requests[SCHNEIDER] - before == meter.requests_per_read == 2
    assert r.power_w == pytest.approx(250_500.0)  # 250.5 kW
    assert (r.power_l1_w, r.power_l2_w, r.power_l3_w) == pytest.approx(
        (83_500.0, 84_000.0, 83_000.0)
    )
    assert r.current_l1_a == pytest.approx(100.0)
    assert r.voltage_l3_v == pytest.approx(229.0)
    assert r.energy_import_kwh == 987_654.321  # INT64 Wh, exact
    assert r.energy_export_kwh == 1.234


@pytest.mark.asyncio
async def test_generic_scaled_integers(gateway: CountingModbusServer, hub: ModbusHub) -> None:
    meter = Meter("aux", load_meter_map("generic-modbus-meter"), hub, GENERIC)
    before = gateway.requests[GENERIC]
    r = await meter.read(now_s=5.0)
    assert gateway.requests[GENERIC] - before == 1
    assert r.power_w == pytest.approx(-1234.5)
    assert (r.voltage_l1_v, r.voltage_l2_v, r.voltage_l3_v) == pytest.approx((230.1, 231.2, 229.8))
    assert (r.current_l1_a, r.current_l2_a, r.current_l3_a) == pytest.approx((10.5, 11.0, 9.5))
    assert r.energy_import_kwh == pytest.approx(1_234_567.89)
    assert r.energy_export_kwh == pytest.approx(0.42)


@pytest.mark.asyncio
async def test_device_refusing_gapped_reads_falls_back(
    gateway: CountingModbusServer, hub: ModbusHub
) -> None:
    # Registers between the points are unmapped on this device: a gapped block read gets
    # exception 2, and the meter switches to gap-free reads for good.
    meter = Meter("sparse", load_meter_map("schneider-iem3000"), hub, SCHNEIDER_SPARSE)
    r = await meter.read(now_s=1.0)
    assert r.power_w == pytest.approx(250_500.0)
    assert meter.requests_per_read == 4
    before = gateway.requests[SCHNEIDER_SPARSE]
    await meter.read(now_s=2.0)
    assert gateway.requests[SCHNEIDER_SPARSE] - before == 4


@pytest.mark.asyncio
async def test_several_units_share_one_connection(
    gateway: CountingModbusServer,
) -> None:
    pool = ModbusHubPool(timeout_s=1.0)
    endpoint = f"tcp://127.0.0.1:{gateway.port}"
    meters = [
        Meter("m-sdm", load_meter_map("eastron-sdm630"), pool.hub(endpoint), SDM),
        Meter("m-jan", load_meter_map("janitza-umg604"), pool.hub(endpoint), JANITZA),
        Meter("m-sch", load_meter_map("schneider-iem3000"), pool.hub(endpoint), SCHNEIDER),
        Meter("m-gen", load_meter_map("generic-modbus-meter"), pool.hub(endpoint), GENERIC),
    ]
    assert len(pool.hubs()) == 1
    rounds = 10
    readings = await asyncio.gather(*(m.read(float(i)) for i in range(rounds) for m in meters))
    powers = {r.meter: r.power_w for r in readings}
    assert powers == pytest.approx(
        {"m-sdm": 7200.0, "m-jan": 150_000.0, "m-sch": 250_500.0, "m-gen": -1234.5}
    )
    hub = pool.hub(endpoint)
    assert hub.connects == 1
    assert hub.requests_sent == rounds * (1 + 1 + 2 + 1)
    assert meters[0].endpoint == f"{endpoint} unit {SDM}"
    await pool.close()


@pytest.mark.asyncio
async def test_exception_reply_names_device_and_endpoint(
    gateway: CountingModbusServer, hub: ModbusHub
) -> None:
    meter = Meter("grid", load_meter_map("eastron-sdm630"), hub, SDM)
    gateway.fail_with = ExcCodes.DEVICE_BUSY
    with pytest.raises(ModbusException) as info:
        await meter.read(now_s=1.0)
    assert info.value.exception_code == 6
    assert info.value.device == "grid"
    assert info.value.endpoint == f"tcp://127.0.0.1:{gateway.port} unit {SDM}"
    assert "exception 6 (device busy)" in str(info.value)
    gateway.fail_with = None
    assert (await meter.read(now_s=2.0)).power_w == pytest.approx(7200.0)
    assert hub.connects == 1  # an exception reply is an answer: the link stays up


@pytest.mark.asyncio
async def test_unmapped_address_is_exception_2(hub: ModbusHub) -> None:
    with pytest.raises(ModbusException) as info:
        await hub.read_registers("ghost", JANITZA, 3, 40_000, 2)
    assert info.value.exception_code == 2
    assert "illegal data address" in str(info.value)


@pytest.mark.asyncio
async def test_nothing_listening_is_unreachable() -> None:
    port = free_port()
    hub = ModbusHub("127.0.0.1", port, timeout_s=0.5)
    meter = Meter("grid", load_meter_map("eastron-sdm630"), hub, SDM)
    with pytest.raises(DeviceUnreachable) as info:
        await meter.read(now_s=1.0)
    assert info.value.device == "grid"
    assert info.value.endpoint == f"tcp://127.0.0.1:{port} unit {SDM}"


@pytest.mark.asyncio
async def test_server_down_then_back(gateway: CountingModbusServer) -> None:
    port = gateway.port
    hub = ModbusHub("127.0.0.1", port, timeout_s=0.5)
    meter = Meter("grid", load_meter_map("eastron-sdm630"), hub, SDM)
    assert (await meter.read(now_s=1.0)).power_w == pytest.approx(7200.0)
    await gateway.stop()
    # The open connection may first go unanswered; after that nothing listens.
    errors: list[type[DeviceError]] = []
    for _ in range(2):
        with pytest.raises(DeviceError) as info:
            await meter.read(now_s=2.0)
        errors.append(type(info.value))
    assert errors[-1] is DeviceUnreachable
    assert set(errors) <= {DeviceUnreachable, DeviceTimeout}
    restarted = CountingModbusServer(port, UNITS)
    await restarted.start()
    try:
        assert (await meter.read(now_s=3.0)).power_w == pytest.approx(7200.0)
        assert hub.connects == 2
    finally:
        await hub.close()
        await restarted.stop()


@pytest.mark.asyncio
async def test_silent_device_times_out() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # accept the request, never answer
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hub = ModbusHub("127.0.0.1", port, timeout_s=0.3)
    meter = Meter("grid", load_meter_map("eastron-sdm630"), hub, SDM)
    with pytest.raises(DeviceTimeout) as info:
        await meter.read(now_s=1.0)
    assert info.value.endpoint == f"tcp://127.0.0.1:{port} unit {SDM}"
    await hub.close()
    server.close()


@pytest.mark.asyncio
async def test_plc_rig_map_read_and_write(gateway: CountingModbusServer, hub: ModbusHub) -> None:
    rig = RegisterReader("rig-7", load_rig_register_map("container-plc-rig"), hub, PLC_RIG)
    assert len(rig.blocks) == 1
    values = await rig.read()
    assert values == pytest.approx(
        {
            "state": 1,
            "hashrate_ths": 104.25,
            "power_w": 3068,
            "chip_temp_max_c": 71.2,
            "fan_rpm_min": 4800,
            "boards_ok": 3,
            "run": 1,
            "power_limit_w": 3500,
            "uptime_s": 86_400,
            "fault_code": 0,
        }
    )
    await rig.write("power_limit_w", 3200)
    await rig.write("run", 0)
    assert gateway.writes == [(PLC_RIG, 9, [0, 3200]), (PLC_RIG, 8, [0])]
    after = await rig.read()
    assert (after["power_limit_w"], after["run"]) == (3200, 0)
    with pytest.raises(ValueError, match="above max"):
        await rig.write("power_limit_w", 9000)
    with pytest.raises(ValueError, match="not writable"):
        await rig.write("power_w", 100)


@pytest.mark.asyncio
async def test_cancelled_read_propagates_and_drops_the_link() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hub = ModbusHub("127.0.0.1", port, timeout_s=3.0)
    task = asyncio.create_task(hub.read_registers("grid", 1, 4, 0, 2))
    for _ in range(100):
        if hub.requests_sent:
            break
        await asyncio.sleep(0.01)
    assert hub.connected
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not hub.connected  # a late reply must not answer the next request
    await hub.close()
    server.close()
