"""The real daemon, started twice on one simulated site, writes into a real influxd 1.x
and serves /metrics: neither ever holds a 0 for the grid import or a rig's power and
hashrate that were simply not read yet (the first snapshots of each start)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess, free_port, influx_create_database, influx_query

from minerd.daemon.app import Daemon
from minerd.settings import load_settings
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

DB = "restart"
WATCHED = (
    "minerd_site_grid_power_watts",
    "minerd_site_rig_power_watts",
    "minerd_site_hashrate_terahashes_per_second",
    "minerd_rig_power_watts",
    "minerd_rig_hashrate_terahashes_per_second",
)


def zero_samples(text: str) -> list[str]:
    """Watched /metrics samples whose value is 0 (all rigs hash: none should be)."""
    out = []
    for line in text.splitlines():
        if line.startswith(WATCHED) and float(line.rsplit(" ", 1)[1]) == 0.0:
            out.append(line)
    return out


async def run_once(config: Path, sim: SimSite, api: str, scrapes: list[str]) -> None:
    """Start the daemon, scrape /metrics from its first moment until it is ready and a few
    cycles on (counted, not timed: a loaded machine runs fewer cycles per scrape), then stop
    it."""
    daemon = Daemon(load_settings(config), clock=sim.clock)
    site = daemon.build()
    cycles_when_ready: list[bool] = []
    site.cycle.listeners.append(lambda _: cycles_when_ready.append(daemon.ready.is_set()))
    task = asyncio.create_task(daemon.run(), name="daemon")
    try:
        async with httpx.AsyncClient(base_url=api, timeout=2.0) as http:
            ready_scrapes = 0
            async with asyncio.timeout(60):
                # About 2 s of scrapes, and at least 4 cycles (site points) once ready.
                while ready_scrapes < 40 or sum(cycles_when_ready) < 4:
                    assert not task.done(), "the daemon stopped"
                    with contextlib.suppress(httpx.HTTPError):
                        r = await http.get("/metrics")
                        if r.status_code == 200:
                            scrapes.append(r.text)
                            ready_scrapes += daemon.ready.is_set()
                    await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.asyncio
async def test_a_restarted_daemon_writes_no_zero_for_unread_values(
    influxd: ServerProcess, tmp_path: Path
) -> None:
    await asyncio.to_thread(influx_create_database, influxd, DB)
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", 4),),
        rigs_per_container=4,
        rig_port=0,
        base_octet=57,
        speed=1.0,
        workers=1,
        feeder_meters=False,
    )
    async with SimSite(spec) as sim:
        config = tmp_path / "site.toml"
        port = free_port()
        sim.write_config(config, api_listen=f"127.0.0.1:{port}")
        with config.open("a", encoding="utf-8") as f:
            f.write(
                f'\n[influx]\nenabled = true\napi = "v1"\nurl = "{influxd.url}"\n'
                f'database = "{DB}"\nflush_interval_s = 0.2\n'
                '\n[prometheus]\nper_rig_series = "on"\n'
            )
        scrapes: list[str] = []
        for _ in range(2):  # a start, then a restart on the same database
            await run_once(config, sim, f"http://127.0.0.1:{port}", scrapes)

    def q(text: str) -> list[list[object]]:
        data = influx_query(influxd, DB, text)
        series = data["results"][0].get("series", [])  # type: ignore[index]
        return series[0]["values"] if series else []

    site_rows = await asyncio.to_thread(q, "SELECT power_w, rig_power_w, hashrate_ths FROM site")
    assert len(site_rows) >= 4, "both runs wrote site points"
    for row in site_rows:
        assert all(v is None or (isinstance(v, float | int) and v > 0) for v in row[1:]), row
    zero_rigs = await asyncio.to_thread(
        q, "SELECT power_w, hashrate_ths FROM rig WHERE power_w = 0 OR hashrate_ths = 0"
    )
    assert zero_rigs == []
    assert len(scrapes) >= 10
    assert [z for s in scrapes for z in zero_samples(s)] == []
    # The daemon's own timing counters are served from its first scrape.
    assert all("minerd_control_cycles_skipped_total" in s for s in scrapes)
    assert all("minerd_control_wakes_coalesced_total" in s for s in scrapes)
