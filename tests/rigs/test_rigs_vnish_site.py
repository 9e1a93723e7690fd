"""The config the simulator writes for a Vnish group (password file, web port) builds Vnish
drivers through the daemon's assembly, and those drivers read power from REST and command
the rigs: the path an operator takes with `minerd sim --fleet vnish:N` and `minerd run`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from minerd.daemon.assembly import build_devices
from minerd.devices.rig_vnish import VnishRig
from minerd.model import RigAction, RigCommand, RigProtocol, RigState
from minerd.settings.loader import load_settings
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

WAIT_WALL_S = 30.0


@pytest_asyncio.fixture
async def site() -> AsyncIterator[SimSite]:
    spec = SiteSpec(
        groups=(
            RigGroupSpec("bitmain-s19jpro", 2, RigProtocol.VNISH),
            RigGroupSpec("bitmain-s21", 1, RigProtocol.VNISH),
        ),
        rig_port=0,
        web_port=18080,  # fixed: each rig has its own loopback address
        base_octet=176,
        speed=20.0,
        workers=1,
    )
    async with SimSite(spec) as s:
        yield s


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_written_config_builds_drivers_that_read_and_command(
    site: SimSite, tmp_path: Path
) -> None:
    config = tmp_path / "site.toml"
    site.write_config(config)
    assert "admin" not in config.read_text()  # the password lives in its 0600 file
    devices = build_devices(load_settings(config))
    rigs = [r for r in devices.rigs if isinstance(r, VnishRig)]
    assert len(rigs) == 3
    try:
        for rig in rigs:
            assert rig.target.web_port == 18080
            reading = await rig.read(site.clock.now_s())
            assert reading.state is RigState.HASHING, reading.reason
            assert not reading.power_estimated  # from REST power_consumption
            assert reading.power_limit_w == rig.model.nominal_power_w
        first = rigs[0]
        await first.apply(RigCommand(first.rig_id, RigAction.SLEEP))
        async with asyncio.timeout(WAIT_WALL_S):
            while True:
                if (await first.read(site.clock.now_s())).state is RigState.SLEEPING:
                    break
                await asyncio.sleep(0.2)
        assert not site.fleet.rig(first.rig_id).awake
    finally:
        for rig in rigs:
            await rig.aclose()
