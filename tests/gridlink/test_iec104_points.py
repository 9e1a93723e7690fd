"""The outstation's point values and command checks, without a SCADA."""

from __future__ import annotations

import math

from minerd.gridlink.iec104_commands import Rejected, Setpoint, Withdraw, check_setpoint
from minerd.gridlink.iec104_commands import check_withdraw as withdraw
from minerd.gridlink.iec104_points import moved, point_values
from minerd.model import EffectiveLimit, RigState
from minerd.runtime.service import SiteStatus
from minerd.settings.models import Iec104Settings

SETTINGS = Iec104Settings.model_validate({"allowed_clients": ["10.0.0.5"]})


def status(grid_fresh: bool = True, origin: str = "quota", failsafe: bool = False) -> SiteStatus:
    return SiteStatus(
        site="s",
        taken_at_s=1000.0,
        grid_import_kw=420.0,
        grid_fresh=grid_fresh,
        limit=EffectiveLimit(450.0, origin, "q-1"),
        contracted_limit_kw=500.0,
        failsafe_limit_kw=200.0,
        operator_cap_kw=None,
        rig_budget_kw=400.0,
        planned_power_kw=400.0,
        rig_power_kw=390.0,
        hashrate_ths=12_000.0,
        rigs_by_state=tuple((s, 0) for s in RigState),
        failsafe=failsafe,
        failsafe_reason="meter stale" if failsafe else "",
        cycle=7,
    )


def test_values_carry_the_snapshot_time_and_the_origin_code() -> None:
    values = point_values(status(), setpoint_kw=450.0)
    assert {v.at_s for v in values.values()} == {1000.0}
    assert values["grid_import_kw"].value == 420.0 and values["grid_import_kw"].valid
    assert values["limit_origin"].value == 1.0
    assert values["setpoint_kw"].value == 450.0 and values["setpoint_kw"].valid
    assert point_values(status(origin="failsafe"), None)["limit_origin"].value == 3.0


def test_stale_grid_meter_marks_the_import_invalid_and_no_setpoint_is_invalid() -> None:
    values = point_values(status(grid_fresh=False, failsafe=True), setpoint_kw=None)
    assert not values["grid_import_kw"].valid
    assert values["grid_fresh"].value is False and values["failsafe"].value is True
    assert values["setpoint_kw"].value == 0.0 and not values["setpoint_kw"].valid


def test_spontaneous_only_beyond_the_deadband_or_on_a_state_change() -> None:
    points = SETTINGS.points  # grid import deadband 5 kW
    a = point_values(status(), None)["grid_import_kw"]
    b = point_values(status(), None)["grid_import_kw"]
    assert moved(points, None, a)
    assert not moved(points, a, b)
    far = type(a)(a.name, 426.0, True, 1001.0)
    assert moved(points, a, far)
    assert moved(points, a, type(a)(a.name, 420.0, False, 1001.0))


def test_setpoint_range_and_scale() -> None:
    assert check_setpoint(SETTINGS, 500.0, 300.0) == Setpoint(300.0)
    assert check_setpoint(SETTINGS, 500.0, 0.0) == Setpoint(0.0)
    for wire in (500.1, -1.0, math.nan, math.inf):
        out = check_setpoint(SETTINGS, 500.0, wire)
        assert isinstance(out, Rejected) and out.reason.startswith("out of range")
    mw = Iec104Settings.model_validate(
        {"allowed_clients": ["10.0.0.5"], "points": {"setpoint_scale": 0.001}}
    )
    assert check_setpoint(mw, 500.0, 0.3) == Setpoint(300.0)  # MW on the wire


def test_monitoring_only_refuses_every_command() -> None:
    off = SETTINGS.model_copy(update={"commands": False})
    assert isinstance(check_setpoint(off, 500.0, 100.0), Rejected)
    assert isinstance(withdraw(off, True), Rejected)
    assert withdraw(SETTINGS, True) == Withdraw()
    assert isinstance(withdraw(SETTINGS, False), Rejected)
