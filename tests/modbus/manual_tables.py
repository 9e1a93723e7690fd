"""Meter register tables copied by hand from the project reference notes (meters.md and
firmware-apis.md section 7): the number the vendor prints, the address on the wire, the type
and the device's own unit. Never derived from drivers/meters/*.toml, so a profile that
disagrees with the manual reads wrong values against a server laid out from these tables.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from modbus_test_server import words

# The device's unit -> factor to minerd's W, V, A, kWh (written here, not taken from minerd).
TO_MINERD: Final = {"W": 1.0, "kW": 1000.0, "V": 1.0, "A": 1.0, "Wh": 0.001, "kWh": 1.0}
_STRUCT: Final = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q"}
_STRUCT.update({"uint64": "Q", "float32": "f"})


@dataclass(frozen=True)
class Row:
    """One line of a vendor table, with the value a test server holds there."""

    quantity: str  # the MeterReading field it feeds
    manual: int  # the number printed in the vendor's table
    wire: int  # the address in the Modbus frame (firmware-apis.md section 7)
    type: str
    unit: str  # the device's unit
    raw: float  # what the registers hold (a float, or the integer before scaling)
    scale: float = 1.0

    @property
    def expected(self) -> float:
        """What minerd must report for this row, in W, V, A or kWh."""
        return self.raw * self.scale * TO_MINERD[self.unit]

    def registers(self) -> list[int]:
        return words(self.type, self.raw)

    def decode(self, registers: list[int]) -> float:
        """Registers read at this row -> W, V, A or kWh (big-endian, high word first)."""
        data = struct.pack(f">{len(registers)}H", *registers)
        raw = float(struct.unpack(">" + _STRUCT[self.type], data)[0])
        return raw * self.scale * TO_MINERD[self.unit]


@dataclass(frozen=True)
class Table:
    profile: str
    function_code: int
    rows: tuple[Row, ...]
    # registers a real device also answers around the rows (address -> value), so block
    # reads across unlisted registers succeed as on the device
    filler: tuple[tuple[int, int], ...]


def _span(first: int, last: int) -> tuple[tuple[int, int], ...]:
    return tuple((a, 0) for a in range(first, last + 1))


# Eastron SDM630, FC4 input registers, float32 high word first; wire = vendor number - 30001.
SDM630 = Table(
    "eastron-sdm630",
    4,
    (
        Row("voltage_l1_v", 30001, 0x0000, "float32", "V", 230.1),
        Row("voltage_l2_v", 30003, 0x0002, "float32", "V", 231.2),
        Row("voltage_l3_v", 30005, 0x0004, "float32", "V", 229.8),
        Row("current_l1_a", 30007, 0x0006, "float32", "A", 10.5),
        Row("current_l2_a", 30009, 0x0008, "float32", "A", 11.0),
        Row("current_l3_a", 30011, 0x000A, "float32", "A", 9.5),
        Row("power_l1_w", 30013, 0x000C, "float32", "W", 2400.0),
        Row("power_l2_w", 30015, 0x000E, "float32", "W", 2500.0),
        Row("power_l3_w", 30017, 0x0010, "float32", "W", 2300.0),
        Row("power_w", 30053, 0x0034, "float32", "W", 7200.0),
        Row("energy_import_kwh", 30073, 0x0048, "float32", "kWh", 12345.5),
        Row("energy_export_kwh", 30075, 0x004A, "float32", "kWh", 12.25),
    ),
    _span(0, 0x004F),
)

# Janitza UMG 604, FC3 holding registers, float32 high word first; Janitza's numbers are
# the wire addresses. The device answers both blocks; they hold the same measurements.
_JANITZA_FILLER = _span(1300, 1450) + _span(9840, 9870) + _span(19000, 19080)
JANITZA_19000 = Table(
    "janitza-umg604",
    3,
    (
        Row("voltage_l1_v", 19000, 19000, "float32", "V", 230.4),
        Row("voltage_l2_v", 19002, 19002, "float32", "V", 231.0),
        Row("voltage_l3_v", 19004, 19004, "float32", "V", 229.6),
        Row("current_l1_a", 19012, 19012, "float32", "A", 210.0),
        Row("current_l2_a", 19014, 19014, "float32", "A", 220.0),
        Row("current_l3_a", 19016, 19016, "float32", "A", 200.0),
        Row("power_l1_w", 19020, 19020, "float32", "W", 48_000.0),
        Row("power_l2_w", 19022, 19022, "float32", "W", 50_000.0),
        Row("power_l3_w", 19024, 19024, "float32", "W", 46_000.0),
        Row("power_w", 19026, 19026, "float32", "W", 144_000.0),
        Row("energy_import_kwh", 19068, 19068, "float32", "Wh", 2_500_000.0),
        Row("energy_export_kwh", 19076, 19076, "float32", "Wh", 1_250.0),
    ),
    _JANITZA_FILLER,
)
JANITZA_LEGACY = Table(
    "janitza-umg604-legacy",
    3,
    (
        Row("voltage_l1_v", 1317, 1317, "float32", "V", 230.4),
        Row("voltage_l2_v", 1319, 1319, "float32", "V", 231.0),
        Row("voltage_l3_v", 1321, 1321, "float32", "V", 229.6),
        Row("current_l1_a", 1325, 1325, "float32", "A", 210.0),
        Row("current_l2_a", 1327, 1327, "float32", "A", 220.0),
        Row("current_l3_a", 1329, 1329, "float32", "A", 200.0),
        Row("power_l1_w", 1333, 1333, "float32", "W", 48_000.0),
        Row("power_l2_w", 1335, 1335, "float32", "W", 50_000.0),
        Row("power_l3_w", 1337, 1337, "float32", "W", 46_000.0),
        Row("power_w", 1369, 1369, "float32", "W", 144_000.0),
        Row("energy_import_kwh", 9851, 9851, "float32", "Wh", 2_500_000.0),
        Row("energy_export_kwh", 9863, 9863, "float32", "Wh", 1_250.0),
    ),
    _JANITZA_FILLER,
)

# Schneider iEM3000, FC3 holding registers; the manual's "Register Address" minus one is what
# the meter answers on the wire (mbmd iem3000.go: 0x0BF3 = 3059, 0x0C83 = 3203). Power is
# float32 in kW, energy INT64 in Wh, most significant word first.
IEM3000 = Table(
    "schneider-iem3000",
    3,
    (
        Row("current_l1_a", 3000, 2999, "float32", "A", 100.0),
        Row("current_l2_a", 3002, 3001, "float32", "A", 101.0),
        Row("current_l3_a", 3004, 3003, "float32", "A", 99.0),
        Row("voltage_l1_v", 3028, 3027, "float32", "V", 230.0),
        Row("voltage_l2_v", 3030, 3029, "float32", "V", 231.0),
        Row("voltage_l3_v", 3032, 3031, "float32", "V", 229.0),
        Row("power_l1_w", 3054, 3053, "float32", "kW", 83.5),
        Row("power_l2_w", 3056, 3055, "float32", "kW", 84.0),
        Row("power_l3_w", 3058, 3057, "float32", "kW", 83.0),
        Row("power_w", 3060, 3059, "float32", "kW", 250.5),
        Row("energy_import_kwh", 3204, 3203, "int64", "Wh", 987_654_321),
        Row("energy_export_kwh", 3208, 3207, "int64", "Wh", 1_234),
    ),
    _span(2990, 3120) + _span(3200, 3230),
)
# Registers the iEM3000 manual lists next to the rows above (not read by minerd): a profile
# one register off lands on these, as it would on the real meter. Units are the manual's.
IEM3000_NEIGHBOURS: Final = (
    Row("current_avg_a", 3010, 3009, "float32", "A", 100.0),
    Row("voltage_l1_l2_v", 3020, 3019, "float32", "V", 398.4),
    Row("voltage_l2_l3_v", 3022, 3021, "float32", "V", 400.1),
    Row("voltage_l3_l1_v", 3024, 3023, "float32", "V", 397.0),
    Row("voltage_ll_avg_v", 3026, 3025, "float32", "V", 398.5),
    Row("voltage_ln_avg_v", 3036, 3035, "float32", "V", 230.0),
    Row("reactive_power_kvar", 3068, 3067, "float32", "kVAR", 12.0),
    Row("apparent_power_kva", 3076, 3075, "float32", "kVA", 251.0),
    Row("power_factor", 3084, 3083, "float32", "", 0.99),
    Row("frequency_hz", 3110, 3109, "float32", "Hz", 50.0),
    Row("reactive_import_varh", 3220, 3219, "int64", "VARh", 55_555_555),
)

# The generic integer meter has no vendor: its layout is the one documented in
# drivers/meters/generic-modbus-meter.toml's comment and drivers/README.md, by wire address.
GENERIC = Table(
    "generic-modbus-meter",
    3,
    (
        Row("power_w", 0, 0, "int32", "W", -12345, 0.1),  # import-positive: exporting
        Row("voltage_l1_v", 2, 2, "uint16", "V", 2301, 0.1),
        Row("voltage_l2_v", 3, 3, "uint16", "V", 2312, 0.1),
        Row("voltage_l3_v", 4, 4, "uint16", "V", 2298, 0.1),
        Row("current_l1_a", 5, 5, "uint16", "A", 1050, 0.01),
        Row("current_l2_a", 6, 6, "uint16", "A", 1100, 0.01),
        Row("current_l3_a", 7, 7, "uint16", "A", 950, 0.01),
        Row("energy_import_kwh", 8, 8, "uint32", "kWh", 123_456_789, 0.01),
        Row("energy_export_kwh", 10, 10, "uint32", "kWh", 42, 0.01),
    ),
    _span(0, 11),
)

TABLES: Final = (SDM630, JANITZA_19000, JANITZA_LEGACY, IEM3000, GENERIC)


def layout(*tables: Table, extra: tuple[Row, ...] = ()) -> dict[int, int]:
    """Wire address -> register value for a device answering these tables."""
    regs: dict[int, int] = {}
    for table in tables:
        regs.update(table.filler)
    for row in (*(r for t in tables for r in t.rows), *extra):
        for i, word in enumerate(row.registers()):
            regs[row.wire + i] = word
    return regs
