"""Register encoding as a profile says it: types, scale, units, byte and word order."""

from __future__ import annotations

import struct

import pytest
from pymodbus.client import AsyncModbusTcpClient

from minerd.model import (
    ByteOrder,
    RegisterMap,
    RegisterPoint,
    RegisterType,
    RigProtocol,
    WordOrder,
)
from minerd.sim import RigGroupSpec, SimSite, SiteSpec
from minerd.sim.registers import decode_point, encode_point


def regmap(byte_order: ByteOrder, word_order: WordOrder, *points: RegisterPoint) -> RegisterMap:
    return RegisterMap("t", "v", "m", 3, byte_order, word_order, points)


def test_float32_word_and_byte_orders() -> None:
    point = RegisterPoint("power_w", 0, RegisterType.FLOAT32, 1.0, "W")
    hi, lo = struct.unpack(">HH", struct.pack(">f", 1234.5))
    assert encode_point(point, regmap(ByteOrder.BIG, WordOrder.HIGH_FIRST), 1234.5) == [hi, lo]
    assert encode_point(point, regmap(ByteOrder.BIG, WordOrder.LOW_FIRST), 1234.5) == [lo, hi]
    swapped = [((w & 0xFF) << 8) | (w >> 8) for w in (hi, lo)]
    assert encode_point(point, regmap(ByteOrder.LITTLE, WordOrder.HIGH_FIRST), 1234.5) == swapped


def test_units_scale_and_integer_widths() -> None:
    rm = regmap(ByteOrder.BIG, WordOrder.HIGH_FIRST)
    kw = RegisterPoint("power_w", 0, RegisterType.FLOAT32, 1.0, "kW")
    words = encode_point(kw, rm, 42_000.0)
    assert struct.unpack(">f", struct.pack(">HH", *words))[0] == pytest.approx(42.0)
    wh = RegisterPoint("energy_import_kwh", 0, RegisterType.INT64, 1.0, "Wh")
    words = encode_point(wh, rm, 1234.567)
    assert struct.unpack(">q", struct.pack(">HHHH", *words))[0] == 1_234_567
    scaled = RegisterPoint("power_w", 0, RegisterType.INT32, 0.1, "W")
    words = encode_point(scaled, rm, -1500.0)
    assert struct.unpack(">i", struct.pack(">HH", *words))[0] == -15_000
    clamp = RegisterPoint("voltage_l1_v", 0, RegisterType.UINT16, 0.1, "V")
    assert encode_point(clamp, rm, 1e9) == [0xFFFF]
    for point, value in [(kw, 42_000.0), (wh, 1234.567), (scaled, -1500.0)]:
        assert decode_point(point, rm, encode_point(point, rm, value)) == pytest.approx(
            value, abs=0.01
        )


@pytest.mark.asyncio
async def test_generic_integer_meter_served_as_its_profile_says() -> None:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s21", 3, RigProtocol.CGMINER),),
        rig_port=0,
        base_octet=88,
        feeder_meter_profile="generic-modbus-meter",
        noise_fraction=0.0,
        workers=1,
    )
    async with SimSite(spec) as site:
        host, port, unit = site.meter_endpoint("feeder-c001")
        client = AsyncModbusTcpClient(host, port=port, timeout=2)
        assert await client.connect()
        try:
            rr = await client.read_holding_registers(0, count=12, device_id=unit)
            assert not rr.isError()
            raw_power = struct.unpack(">i", struct.pack(">HH", *rr.registers[0:2]))[0]
            assert raw_power / 10.0 == pytest.approx(3 * 3500.0, rel=1e-6)
            assert rr.registers[2] / 10.0 == pytest.approx(230.0, abs=2.0)
        finally:
            client.close()
