"""Parse and validate a rig model (drivers/rigs/<vendor>-<model>.toml) into a RigModel."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Final, TypeVar

from minerd.errors import ProfileError
from minerd.model import ControlMode, CurvePoint, PowerProfile, RigModel, RigProtocol
from minerd.profiles.fields import Fields
from minerd.profiles.firmware import parse_firmware

RIG_KEYS: Final = (
    "vendor",
    "model",
    "nominal_power_w",
    "nominal_hashrate_ths",
    "sleep_power_w",
    "min_power_w",
    "max_power_w",
    "modes",
    "protocols",
    "profiles",
    "curve",
    "wake_time_s",
    "sleep_time_s",
    "chip_temp_derate_c",
    "chip_temp_max_c",
    "boards",
    "fans",
    "fan_rpm_nominal",
    "firmware",
)
PROFILE_KEYS: Final = ("name", "power_w", "hashrate_ths")
# A profile's or the nominal hashrate may differ this much from the curve before we call it a typo.
CURVE_TOLERANCE: Final = 0.05
# Rounding slack when checking that the curve is concave.
SLOPE_EPSILON: Final = 1e-9


def _parse_curve(raw: object | None, f: Fields) -> list[CurvePoint]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        f.problem("curve must be an array of [power_w, hashrate_ths] pairs")
        return []
    curve: list[CurvePoint] = []
    for i, pair in enumerate(raw):
        ok = (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
        )
        if not ok:
            f.problem(f"curve[{i}] must be [power_w, hashrate_ths], got {pair!r}")
            continue
        curve.append(CurvePoint(power_w=float(pair[0]), hashrate_ths=float(pair[1])))
    return curve


def _check_curve(curve: list[CurvePoint], f: Fields) -> None:
    if len(curve) < 2:
        f.problem("curve needs at least 2 points")
        return
    for p in curve:
        if p.power_w <= 0 or p.hashrate_ths <= 0:
            f.problem(f"curve point [{p.power_w:g}, {p.hashrate_ths:g}] must be positive")
    slopes: list[float] = []
    for a, b in itertools.pairwise(curve):
        if b.power_w <= a.power_w:
            f.problem(f"curve power must ascend: {b.power_w:g} W after {a.power_w:g} W")
            return
        if b.hashrate_ths < a.hashrate_ths:
            f.problem(
                f"curve hashrate must not fall: {b.hashrate_ths:g} TH/s at {b.power_w:g} W "
                f"after {a.hashrate_ths:g} TH/s at {a.power_w:g} W"
            )
            return
        slopes.append((b.hashrate_ths - a.hashrate_ths) / (b.power_w - a.power_w))
    # The planner relies on diminishing returns: each extra watt buys no more than the last.
    for i, (s0, s1) in enumerate(itertools.pairwise(slopes)):
        if s1 > s0 + SLOPE_EPSILON:
            f.problem(
                f"curve must be concave (diminishing returns): slope rises after "
                f"{curve[i + 1].power_w:g} W"
            )
    for a, b in itertools.pairwise(curve):
        if b.hashrate_ths / b.power_w > a.hashrate_ths / a.power_w + SLOPE_EPSILON:
            f.problem(f"curve efficiency (TH/W) must not improve with power: at {b.power_w:g} W")


def _near(value: float, expected: float) -> bool:
    return abs(value - expected) <= CURVE_TOLERANCE * max(abs(expected), 1e-9)


def _parse_profiles(tables: list[Mapping[str, object]], problems: list[str]) -> list[PowerProfile]:
    profiles: list[PowerProfile] = []
    for i, table in enumerate(tables):
        label = table.get("name")
        f = Fields(table, f"profile {label if isinstance(label, str) else f'#{i}'}: ", problems)
        f.reject_unknown(PROFILE_KEYS)
        before = len(problems)
        name = f.string("name")
        power_w = f.number("power_w")
        hashrate_ths = f.number("hashrate_ths")
        if power_w is not None and power_w <= 0:
            f.problem("power_w must be positive")
        if hashrate_ths is not None and hashrate_ths <= 0:
            f.problem("hashrate_ths must be positive")
        if len(problems) == before and name and power_w and hashrate_ths:
            profiles.append(PowerProfile(name=name, power_w=power_w, hashrate_ths=hashrate_ths))
    return profiles


def _check_profiles(profiles: list[PowerProfile], curve_ok: RigModel | None, f: Fields) -> None:
    names = [p.name for p in profiles]
    for n in sorted({n for n in names if names.count(n) > 1}):
        f.problem(f"profile {n}: duplicate name")
    for a, b in itertools.pairwise(profiles):
        if b.power_w <= a.power_w:
            f.problem(f"profiles must ascend in power: {b.name} ({b.power_w:g} W) after {a.name}")
    if curve_ok is None:
        return
    for p in profiles:
        if not curve_ok.min_power_w <= p.power_w <= curve_ok.max_power_w:
            f.problem(
                f"profile {p.name}: {p.power_w:g} W outside "
                f"[{curve_ok.min_power_w:g}, {curve_ok.max_power_w:g}] W"
            )
        elif not _near(p.hashrate_ths, curve_ok.hashrate_at(p.power_w)):
            f.problem(
                f"profile {p.name}: {p.hashrate_ths:g} TH/s is more than "
                f"{CURVE_TOLERANCE:.0%} off the curve ({curve_ok.hashrate_at(p.power_w):.1f} TH/s)"
            )


def parse_rig_model(data: Mapping[str, object], name: str) -> RigModel:
    """Validate one parsed rig model TOML; raise ProfileError listing every problem."""
    problems: list[str] = []
    f = Fields(data, "", problems)
    f.reject_unknown(RIG_KEYS)
    vendor = f.string("vendor")
    model = f.string("model")
    nums = {
        key: f.number(key)
        for key in (
            "nominal_power_w",
            "nominal_hashrate_ths",
            "sleep_power_w",
            "min_power_w",
            "max_power_w",
            "wake_time_s",
            "sleep_time_s",
            "chip_temp_derate_c",
            "chip_temp_max_c",
        )
    }
    ints = {key: f.integer(key) for key in ("boards", "fans", "fan_rpm_nominal")}

    modes: set[ControlMode] = set()
    mode_names = f.string_list("modes")
    for m in mode_names:
        try:
            modes.add(ControlMode(m))
        except ValueError:
            f.problem(f"unknown mode {m!r} (known: {', '.join(c.value for c in ControlMode)})")
    if isinstance(data.get("modes"), list) and not mode_names:
        f.problem("modes is empty")
    # Protocol hints are checked for typos; which protocol a group speaks is site config.
    known_protocols = [p.value for p in RigProtocol]
    for proto in f.string_list("protocols", required=False):
        if proto not in known_protocols:
            f.problem(f"unknown protocol {proto!r} (known: {', '.join(known_protocols)})")

    profiles = _parse_profiles(f.table_list("profiles", required=False), problems)
    curve = _parse_curve(f.raw("curve"), f)
    if "curve" in data:
        _check_curve(curve, f)

    for key in ("nominal_power_w", "nominal_hashrate_ths", "min_power_w", "max_power_w"):
        v = nums[key]
        if v is not None and v <= 0:
            f.problem(f"{key} must be positive")
    for key in ("sleep_power_w", "wake_time_s", "sleep_time_s"):
        v = nums[key]
        if v is not None and v < 0:
            f.problem(f"{key} must not be negative")
    for key in ("boards", "fan_rpm_nominal"):
        iv = ints[key]
        if iv is not None and iv <= 0:
            f.problem(f"{key} must be positive")
    if ints["fans"] is not None and ints["fans"] < 0:
        f.problem("fans must not be negative")

    lo, hi = nums["min_power_w"], nums["max_power_w"]
    nominal_w, sleep_w = nums["nominal_power_w"], nums["sleep_power_w"]
    if lo is not None and hi is not None:
        if lo > hi:
            f.problem(f"min_power_w {lo:g} is above max_power_w {hi:g}")
        if ControlMode.POWER_TARGET in modes and lo >= hi:
            f.problem("power_target mode needs min_power_w below max_power_w")
        if nominal_w is not None and not lo <= nominal_w <= hi:
            f.problem(f"nominal_power_w {nominal_w:g} outside [{lo:g}, {hi:g}] W")
        if curve and len(curve) >= 2 and (curve[0].power_w > lo or curve[-1].power_w < hi):
            f.problem(
                f"curve must cover [{lo:g}, {hi:g}] W, it spans "
                f"[{curve[0].power_w:g}, {curve[-1].power_w:g}] W"
            )
    if sleep_w is not None and lo is not None and sleep_w >= lo:
        f.problem(f"sleep_power_w {sleep_w:g} must be below min_power_w {lo:g}")
    derate, tmax = nums["chip_temp_derate_c"], nums["chip_temp_max_c"]
    if derate is not None and tmax is not None and derate >= tmax:
        f.problem(f"chip_temp_derate_c {derate:g} must be below chip_temp_max_c {tmax:g}")
    if ControlMode.PROFILES in modes and not profiles and "profiles" not in data:
        f.problem("mode 'profiles' needs a [[profiles]] list")
    if profiles and ControlMode.PROFILES not in modes:
        f.problem("[[profiles]] given but mode 'profiles' is not declared")

    power_range_w = (sleep_w, hi) if sleep_w is not None and hi is not None else None
    firmware = parse_firmware(data.get("firmware"), power_range_w, problems)

    if problems:
        # Check profiles and nominal values against the curve only once the basics hold.
        _check_profiles(profiles, None, f)
        raise ProfileError(name, problems)
    assert vendor is not None and model is not None
    rig = RigModel(
        name=name,
        vendor=vendor,
        model=model,
        nominal_power_w=_req(nums["nominal_power_w"]),
        nominal_hashrate_ths=_req(nums["nominal_hashrate_ths"]),
        sleep_power_w=_req(sleep_w),
        min_power_w=_req(lo),
        max_power_w=_req(hi),
        modes=frozenset(modes),
        profiles=tuple(profiles),
        curve=tuple(curve),
        wake_time_s=_req(nums["wake_time_s"]),
        sleep_time_s=_req(nums["sleep_time_s"]),
        chip_temp_derate_c=_req(derate),
        chip_temp_max_c=_req(tmax),
        boards=_req(ints["boards"]),
        fans=_req(ints["fans"]),
        fan_rpm_nominal=_req(ints["fan_rpm_nominal"]),
        firmware=firmware,
    )
    _check_profiles(profiles, rig, f)
    if not _near(rig.nominal_hashrate_ths, rig.hashrate_at(rig.nominal_power_w)):
        f.problem(
            f"nominal_hashrate_ths {rig.nominal_hashrate_ths:g} is more than "
            f"{CURVE_TOLERANCE:.0%} off the curve at nominal_power_w "
            f"({rig.hashrate_at(rig.nominal_power_w):.1f} TH/s)"
        )
    if problems:
        raise ProfileError(name, problems)
    return rig


T = TypeVar("T")


def _req(value: T | None) -> T:
    assert value is not None
    return value
