"""Rig models for the control tests, built directly (no drivers/ files needed)."""

from __future__ import annotations

from minerd.model import ControlMode, CurvePoint, PowerProfile, RigModel


def make_model(
    name: str = "test-profiles",
    *,
    profiles: tuple[tuple[float, float], ...] = ((2000.0, 80.0), (2600.0, 96.0), (3200.0, 108.0)),
    curve: tuple[tuple[float, float], ...] = (),
    sleep_power_w: float = 20.0,
    modes: frozenset[ControlMode] | None = None,
    derate_c: float = 85.0,
    max_c: float = 95.0,
) -> RigModel:
    if modes is None:
        wanted = {ControlMode.SLEEP_WAKE}
        if profiles:
            wanted.add(ControlMode.PROFILES)
        if curve:
            wanted.add(ControlMode.POWER_TARGET)
        modes = frozenset(wanted)
    pts = tuple(CurvePoint(p, h) for p, h in curve)
    nominal = profiles[-1] if profiles else (curve[-1] if curve else (3000.0, 100.0))
    return RigModel(
        name=name,
        vendor="test",
        model=name,
        nominal_power_w=nominal[0],
        nominal_hashrate_ths=nominal[1],
        sleep_power_w=sleep_power_w,
        min_power_w=pts[0].power_w if pts else 0.0,
        max_power_w=pts[-1].power_w if pts else 0.0,
        modes=modes,
        profiles=tuple(PowerProfile(f"p{int(p)}", p, h) for p, h in profiles),
        curve=pts,
        wake_time_s=10.0,
        sleep_time_s=5.0,
        chip_temp_derate_c=derate_c,
        chip_temp_max_c=max_c,
        boards=3,
        fans=4,
        fan_rpm_nominal=6000,
    )


PROFILE_RIG = make_model()
CURVE_RIG = make_model(
    "test-curve",
    profiles=(),
    curve=((1000.0, 50.0), (2000.0, 85.0), (3000.0, 110.0), (3500.0, 118.0)),
)
SLEEP_ONLY_RIG = make_model(
    "test-sleep-only", profiles=(), modes=frozenset({ControlMode.SLEEP_WAKE})
)
