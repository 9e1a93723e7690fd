"""pyasic, an independent client, against a simulated Vnish rig: it finds the VNish class and
the model (4028 `version` says "vnish", the web page "AnthillOS"), reads hashrate within 1 %
of GET /truth, and its stop_mining/resume_mining move the rig.

pyasic's factory dials fixed ports (4028, 80), so the rig listens on both on its own
loopback address. Where pyasic and the reference (firmware-apis.md section 4) disagree, the
reference wins and the simulator follows it:
- power: pyasic reads `summary.miner.power_usage` as watts; the API spec calls that field a
  deprecated efficiency figure and `power_consumption` the watts (gotcha 8.9). pyasic's
  `wattage` is therefore the efficiency figure, not the rig's power: asserted as such.
- mining actions answer 200 with an empty body (reference: "200 no body"); pyasic 0.79 calls
  `response.json()` on it and raises APIError although the rig obeyed. The test asserts the
  error and that /truth moved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pyasic
import pytest
import pytest_asyncio
from pyasic.errors import APIError
from sim_truth import rig_truth, until_truth

from minerd.model import RigProtocol
from minerd.profiles import load_rig_model
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

MODEL = "bitmain-s19jpro"
RIG = "c001-r001"


@pytest_asyncio.fixture
async def site() -> AsyncIterator[SimSite]:
    spec = SiteSpec(
        groups=(RigGroupSpec(MODEL, 1, RigProtocol.VNISH),),
        rig_port=4028,  # pyasic's factory probes 4028 ...
        web_port=80,  # ... and the web page on 80 (the tests run as root)
        base_octet=173,
        speed=5.0,
        workers=1,
    )
    async with SimSite(spec) as s:
        yield s


async def vnish_miner(site: SimSite) -> Any:
    host, port = site.rig_endpoint(RIG)
    assert port == 4028
    miner = await pyasic.get_miner(host)
    assert miner is not None, "pyasic did not recognise the simulated rig"
    return miner


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_pyasic_finds_the_vnish_class_and_reads_hashrate(site: SimSite) -> None:
    miner = await vnish_miner(site)
    assert type(miner).__name__ == "VNishS19jPro"
    assert miner.model == "S19j Pro (VNish)"
    data = await miner.get_data()
    t = await rig_truth(site, RIG)
    assert data.hashrate is not None
    assert float(data.hashrate) == pytest.approx(t["hashrate_ths"], rel=0.01)
    assert data.fw_ver == "1.2.6"  # from summary.miner.miner_type "(Vnish 1.2.6)"
    assert data.wattage_limit == 3068  # settings.miner.overclock.preset
    assert data.is_mining is True
    # pyasic's wattage is power_usage: the efficiency figure (J/TH), not the 3068 W drawn.
    assert data.wattage == round(t["power_w"] / t["hashrate_ths"])
    assert data.wattage < t["power_w"] / 10


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_stop_and_resume_move_the_rig(site: SimSite) -> None:
    model = load_rig_model(MODEL)
    miner = await vnish_miner(site)
    with pytest.raises(APIError, match="empty response"):  # the rig's empty 200 (see above)
        await miner.stop_mining()
    t = await until_truth(site, RIG, lambda t: t["power_w"] <= model.sleep_power_w * 1.5)
    assert t["awake"] is False and t["hashrate_ths"] == 0
    with pytest.raises(APIError, match="empty response"):
        await miner.resume_mining()
    t = await until_truth(site, RIG, lambda t: t["power_w"] >= model.nominal_power_w * 0.97)
    assert t["awake"] is True and t["hashrate_ths"] > 0
