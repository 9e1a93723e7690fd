"""The simulated stock Antminer web CGI against the stock-cgi fixtures (firmware-apis.md 3).

httpx's own DigestAuth is the client here (independent of minerd's transport).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from firmware_fixtures import FIRMWARE_DIR
from sim_fleet import manual_clock, manual_fleet, stock_pair
from simtest_helpers import cgminer_raw

from minerd.clock import ManualClock
from minerd.model import RigProtocol
from minerd.sim.family_base import FamilyListeners
from minerd.sim.fleet import RigFleet
from minerd.sim.stock_web import REALM, StockWebListeners

FIX = FIRMWARE_DIR / "stock-cgi"
AUTH = httpx.DigestAuth("root", "root")
RIG = "c001-r001"


def _fixture(name: str) -> Any:
    return json.loads((FIX / name).read_text())


def _layout(value: object) -> object:
    """Keys and JSON types, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: _layout(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_layout(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


class Site:
    def __init__(self, fleet: RigFleet, web: StockWebListeners, clock: ManualClock) -> None:
        self.fleet, self.web, self.clock = fleet, web, clock

    def url(self, rig_id: str, path: str) -> str:
        rig = self.fleet.rig(rig_id)
        return f"http://{rig.plan.host}:{self.web.port_of(rig_id)}{path}"


@pytest_asyncio.fixture
async def site() -> AsyncIterator[Site]:
    def servers(clock: ManualClock) -> dict[RigProtocol, FamilyListeners]:
        return {RigProtocol.STOCK: StockWebListeners(clock, reply_delay_s=0.05)}

    async with manual_fleet(stock_pair(137), family=servers) as fleet:
        web = fleet.family_listeners[RigProtocol.STOCK]
        assert isinstance(web, StockWebListeners)
        yield Site(fleet, web, manual_clock(fleet))


async def _get(site: Site, path: str, rig_id: str = RIG, auth: Any = AUTH) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as http:
        return await http.get(site.url(rig_id, path), auth=auth)


async def _post(site: Site, body: object, rig_id: str = RIG) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as http:
        return await http.post(
            site.url(rig_id, "/cgi-bin/set_miner_conf.cgi"), json=body, auth=AUTH
        )


async def _no_reply(host: str, port: int) -> bool:
    """True when the 4028 API resets the connection or closes it without a byte."""
    try:
        return await cgminer_raw(host, port, "summary") == b""
    except ConnectionError:
        return True


@pytest.mark.asyncio
async def test_without_login_the_challenge_names_the_realm(site: Site) -> None:
    resp = await _get(site, "/", auth=None)
    fixture = (FIX / "unauthorized.http").read_text()
    assert resp.status_code == 401
    header = resp.headers["www-authenticate"]
    assert header.startswith('Digest realm="antMiner Configuration"') and 'qop="auth"' in header
    assert f'realm="{REALM}"' in fixture and "nonce=" in header
    bad = await _get(site, "/cgi-bin/get_miner_conf.cgi", auth=httpx.DigestAuth("root", "nope"))
    assert bad.status_code == 401


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "fixture"),
    [
        ("/cgi-bin/get_miner_conf.cgi", "get_miner_conf.json"),
        ("/cgi-bin/get_system_info.cgi", "get_system_info.json"),
        ("/cgi-bin/stats.cgi", "stats.cgi.json"),
        ("/cgi-bin/summary.cgi", "summary.cgi.json"),
    ],
)
async def test_replies_have_the_fixture_layout(site: Site, path: str, fixture: str) -> None:
    resp = await _get(site, path)
    assert resp.status_code == 200
    assert _layout(resp.json()) == _layout(_fixture(fixture))
    if fixture == "get_miner_conf.json":
        # the CGI's pretty print: `"key" : value`, the work mode a string
        assert '"bitmain-work-mode" : "0"' in resp.text


@pytest.mark.asyncio
async def test_web_units_and_model(site: Site) -> None:
    info = (await _get(site, "/cgi-bin/get_system_info.cgi", "c001-r002")).json()
    assert info["minertype"] == "Antminer S21"
    stats = (await _get(site, "/cgi-bin/stats.cgi")).json()["STATS"][0]
    truth = site.fleet.rig(RIG).truth(site.clock.now_s())
    assert stats["rate_unit"] == "GH/s"
    assert stats["rate_5s"] / 1000.0 == pytest.approx(truth["hashrate_ths"], rel=1e-3)
    assert sum(c["rate_real"] for c in stats["chain"]) == pytest.approx(stats["rate_5s"], rel=1e-3)


@pytest.mark.asyncio
async def test_sleep_write_answers_m000_then_the_miner_restarts(site: Site) -> None:
    rig = site.fleet.rig(RIG)
    resp = await _post(site, _fixture("set_miner_conf.request.json"))
    assert resp.json() == _fixture("set_miner_conf.json")
    assert not rig.awake
    conf = (await _get(site, "/cgi-bin/get_miner_conf.cgi")).json()
    assert conf["bitmain-work-mode"] == "1"  # read back as a string
    assert conf["pools"] == _fixture("set_miner_conf.request.json")["pools"]
    # the sim clock has not moved past the reply: 4028 is down (miner process restarting)
    host, port = rig.plan.host, site.fleet.port_of(rig)
    site.clock.advance(0.05)
    assert await _no_reply(host, port)
    site.clock.advance(10.0)
    assert (await cgminer_raw(host, port, "summary")).endswith(b"\x00")
    # wake: normal mode, as an int or (some firmware) a numeric string
    body = {**_fixture("set_miner_conf.request.json"), "miner-mode": "0", "bitmain-work-mode": 0}
    await _post(site, body)
    assert rig.awake and site.web.work_mode(RIG) == "0"


@pytest.mark.asyncio
async def test_bitmain_work_mode_alone_is_ignored(site: Site) -> None:
    body = {k: v for k, v in _fixture("set_miner_conf.request.json").items() if k != "miner-mode"}
    resp = await _post(site, body)
    assert resp.json()["code"] == "M000"  # S19j Pro Dec 2022: OK and nothing happens
    assert site.fleet.rig(RIG).awake and site.web.work_mode(RIG) == "0"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fault", "conf_mode"), [("ignores_sleep", "1"), ("ignores_commands", "0")]
)
async def test_rigs_that_answer_ok_and_keep_hashing(site: Site, fault: str, conf_mode: str) -> None:
    await site.fleet.inject(RIG, fault)
    resp = await _post(site, _fixture("set_miner_conf.request.json"))
    assert resp.json()["code"] == "M000"
    rig = site.fleet.rig(RIG)
    site.clock.advance(0.05)  # at the reply: nothing changed, so the miner did not restart
    raw = await cgminer_raw(rig.plan.host, site.fleet.port_of(rig), "summary")
    assert raw.endswith(b"\x00")
    site.clock.advance(120.0)
    assert rig.awake and rig.view(site.clock.now_s()).hashrate_ths > 50
    assert site.web.work_mode(RIG) == conf_mode


@pytest.mark.asyncio
async def test_low_power_mode_lowers_the_draw(site: Site) -> None:
    body = {**_fixture("set_miner_conf.request.json"), "miner-mode": 3, "bitmain-work-mode": 3}
    await _post(site, body)
    rig = site.fleet.rig(RIG)
    assert rig.power_limit_w is not None and rig.power_limit_w < rig.model.nominal_power_w
    await _post(site, {**body, "miner-mode": 0, "bitmain-work-mode": 0})
    assert rig.power_limit_w is None


@pytest.mark.asyncio
async def test_hung_rig_accepts_and_never_answers(site: Site) -> None:
    await site.fleet.inject(RIG, "hung")
    with pytest.raises(httpx.ReadTimeout):
        async with httpx.AsyncClient(timeout=0.5) as http:
            await http.get(site.url(RIG, "/"))
