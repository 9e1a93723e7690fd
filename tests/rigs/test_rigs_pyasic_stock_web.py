"""pyasic, an independent client, drives simulated stock Antminers through their web CGI.

Each rig listens on its own loopback address on the ports pyasic probes: 4028 (cgminer API)
and 80 (web; the 401 with `realm="antMiner Configuration"` is how pyasic tells stock
firmware). pyasic's stop_mining/resume_mining rebuild the config from get_miner_conf and
POST set_miner_conf with Digest auth (root/root), as minerd does. The site runs 20x faster
than the wall so the CGI's ~21 s reply comes within pyasic's own 3 s POST timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pyasic  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
from sim_truth import rig_truth, until_truth

from minerd.model import RigProtocol
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

SPEED = 20.0
# rig id -> (pyasic class, pyasic model)
RIGS = {
    "c001-r001": ("BMMinerS19jPro", "S19j Pro"),
    "c001-r002": ("BMMinerS21", "S21"),
}


@pytest_asyncio.fixture
async def site() -> AsyncIterator[SimSite]:
    spec = SiteSpec(
        groups=(
            RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.STOCK),
            RigGroupSpec("bitmain-s21", 1, RigProtocol.STOCK),
        ),
        rig_port=4028,
        web_port=80,  # pyasic's web client has no port setting (root binds 80)
        base_octet=139,
        workers=1,
        speed=SPEED,
    )
    async with SimSite(spec) as s:
        yield s


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@pytest.mark.parametrize("rig_id", sorted(RIGS))
async def test_pyasic_detects_reads_stops_and_resumes(site: SimSite, rig_id: str) -> None:
    host, _ = site.rig_endpoint(rig_id)
    miner = await pyasic.get_miner(host)
    assert miner is not None, "pyasic did not recognise the simulated rig"
    cls, model = RIGS[rig_id]
    assert type(miner).__name__ == cls
    assert miner.model == f"{model} (Stock)"

    data = await miner.get_data()
    truth = await rig_truth(site, rig_id)
    assert data.hashrate is not None
    assert float(data.hashrate) == pytest.approx(float(str(truth["hashrate_ths"])), rel=0.01)
    assert data.is_mining is True  # from get_miner_conf bitmain-work-mode "0"
    assert await miner.stop_mining()
    # pyasic reads no power from stock firmware (firmware-apis.md 1.6: none over 4028 on
    # S19; the S21's chain_power it does not read), so there is no wattage to compare.

    asleep = await until_truth(
        site, rig_id, lambda r: r["awake"] is False and _f(r["power_w"]) < 100.0, "asleep", 60.0
    )
    assert asleep["target_w"] == pytest.approx(25.0)  # sleep power, from the profile
    assert await miner.is_mining() is False  # get_miner_conf says "1"

    assert await miner.resume_mining()
    await until_truth(site, rig_id, lambda r: _f(r["hashrate_ths"]) > 50.0, "hashing again", 60.0)
    assert await miner.is_mining() is True


def _f(value: object) -> float:
    return float(str(value))
