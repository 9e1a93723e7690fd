"""Every firmware family's driver, built through the registry, reads a simulated rig over 4028.

Commands are not built yet for the new families (issue 13 scaffold): they are refused with
a CommandRejected naming the rig, never silently dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sim_fleet import manual_fleet

from minerd.clock import ManualClock
from minerd.daemon.assembly import build_devices
from minerd.devices.registry import BUILDERS, build_rig
from minerd.devices.rig_stock import StockRig
from minerd.devices.target import RigTarget
from minerd.errors import CommandRejected, ConfigError
from minerd.model import RigAction, RigCommand, RigProtocol, RigState
from minerd.profiles import load_rig_model
from minerd.settings import settings_from_dict
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec

# rig id -> (family, model)
RIGS = {
    "c001-r001": (RigProtocol.STOCK, "bitmain-s19jpro"),
    "c001-r002": (RigProtocol.VNISH, "bitmain-s21"),
    "c001-r003": (RigProtocol.WHATSMINER, "microbt-m50s"),
    "c001-r004": (RigProtocol.BRAIINS, "bitmain-s19jpro"),
}


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(
        groups=tuple(RigGroupSpec(model, 1, fam) for fam, model in RIGS.values()),
        rig_port=0,
        base_octet=93,
        web_port=0,
        whatsminer_api_port=0,
        grpc_port=0,
    )
    async with manual_fleet(spec, start_s=1_764_400_000.0) as f:
        yield f


def _target(fleet: RigFleet, rig_id: str) -> RigTarget:
    rig = fleet.rigs[rig_id]
    return RigTarget(
        rig_id=rig_id,
        host=rig.plan.host,
        port=fleet.port_of(rig),
        model=load_rig_model(RIGS[rig_id][1]),
        timeout_s=5.0,
        password="not-logged",
        web_port=fleet.family_port_of(rig_id) or 80,  # stock CGI / Vnish REST
        grpc_port=fleet.family_port_of(rig_id) or 50051,  # Braiins OS+ gRPC
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("rig_id", sorted(RIGS))
async def test_family_driver_reads_the_simulated_rig(fleet: RigFleet, rig_id: str) -> None:
    family, _ = RIGS[rig_id]
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    clock.advance(600)  # past warm-up
    rig = build_rig(family, _target(fleet, rig_id))
    try:
        assert rig.protocol is family
        now_s = clock.now_s()
        reading = await rig.read(now_s)
        truth = fleet.rigs[rig_id].view(now_s)
        assert reading.state is RigState.HASHING, reading.reason
        assert reading.hashrate_ths == pytest.approx(truth.hashrate_ths, rel=1e-3)
        assert (reading.boards_ok, reading.boards_total) == (3, 3)
        with pytest.raises(
            CommandRejected, match=r"not built yet|wrong (admin )?password|refused"
        ) as info:
            await rig.apply(RigCommand(rig_id, RigAction.SLEEP))
        assert info.value.device == rig_id
        assert "not-logged" not in repr(_target(fleet, rig_id))
    finally:
        await rig.aclose()


def test_every_rig_family_has_a_builder() -> None:
    wired = {RigProtocol.MODBUS, RigProtocol.MQTT}  # built by assembly: they share hubs
    assert set(BUILDERS) == set(RigProtocol) - wired


def test_a_family_without_builder_is_a_config_error() -> None:
    target = RigTarget("r1", "127.0.0.1", 4028, load_rig_model("bitmain-s21"))
    with pytest.raises(ConfigError, match="driver 'modbus' is not built yet"):
        build_rig(RigProtocol.MODBUS, target)


def test_site_assembly_builds_family_drivers_with_family_times(tmp_path: Path) -> None:
    (tmp_path / "web.pw").write_text("pw\n")
    raw = {
        "site": {"name": "t", "timezone": "UTC"},
        "grid": {"contracted_limit_kw": 5000, "failsafe_limit_kw": 3000, "margin_kw": 50},
        "meters": [
            {
                "name": "grid-main",
                "profile": "eastron-sdm630",
                "endpoint": "tcp://127.0.0.1:1502",
                "role": "grid",
            }
        ],
        "rigs": [
            {
                "name": "s",
                "driver": "stock",
                "profile": "bitmain-s19jpro",
                "hosts": ["10.0.0.1"],
                "password_file": "web.pw",
                "web_port": 8081,
            },
            {"name": "l", "driver": "luxos", "profile": "bitmain-s19jpro", "hosts": ["10.0.0.2"]},
        ],
    }
    devices = build_devices(settings_from_dict(raw, base_dir=tmp_path, environ={}))
    stock, lux = devices.rigs
    assert isinstance(stock, StockRig)
    assert (stock.target.password, stock.target.username, stock.target.web_port) == (
        "pw",
        "root",
        8081,
    )
    assert devices.models[stock.rig_id].sleep_time_s == 45  # [firmware.stock]
    assert devices.models[lux.rig_id].sleep_time_s == 5
    assert [i.protocol for i in devices.rig_infos] == [RigProtocol.STOCK, RigProtocol.LUXOS]
