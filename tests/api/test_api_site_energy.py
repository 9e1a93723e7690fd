"""GET /api/v1/site's `energy` object through a real uvicorn server: the award in force as
the control cycle's EnergyTracker paces it (award, energy so far, pace target, whether the
meter's register is believed, the faults judged so far); null while no award is in force."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from api_site import START_S, SiteUnderTest, api_settings, bearer
from servers import free_port

from minerd.api import create_app, serve
from minerd.api.times import iso
from minerd.control.energy_pace import FAULT_BACKWARDS, PaceConfig
from minerd.model import (
    EffectiveLimit,
    EnergyAward,
    FleetSnapshot,
    MeterReading,
    MeterRole,
    MeterStatus,
    QuotaSource,
)
from minerd.runtime.energy_board import EnergyBoard
from minerd.runtime.energy_tracker import EnergyTracker, ListAwards

AWARD_S = (START_S + 600.0, START_S + 1200.0)  # a 10-minute interval
AWARD_KWH = 50.0  # 300 kW on average
POWER_LIMIT = EffectiveLimit(450.0, "contracted")
CFG = PaceConfig(max_kw=500.0, margin_kw=0.0)


def _snap(t_s: float, power_kw: float, register_kwh: float) -> FleetSnapshot:
    reading = MeterReading("grid-main", t_s, power_kw * 1000.0, energy_import_kwh=register_kwh)
    meter = MeterStatus("grid-main", MeterRole.GRID, "", reading, True, 0.0)
    return FleetSnapshot(t_s, (), (meter,))


class Plant:
    """Control cycles of a site drawing what the tracker's limit says, its meter counting."""

    def __init__(self, tracker: EnergyTracker) -> None:
        self.tracker = tracker
        self.register_kwh = 7000.0
        self.power_kw = 200.0

    def run(self, from_s: float, to_s: float) -> None:
        t = from_s
        while t < to_s:
            lim = self.tracker.cap(POWER_LIMIT, _snap(t, self.power_kw, self.register_kwh), t)
            self.power_kw = lim.limit_kw
            self.register_kwh += self.power_kw / 3600.0
            t += 1.0


@asynccontextmanager
async def served(site: SiteUnderTest, board: EnergyBoard) -> AsyncIterator[str]:
    settings = api_settings(listen=f"127.0.0.1:{free_port()}")
    app = create_app(site, settings, None, None, timezone="Asia/Almaty", energy=board)
    started = asyncio.Event()
    task = asyncio.create_task(serve(app, settings, started))
    try:
        async with asyncio.timeout(30):
            await started.wait()
        yield f"http://{settings.listen}"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _energy(url: str) -> object:
    async with httpx.AsyncClient() as c:
        r = await c.get(url + "/api/v1/site", headers=bearer("viewer"), timeout=10.0)
    assert r.status_code == 200, r.text
    return r.json()["energy"]


@pytest.mark.asyncio
async def test_site_energy_follows_the_tracker(tmp_path: Path) -> None:
    site = SiteUnderTest(tmp_path / "e.sqlite")
    award = EnergyAward("korem-7", *AWARD_S, AWARD_KWH, QuotaSource.API, 0.0, "grid")
    tracker = EnergyTracker(ListAwards([award]), CFG)
    plant = Plant(tracker)
    try:
        async with served(site, EnergyBoard(lambda: tracker)) as url:
            plant.run(START_S, AWARD_S[0] - 1.0)
            assert await _energy(url) is None  # no award in force yet

            plant.run(AWARD_S[0] - 1.0, AWARD_S[0] + 300.0)  # half the interval
            status = tracker.status()
            assert status is not None
            e = await _energy(url)
            assert isinstance(e, dict)
            assert e["award_id"] == "korem-7"
            assert (e["interval_start"], e["interval_end"]) == (iso(AWARD_S[0]), iso(AWARD_S[1]))
            assert e["award_kwh"] == AWARD_KWH
            assert e["energy_kwh"] == pytest.approx(status.energy_kwh, abs=1e-3)
            assert e["energy_kwh"] == pytest.approx(AWARD_KWH / 2, rel=0.03)  # on pace
            assert e["remaining_kwh"] == pytest.approx(AWARD_KWH - e["energy_kwh"], abs=2e-3)
            assert e["pace_target_kw"] == pytest.approx(status.pace.limit_kw, abs=1e-3)
            assert 250.0 < e["pace_target_kw"] < 350.0  # about 300 kW ends it on its award
            assert (e["energy_source"], e["register_fault"], e["register_faults"]) == (
                "register",
                "",
                0,
            )

            plant.register_kwh -= 3.0  # the register goes backwards: a fault, not believed
            plant.run(AWARD_S[0] + 300.0, AWARD_S[0] + 320.0)
            e = await _energy(url)
            assert isinstance(e, dict)
            assert e["energy_source"] == "integrated"
            assert e["register_fault"] == FAULT_BACKWARDS
            assert e["register_faults"] == 1

            plant.run(AWARD_S[0] + 320.0, AWARD_S[1] + 2.0)  # the interval is over
            assert await _energy(url) is None
            assert tracker.register_faults == 1
    finally:
        site.close()
