"""pyasic, an independent client, reads simulated stock Antminers as it reads real ones.

pyasic (0.79) finds a rig by probing TCP 4028 with `version`/`devdetails` (the port is fixed
in its factory, `MinerFactory._socket_ping`), so each simulated rig listens on its own
loopback address at port 4028, as a real rig does. Its web probes (HTTP 80/443, the
stock CGI API) are refused: pyasic then works from the cgminer API alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pyasic
import pytest
import pytest_asyncio
from sim_truth import rig_truth

from minerd.model import RigProtocol
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

# rig id -> (pyasic class, pyasic model) of a stock S19j Pro and a stock S21
RIGS = {
    "c001-r001": ("BMMinerS19jPro", "S19j Pro"),
    "c001-r002": ("BMMinerS21", "S21"),
}


@pytest_asyncio.fixture
async def site() -> AsyncIterator[SimSite]:
    spec = SiteSpec(
        groups=(
            RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.CGMINER),
            RigGroupSpec("bitmain-s21", 1, RigProtocol.CGMINER),
        ),
        rig_port=4028,  # pyasic's factory probes 4028 only
        base_octet=227,
        workers=1,
    )
    async with SimSite(spec) as s:
        yield s


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("rig_id", sorted(RIGS))
async def test_pyasic_finds_the_model_and_reads_hashrate(site: SimSite, rig_id: str) -> None:
    host, port = site.rig_endpoint(rig_id)
    assert port == 4028
    miner = await pyasic.get_miner(host)
    assert miner is not None, "pyasic did not recognise the simulated rig"
    cls, model = RIGS[rig_id]
    assert type(miner).__name__ == cls
    assert miner.model == f"{model} (Stock)"  # pyasic names the firmware it detected

    data = await miner.get_data()
    truth = await rig_truth(site, rig_id)
    assert data.hashrate is not None
    assert float(data.hashrate) == pytest.approx(float(str(truth["hashrate_ths"])), rel=0.01)
    assert len(data.fans) == 4 and all(f.speed and f.speed > 1000 for f in data.fans)
    # Power: stock firmware sends none over 4028 (firmware-apis.md 1.6: no power key in
    # `stats` on stock S19; 1.8: the 4028 API offers only stats/pools/devs/summary/version).
    # pyasic reads none either, so there is nothing to compare with truth's power_w; an
    # invented figure would be the simulator disagreeing with the reference.
    assert data.wattage is None

    # A dead hashboard: pyasic's hashrate follows the rig, still within 1 % of truth.
    await site.inject(rig_id, "dead_board")
    data = await miner.get_data()
    truth = await rig_truth(site, rig_id)
    assert truth["boards_ok"] == 2
    assert float(data.hashrate) == pytest.approx(float(str(truth["hashrate_ths"])), rel=0.01)
