"""Shed capacity as IEC 104 measured points 1007-1009: site import kW per horizon, invalid
before the first control cycle, spontaneous beyond the 5 kW deadband."""

from __future__ import annotations

import dataclasses

import pytest

from minerd.gridlink.iec104_points import moved, point_values
from minerd.model import EffectiveLimit, RigProtocol, ShedCapacity, ShedClass
from minerd.runtime.service import SiteStatus
from minerd.settings.models import Iec104Settings

SETTINGS = Iec104Settings.model_validate({"allowed_clients": ["10.0.0.5"]})
STATUS = SiteStatus(
    site="s",
    taken_at_s=1000.0,
    grid_import_kw=420.0,
    grid_fresh=True,
    limit=EffectiveLimit(450.0, "quota", "q-1"),
    contracted_limit_kw=500.0,
    failsafe_limit_kw=200.0,
    operator_cap_kw=None,
    rig_budget_kw=400.0,
    planned_power_kw=400.0,
    rig_power_kw=390.0,
    hashrate_ths=12_000.0,
    rigs_by_state=(),
    failsafe=False,
    failsafe_reason="",
    cycle=10,
)


def shed(rig_w: tuple[float, float, float]) -> ShedCapacity:
    cls = ShedClass(RigProtocol.LUXOS, "bitmain-s19jpro", 100, 306_800.0, rig_w)
    return ShedCapacity((5.0, 60.0, 600.0), 1.05, (cls,))


def test_points_carry_site_import_kw_per_horizon() -> None:
    values = point_values(dataclasses.replace(STATUS, shed=shed((100e3, 200e3, 300e3))), None)
    got = [
        (values[n].value, values[n].valid) for n in ("shed_5s_kw", "shed_60s_kw", "shed_600s_kw")
    ]
    assert got == [
        (pytest.approx(105.0), True),
        (pytest.approx(210.0), True),
        (pytest.approx(315.0), True),
    ]
    addresses = SETTINGS.points.addresses()
    assert [addresses[n] for n in ("shed_5s_kw", "shed_60s_kw", "shed_600s_kw")] == [
        1007,
        1008,
        1009,
    ]


def test_before_the_first_cycle_the_points_are_invalid() -> None:
    values = point_values(STATUS, None)
    assert [(values[n].value, values[n].valid) for n in ("shed_5s_kw", "shed_600s_kw")] == [
        (0.0, False),
        (0.0, False),
    ]


def test_spontaneous_only_beyond_the_deadband() -> None:
    points = SETTINGS.points
    a = point_values(dataclasses.replace(STATUS, shed=shed((100e3, 0.0, 0.0))), None)
    near = point_values(dataclasses.replace(STATUS, shed=shed((104e3, 0.0, 0.0))), None)
    far = point_values(dataclasses.replace(STATUS, shed=shed((110e3, 0.0, 0.0))), None)
    assert not moved(points, a["shed_5s_kw"], near["shed_5s_kw"])  # 4.2 kW < 5 kW
    assert moved(points, a["shed_5s_kw"], far["shed_5s_kw"])  # 10.5 kW
    assert moved(points, point_values(STATUS, None)["shed_5s_kw"], a["shed_5s_kw"])  # validity
