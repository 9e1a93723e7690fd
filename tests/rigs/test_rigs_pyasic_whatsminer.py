"""pyasic, an independent client, against a simulated Whatsminer M50S: it must find the
Whatsminer class and the model, read hashrate and power that match GET /truth, and stop and
resume mining; its v2 privileged client (md5-crypt token, AES-256-ECB) must be able to talk
to the simulator's 4028 too.

pyasic dials fixed ports (4028, 4433, 80/443), so the rig listens on 4028 and 4433 of its own
loopback address. The simulated firmware is a 2025 build (`get_version` fw_ver 20250214):
pyasic then picks its API v3 backend (BTMinerV3: `set.miner.service stop|start`), as it would
for a real rig of that age; the v2 path is exercised through pyasic's BTMinerRPCAPI directly.

Where pyasic and the reference (firmware-apis.md) disagree, the reference wins:
- pyasic's v2 client defaults to the password "admin"; the simulator, like minerd's config,
  has one admin password per rig (the documented v3 default "super"), so the test sets it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pyasic  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
from pyasic.miners.backends.btminer import BTMinerV3  # type: ignore[import-untyped]
from pyasic.rpc.btminer import BTMinerRPCAPI  # type: ignore[import-untyped]
from sim_truth import rig_truth, until_truth

from minerd.model import RigProtocol
from minerd.profiles import load_rig_model
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

MODEL = "microbt-m50s"
RIG = "c001-r001"


@pytest_asyncio.fixture
async def site() -> AsyncIterator[SimSite]:
    spec = SiteSpec(
        groups=(RigGroupSpec(MODEL, 1, RigProtocol.WHATSMINER),),
        rig_port=4028,
        whatsminer_api_port=4433,
        base_octet=181,
        speed=10.0,
        workers=1,
    )
    async with SimSite(spec) as s:
        yield s


async def whatsminer(site: SimSite) -> Any:
    host, port = site.rig_endpoint(RIG)
    assert port == 4028
    miner = await pyasic.get_miner(host)
    assert isinstance(miner, BTMinerV3), type(miner)
    return miner


@pytest.mark.asyncio
async def test_get_miner_finds_the_whatsminer_class_and_model(site: SimSite) -> None:
    miner = await whatsminer(site)
    assert type(miner).__name__ == "BTMinerM50SVH30"
    assert "M50S" in str(miner.raw_model)


@pytest.mark.asyncio
async def test_get_data_matches_truth(site: SimSite) -> None:
    model = load_rig_model(MODEL)
    await until_truth(site, RIG, lambda t: t["power_w"] >= model.nominal_power_w * 0.97)
    miner = await whatsminer(site)
    data = await miner.get_data()
    t = await rig_truth(site, RIG)
    assert data.hashrate is not None
    assert float(data.hashrate.into(data.hashrate.unit.TH)) == pytest.approx(
        t["hashrate_ths"], rel=0.01
    )
    assert data.wattage == pytest.approx(t["power_w"], rel=0.02)


@pytest.mark.asyncio
async def test_stop_and_resume_mining_move_the_rig(site: SimSite) -> None:
    model = load_rig_model(MODEL)
    miner = await whatsminer(site)
    assert await miner.stop_mining()
    t = await until_truth(site, RIG, lambda t: t["power_w"] <= model.sleep_power_w * 1.5)
    assert t["awake"] is False and t["hashrate_ths"] == 0
    assert await miner.resume_mining()
    t = await until_truth(site, RIG, lambda t: t["power_w"] >= model.nominal_power_w * 0.97)
    assert t["awake"] is True and t["hashrate_ths"] > 0


@pytest.mark.asyncio
async def test_pyasic_v2_privileged_client_powers_the_rig_off_and_on(site: SimSite) -> None:
    host, _ = site.rig_endpoint(RIG)
    rpc = BTMinerRPCAPI(host)
    rpc.pwd = "super"
    off = await rpc.power_off(respbefore=True)
    assert off["Code"] == 131 and off["Msg"] == "API command OK"
    t = await until_truth(site, RIG, lambda t: t["awake"] is False)
    assert t["awake"] is False
    status = await rpc.status()
    assert status["Msg"]["mineroff"] == "true"
    on = await rpc.power_on()
    assert on["Code"] == 131
    t = await until_truth(site, RIG, lambda t: t["awake"] is True)
    assert t["awake"] is True
