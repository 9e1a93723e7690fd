"""The daemon's Site gives each rig its own family's command limit (issue: every rig got
the executor's default 5 s, so a stock set_miner_conf, which answers after ~21 s, could
never be waited for), and never one shorter than the driver's own exchanges."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerd.clock import ManualClock
from minerd.control.loop import LoopConfig
from minerd.control.planner import PlanConstraints
from minerd.devices.rig import command_limit_s
from minerd.model import RigProtocol, RigReading
from minerd.profiles import load_rig_model
from minerd.runtime.cycle import CycleConfig
from minerd.runtime.devices import RigInfo
from minerd.runtime.site import Site
from minerd.storage import Database, Stores

MODEL = "bitmain-s19jpro"
READ_TIMEOUT_S = 3.0
# family -> the [firmware.<family>] command_timeout_s of drivers/rigs/bitmain-s19jpro.toml
FAMILIES = {
    RigProtocol.LUXOS: 5.0,
    RigProtocol.STOCK: 40.0,
    RigProtocol.VNISH: 10.0,
    RigProtocol.BRAIINS: 10.0,
}


class _Rig:
    def __init__(self, rig_id: str) -> None:
        self.rig_id = rig_id

    async def read(self, now_s: float) -> RigReading:
        raise AssertionError("not read here")

    async def apply(self, cmd: object) -> None:
        raise AssertionError("not commanded here")


def _info(rig_id: str, family: RigProtocol) -> RigInfo:
    return RigInfo(rig_id, MODEL, "c1", "10.0.0.7", 4028, family, 30.0, READ_TIMEOUT_S, 90.0)


def _site(tmp_path: Path) -> Site:
    base = load_rig_model(MODEL)
    infos = [_info(f.value, f) for f in FAMILIES]
    loop = LoopConfig(
        margin_kw=0.0, aux_base_kw=0.0, aux_fraction=0.0, ramp_up_kw_per_s=1.0,
        failsafe_limit_kw=0.0,
    )  # fmt: skip
    return Site(
        rig_infos=infos,
        rigs=[_Rig(i.rig_id) for i in infos],
        models={i.rig_id: base.for_family(i.protocol) for i in infos},  # as assembly does
        meter_infos=[],
        meters=[],
        stores=Stores.open(Database(tmp_path / "m.sqlite")),
        clock=ManualClock(),
        config=CycleConfig(
            site="s",
            contracted_limit_kw=100.0,
            failsafe_limit_kw=0.0,
            settlement_interval_s=900.0,
            loop=loop,
            constraints=PlanConstraints(min_on_s=0.0, min_off_s=0.0),
        ),
    )


@pytest.mark.parametrize("family", list(FAMILIES), ids=lambda f: f.value)
def test_each_rig_gets_its_familys_command_limit(tmp_path: Path, family: RigProtocol) -> None:
    executor = _site(tmp_path).executor
    route = executor.route(family.value)
    assert route.limit_s == command_limit_s(FAMILIES[family], READ_TIMEOUT_S)
    assert route.limit_s > FAMILIES[family]  # never shorter than the driver's own limit
    assert route.endpoint == "10.0.0.7:4028"
    assert executor.limits_s[family.value] == route.limit_s  # what the fail-safe shed uses


def test_stock_rigs_are_slow_and_luxos_rigs_fast(tmp_path: Path) -> None:
    executor = _site(tmp_path).executor
    assert executor.route("stock").limit_s > 40.0 + 2.0  # config read + the 2 s ack window
    assert executor.route("luxos").limit_s == min(executor.limits_s.values())
