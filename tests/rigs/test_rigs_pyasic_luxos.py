"""pyasic, an independent client, against a simulated LuxOS rig: it must find the LuxOS class
and the model, read hashrate and power that match GET /truth, and curtail the rig.

pyasic's factory always dials port 4028 (`_socket_ping`, `send_api_command` hard-code it), so
the simulated rig listens on 4028 of its own loopback address. Its web probe (port 80) is
refused at once, which is what a rig with its web UI off looks like.

Where pyasic and the reference (firmware-apis.md) disagree, the reference wins:
- pyasic's LuxOS RPC client takes a session once (`session`, else `logon`) and never takes a
  new one, so after 60 s of its own idleness every privileged call fails. The rig is right
  to end the session (reference 2.3); the test commands within the minute.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pyasic  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
from pyasic.miners.backends.luxminer import LUXMiner  # type: ignore[import-untyped]
from sim_truth import rig_truth, until_truth

from minerd.devices.rig_luxos import LuxosRig
from minerd.model import RigAction, RigCommand, RigProtocol
from minerd.profiles import load_rig_model
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

MODEL = "bitmain-s19jpro"
RIG = "c001-r001"
SPEED = 5.0  # sim seconds per wall second: a LuxOS session lives 12 s of wall time


@pytest_asyncio.fixture
async def site() -> AsyncIterator[SimSite]:
    spec = SiteSpec(
        groups=(RigGroupSpec(MODEL, 1, RigProtocol.LUXOS),),
        rig_port=4028,
        base_octet=99,
        speed=SPEED,
        workers=1,
    )
    async with SimSite(spec) as s:
        yield s


async def luxos_miner(site: SimSite) -> LUXMiner:
    host, port = site.rig_endpoint(RIG)
    assert port == 4028
    miner = await pyasic.get_miner(host)
    assert isinstance(miner, LUXMiner), type(miner)
    return miner


@pytest.mark.asyncio
async def test_get_miner_finds_the_luxos_class_and_model(site: SimSite) -> None:
    miner = await luxos_miner(site)
    assert type(miner).__name__ == "LUXMinerS19jPro"
    assert miner.raw_model == "S19j Pro"  # "S19j Pro (LuxOS)" as pyasic names it
    assert miner.firmware == "LuxOS"


@pytest.mark.asyncio
async def test_get_data_matches_truth(site: SimSite) -> None:
    miner = await luxos_miner(site)
    data = await miner.get_data()
    t = await rig_truth(site, RIG)
    # pyasic sums the boards of STATS[1] (chain_rateN, temp_chipN/temp_pcbN strings)
    assert data.hashrate is not None
    assert float(data.hashrate.into(data.hashrate.unit.TH)) == pytest.approx(
        t["hashrate_ths"], rel=0.01
    )
    assert data.wattage == pytest.approx(t["power_w"], rel=0.02)
    assert data.wattage_limit == 3068  # the active profile's watts, from config + profiles
    assert len(data.fans) == 4 and all(f.speed for f in data.fans)


@pytest.mark.asyncio
async def test_stop_and_resume_mining_move_the_rig_alongside_minerd(site: SimSite) -> None:
    model = load_rig_model(MODEL)
    miner = await luxos_miner(site)
    assert await miner.stop_mining()
    t = await until_truth(site, RIG, lambda t: t["power_w"] <= model.sleep_power_w * 1.5)
    assert t["awake"] is False and t["hashrate_ths"] == 0
    # minerd on the same rig takes the session pyasic holds instead of failing on 402.
    host, port = site.rig_endpoint(RIG)
    driver = LuxosRig(RIG, host, model, port, clock=site.clock)
    await driver.apply(RigCommand(RIG, RigAction.SLEEP))
    assert driver.logons == 0 and driver.session_recoveries["adopted"] == 1
    # ...and pyasic's session still works: it was shared, not stolen.
    assert await miner.resume_mining()
    t = await until_truth(site, RIG, lambda t: t["power_w"] >= model.nominal_power_w * 0.97)
    assert t["awake"] is True and t["hashrate_ths"] > 0
