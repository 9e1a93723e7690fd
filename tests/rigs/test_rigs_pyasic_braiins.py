"""pyasic, an independent client, detects, reads, pauses and resumes a simulated Braiins OS+
rig as it does a real one (firmware-apis.md 6.1).

pyasic finds the rig on TCP 4028 (`version` with "BOSminer", `devdetails` Model "Bitmain
Antminer S19j Pro" -> the BOSer class), reads hashrate from the 4028 `summary` and power from
gRPC MinerService/GetMinerStats on 50051, logs in with root/root taking the token from the
`authorization` response header, and stops/resumes with ActionsService/PauseMining and
ResumeMining. Both ports are fixed in pyasic, so the rig has its own loopback address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pyasic
import pytest
import pytest_asyncio
from sim_truth import rig_truth

from minerd.model import RigProtocol
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

RIG = "c001-r001"


@pytest_asyncio.fixture
async def site() -> AsyncIterator[SimSite]:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.BRAIINS),),
        rig_port=4028,  # pyasic's factory probes 4028 only
        grpc_port=50051,  # and its gRPC client dials 50051 only
        base_octet=115,
        workers=1,
    )
    async with SimSite(spec) as s:
        yield s


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_pyasic_detects_reads_pauses_and_resumes(site: SimSite) -> None:
    host, port = site.rig_endpoint(RIG)
    assert port == 4028
    miner = await pyasic.get_miner(host)
    assert miner is not None, "pyasic did not recognise the simulated rig"
    assert type(miner).__name__ == "BOSMinerS19jPro"
    assert "S19j Pro" in str(miner.model)

    data = await miner.get_data()
    truth = await rig_truth(site, RIG)
    assert data.hashrate is not None
    assert float(data.hashrate) == pytest.approx(float(str(truth["hashrate_ths"])), rel=0.01)
    assert data.wattage is not None  # from gRPC GetMinerStats (uint64 W)
    assert data.wattage == pytest.approx(float(str(truth["power_w"])), rel=0.01)

    assert await miner.stop_mining() is True
    assert (await rig_truth(site, RIG))["awake"] is False
    assert await miner.resume_mining() is True
    assert (await rig_truth(site, RIG))["awake"] is True

    # set_power_limit: SetPowerTarget (pyasic sends SAVE_AND_FORCE_APPLY and wants the echo)
    assert await miner.set_power_limit(2800) is True
    assert (await rig_truth(site, RIG))["power_limit_w"] == 2800
