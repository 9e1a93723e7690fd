"""Parse a rig profile's `[firmware.<family>]` tables: reaction times and modes per firmware.

One table per family the model runs, e.g.

    [firmware.stock]
    sleep_time_s = 45        # set_miner_conf restarts the miner process
    wake_time_s = 90
    command_timeout_s = 40   # set_miner_conf.cgi answers after ~21 s
    modes = ["sleep_wake"]
    power_steps_w = []       # discrete presets (Vnish autotune), ascending
    power_change_s = 0       # power target/limit change until it holds (0: no such mode)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Final

from minerd.model import ControlMode, FirmwareReaction, RigProtocol
from minerd.profiles.fields import Fields

FIRMWARE_KEYS: Final = (
    "sleep_time_s",
    "wake_time_s",
    "command_timeout_s",
    "modes",
    "power_steps_w",
    "power_change_s",
)
# Families a rig's own firmware can be; modbus and mqtt are site wiring, not firmware.
FIRMWARE_FAMILIES: Final = tuple(
    p for p in RigProtocol if p not in (RigProtocol.MODBUS, RigProtocol.MQTT)
)


def parse_firmware(
    raw: object,
    power_range_w: tuple[float, float] | None,
    problems: list[str],
) -> tuple[FirmwareReaction, ...]:
    """Every `[firmware.<family>]` table, checked; problems name the table and key.

    A family's modes may exceed the model's top-level `modes` (which describe LuxOS): Braiins
    and Whatsminer set a power target on models LuxOS drives by profiles."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        problems.append("firmware must be a table of [firmware.<family>] tables")
        return ()
    known = [p.value for p in FIRMWARE_FAMILIES]
    out: list[FirmwareReaction] = []
    for name, table in raw.items():
        if name not in known:
            problems.append(f"firmware.{name}: unknown family (known: {', '.join(known)})")
            continue
        if not isinstance(table, Mapping):
            problems.append(f"firmware.{name} must be a table")
            continue
        reaction = _parse_one(RigProtocol(name), table, power_range_w, problems)
        if reaction is not None:
            out.append(reaction)
    return tuple(out)


def _parse_one(
    family: RigProtocol,
    table: Mapping[str, object],
    power_range_w: tuple[float, float] | None,
    problems: list[str],
) -> FirmwareReaction | None:
    before = len(problems)
    f = Fields(table, f"firmware.{family.value}: ", problems)
    f.reject_unknown(FIRMWARE_KEYS)
    sleep_s = f.number("sleep_time_s")
    wake_s = f.number("wake_time_s")
    timeout_s = f.number("command_timeout_s")
    change_s = f.number("power_change_s", default=0.0)
    for key, v in (
        ("sleep_time_s", sleep_s),
        ("wake_time_s", wake_s),
        ("power_change_s", change_s),
    ):
        if v is not None and v < 0:
            f.problem(f"{key} must not be negative")
    if timeout_s is not None and timeout_s <= 0:
        f.problem("command_timeout_s must be positive")
    modes: set[ControlMode] = set()
    for m in f.string_list("modes"):
        try:
            mode = ControlMode(m)
        except ValueError:
            f.problem(f"unknown mode {m!r} (known: {', '.join(c.value for c in ControlMode)})")
            continue
        modes.add(mode)
    steps = _steps(f)
    if steps and power_range_w is not None:
        lo, hi = power_range_w
        for w in steps:
            if not lo <= w <= hi:
                f.problem(f"power_steps_w: {w:g} W outside [{lo:g}, {hi:g}] W")
    if ControlMode.PROFILES in modes and not steps and family is RigProtocol.VNISH:
        f.problem("mode 'profiles' needs power_steps_w (the autotune presets in watts)")
    if ControlMode.POWER_TARGET in modes and not change_s:
        f.problem("mode 'power_target' needs power_change_s (how long a new target takes)")
    if len(problems) != before:
        return None
    assert sleep_s is not None and wake_s is not None and timeout_s is not None
    return FirmwareReaction(
        family=family,
        sleep_time_s=sleep_s,
        wake_time_s=wake_s,
        command_timeout_s=timeout_s,
        modes=frozenset(modes),
        power_steps_w=steps,
        power_change_s=change_s or 0.0,
    )


def _steps(f: Fields) -> tuple[float, ...]:
    raw = f.raw("power_steps_w", required=False)
    if raw is None:
        return ()
    ok = isinstance(raw, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in raw
    )
    if not ok:
        f.problem("power_steps_w must be an array of numbers (watts)")
        return ()
    assert isinstance(raw, list)
    steps = tuple(float(v) for v in raw)
    for a, b in itertools.pairwise(steps):
        if b <= a:
            f.problem(f"power_steps_w must ascend: {b:g} W after {a:g} W")
            return ()
    return steps
