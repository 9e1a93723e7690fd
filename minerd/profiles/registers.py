"""Validate a register map: drivers/meters/*.toml, drivers/rigs/registers/*.toml."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, TypeVar

from minerd.errors import ProfileError
from minerd.model import ByteOrder, RegisterMap, RegisterPoint, RegisterType, WordOrder
from minerd.profiles.addressing import NUMBERINGS, Numbering
from minerd.profiles.fields import Fields
from minerd.profiles.points import METER_POINTS, METER_REQUIRED, RIG_POINTS, RIG_REQUIRED
from minerd.profiles.units import KNOWN_UNITS

MapKind = Literal["meter", "rig"]

MAP_KEYS: Final = (
    "vendor",
    "model",
    "function_code",
    "addressing",
    "byte_order",
    "word_order",
    "points",
)
POINT_KEYS: Final = (
    "name",
    "address",
    "type",
    "registers",
    "scale",
    "unit",
    "writable",
    "min",
    "max",
)
FUNCTION_CODES: Final = frozenset({3, 4})
MAX_ADDRESS: Final = 0xFFFF

# Raw integer range of each integer type, to check that writable bounds can be encoded.
_RAW_RANGE: Final[dict[RegisterType, tuple[int, int]]] = {
    RegisterType.INT16: (-(2**15), 2**15 - 1),
    RegisterType.UINT16: (0, 2**16 - 1),
    RegisterType.INT32: (-(2**31), 2**31 - 1),
    RegisterType.UINT32: (0, 2**32 - 1),
    RegisterType.INT64: (-(2**63), 2**63 - 1),
    RegisterType.UINT64: (0, 2**64 - 1),
}


E = TypeVar("E", ByteOrder, WordOrder, RegisterType)


def _enum_value(enum: type[E], raw: str | None, key: str, fields: Fields) -> E | None:
    if raw is None:
        return None
    try:
        return enum(raw)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        fields.problem(f"{key} {raw!r} is not one of: {allowed}")
        return None


def _parse_addressing(f: Fields, function_code: int | None) -> Numbering | None:
    """The profile's numbering convention; every map must name one."""
    known = ", ".join(NUMBERINGS)
    if "addressing" not in f.table:
        f.problem(f"missing key 'addressing': how the table's numbers map to the wire ({known})")
        return None
    raw = f.string("addressing")
    if raw is None:
        return None
    numbering = NUMBERINGS.get(raw)
    if numbering is None:
        f.problem(f"addressing {raw!r} is not one of: {known}")
        return None
    fc = numbering.function_code
    if fc is not None and function_code is not None and function_code != fc:
        f.problem(f"addressing {raw!r} numbers registers read with function_code {fc}")
    return numbering


def _parse_point(
    table: Mapping[str, object],
    index: int,
    function_code: int | None,
    numbering: Numbering,
    allowed: Mapping[str, frozenset[str]],
    kind: MapKind,
    problems: list[str],
) -> RegisterPoint | None:
    label = table.get("name")
    f = Fields(table, f"point {label if isinstance(label, str) else f'#{index}'}: ", problems)
    f.reject_unknown(POINT_KEYS)
    before = len(problems)
    name = f.string("name")
    address = f.integer("address")
    rtype = _enum_value(RegisterType, f.string("type"), "type", f)
    registers = f.integer("registers", required=False)
    scale = f.number("scale", default=1.0)
    unit = f.string("unit")
    writable = f.boolean("writable", default=False)
    min_value = f.number("min", required=False)
    max_value = f.number("max", required=False)

    if name is not None and name not in allowed:
        f.problem(f"unknown {kind} quantity {name!r} (known: {', '.join(allowed)})")
    if unit is not None:
        if unit not in KNOWN_UNITS:
            f.problem(f"unknown unit {unit!r} (known: {', '.join(sorted(KNOWN_UNITS))})")
        elif name is not None and name in allowed and unit not in allowed[name]:
            fits = ", ".join(sorted(allowed[name]))
            f.problem(f"unit {unit!r} does not fit {name} (use one of: {fits})")
    if address is not None and not numbering.first <= address <= numbering.last:
        f.problem(
            f"address {address} outside {numbering.first}..{numbering.last} "
            f"(addressing {numbering.name!r}: {numbering.meaning})"
        )
        address = None
    if rtype is not None:
        if registers is not None and registers != rtype.register_count:
            f.problem(f"registers = {registers} but {rtype.value} takes {rtype.register_count}")
        if (
            address is not None
            and numbering.to_wire(address) + rtype.register_count - 1 > MAX_ADDRESS
        ):
            where = numbering.describe(address)
            f.problem(f"{rtype.value} at {where} runs past wire address {MAX_ADDRESS}")
    if scale == 0.0:
        f.problem("scale must not be 0")
    if writable:
        if function_code == 4:
            f.problem("writable point in an input-register map (function code 4 is read only)")
        if min_value is None or max_value is None:
            f.problem("writable point needs both min and max")
        elif min_value >= max_value:
            f.problem(f"min {min_value:g} must be below max {max_value:g}")
        elif rtype in _RAW_RANGE and scale:
            lo, hi = _RAW_RANGE[rtype]
            for bound in (min_value, max_value):
                raw = round(bound / scale)
                if not lo <= raw <= hi:
                    f.problem(f"bound {bound:g} does not fit {rtype.value} at scale {scale:g}")
    elif min_value is not None or max_value is not None:
        f.problem("min/max are only allowed on writable points")

    if len(problems) > before or name is None or address is None or rtype is None:
        return None
    assert unit is not None and scale is not None
    return RegisterPoint(
        name=name,
        address=numbering.to_wire(address),
        type=rtype,
        scale=scale,
        unit=unit,
        writable=writable,
        min_value=min_value,
        max_value=max_value,
    )


def _check_layout(points: list[RegisterPoint], numbering: Numbering, problems: list[str]) -> None:
    """Unique names, no overlaps; overlaps are named in the file's own numbers."""
    first = numbering.first
    seen: set[str] = set()
    for p in points:
        if p.name in seen:
            problems.append(f"point {p.name}: duplicate name")
        seen.add(p.name)
    ordered = sorted(points, key=lambda p: p.address)
    for i, p in enumerate(ordered):
        p_end = p.address + p.register_count - 1
        for q in ordered[i + 1 :]:
            if q.address > p_end:
                break
            problems.append(
                f"point {q.name} ({q.address + first}..{q.address + q.register_count - 1 + first})"
                f" overlaps {p.name} ({p.address + first}..{p_end + first})"
            )


def parse_register_map(data: Mapping[str, object], name: str, kind: MapKind) -> RegisterMap:
    """Validate one parsed TOML register map; raise ProfileError listing every problem."""
    problems: list[str] = []
    f = Fields(data, "", problems)
    f.reject_unknown(MAP_KEYS)
    vendor = f.string("vendor")
    model = f.string("model")
    function_code = f.integer("function_code")
    if function_code is not None and function_code not in FUNCTION_CODES:
        f.problem(f"function_code {function_code} is not 3 (holding) or 4 (input)")
        function_code = None
    numbering = _parse_addressing(f, function_code)
    byte_order = _enum_value(ByteOrder, f.string("byte_order", default="big"), "byte_order", f)
    word_order = _enum_value(
        WordOrder, f.string("word_order", default="high_first"), "word_order", f
    )
    tables = f.table_list("points")
    if "points" in data and not tables and not problems:
        f.problem("points is empty")

    allowed = METER_POINTS if kind == "meter" else RIG_POINTS
    required = METER_REQUIRED if kind == "meter" else RIG_REQUIRED
    points: list[RegisterPoint] = []
    for i, table in enumerate(tables):
        # Without a valid convention, still check each point as if its numbers were wire ones.
        point_numbering = numbering or NUMBERINGS["wire"]
        point = _parse_point(table, i, function_code, point_numbering, allowed, kind, problems)
        if point is not None:
            points.append(point)
    _check_layout(points, numbering or NUMBERINGS["wire"], problems)
    names = {t.get("name") for t in tables}
    for req in required:
        if tables and req not in names:
            problems.append(f"a {kind} map needs a {req!r} point")

    if problems:
        raise ProfileError(name, problems)
    assert vendor is not None and model is not None and function_code is not None
    assert byte_order is not None and word_order is not None
    return RegisterMap(
        name=name,
        vendor=vendor,
        model=model,
        function_code=function_code,
        byte_order=byte_order,
        word_order=word_order,
        points=tuple(sorted(points, key=lambda p: p.address)),
    )
