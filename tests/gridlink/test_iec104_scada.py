"""Acceptance of the IEC 60870-5-104 outstation: a c104 client plays the dispatcher's SCADA
against the real daemon on a simulated site (12 LuxOS S19j Pro, sleep 5 s) at 5x speed.

Judged by the simulator's truth (site import) and by what the SCADA receives; times are
simulated seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import statistics
from pathlib import Path

import c104
import httpx
import pytest
from scada import MONITORING, Scada
from scenario_kit import Running, running_site, site_spec
from servers import free_port

from minerd.gridlink.iec104_server import Iec104Outstation
from minerd.model import QuotaSource
from minerd.profiles import load_rig_model
from minerd.settings.models import Iec104Settings

SPEED = 5.0
RIGS = 12
CYCLE_S = 1.0
PERIOD_S = 2.0
SLEEP_S = load_rig_model("bitmain-s19jpro").sleep_time_s


def iec104_toml(port: int, allowed: str = "127.0.0.1") -> str:
    return (
        "[iec104]\nenabled = true\n"
        f'listen = "127.0.0.1:{port}"\n'
        f'allowed_clients = ["{allowed}"]\n'
        f"period_s = {PERIOD_S}\n"
    )


def tokens(run: Running) -> dict[str, str]:
    text = Path(str(run.config) + ".tokens").read_text()
    pairs = (line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    return {k.strip(): v.strip().strip('"') for k, v in pairs}


async def site_json(run: Running) -> dict[str, object]:
    listen = run.daemon.settings.api.listen
    viewer = tokens(run)["viewer"]
    async with httpx.AsyncClient(base_url=f"http://{listen}", timeout=5.0) as http:
        r = await http.get("/api/v1/site", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, dict)
    return body


def fresh_import(scada: Scada) -> bool:
    latest = scada.latest(1001)
    return latest is not None and latest.valid


def running(station: Iec104Outstation) -> bool:
    return station.server is not None and station.server.is_running


def outstation(run: Running) -> Iec104Outstation:
    parts = run.daemon.components
    assert parts is not None and parts.grid_links.iec104 is not None
    return parts.grid_links.iec104


@pytest.mark.asyncio
async def test_scada_reads_points_dispatches_withdraws_and_is_refused_out_of_range(
    tmp_path: Path,
) -> None:
    port = free_port()
    spec = site_spec(RIGS, base_octet=121, speed=SPEED)
    async with running_site(spec, tmp_path, extra_toml=iec104_toml(port)) as run:
        scada = Scada("127.0.0.1", port, run.sim.clock)
        scada.start()
        try:
            await run.wait_for("SCADA connected", scada.active, 20.0)
            await run.sleep_sim(5.0)
            full_kw = await run.truth_kw()
            assert full_kw > 0.9 * RIGS * 3.068, "the site is not at full load"

            # Cyclic transmission at the configured period, values as /api/v1/site says.
            t0 = run.now_s()
            await run.sleep_sim(6 * PERIOD_S)
            periodic = [r for r in scada.messages(c104.Cot.PERIODIC, since_s=t0) if r.ioa == 1001]
            gaps = [b.at_s - a.at_s for a, b in itertools.pairwise(periodic)]
            assert len(gaps) >= 3, periodic
            assert 0.75 * PERIOD_S <= statistics.median(gaps) <= 1.25 * PERIOD_S, gaps
            # Compare when the grid meter is fresh (a loaded machine may miss a meter read).
            await run.wait_for("grid meter fresh", lambda: fresh_import(scada), 20.0)
            site = await site_json(run)
            import_pt, limit_pt = scada.latest(1001), scada.latest(1002)
            assert import_pt is not None and limit_pt is not None
            limit = site["limit"]
            assert isinstance(limit, dict)
            assert limit_pt.value == pytest.approx(limit["limit_kw"])
            assert import_pt.valid
            assert import_pt.value == pytest.approx(site["grid_import_kw"], rel=0.1, abs=1.0)
            hashrate_pt, fresh_pt = scada.latest(1005), scada.latest(1102)
            assert hashrate_pt is not None and fresh_pt is not None
            assert hashrate_pt.value == pytest.approx(site["hashrate_ths"], rel=0.1)
            assert fresh_pt.value is True

            # General interrogation returns every monitoring point.
            t_gi = run.now_s()
            assert await asyncio.to_thread(scada.interrogate)
            await run.sleep_sim(2.0)
            answered = {
                r.ioa for r in scada.messages(c104.Cot.INTERROGATED_BY_STATION, since_s=t_gi)
            }
            assert answered == set(MONITORING)

            # An out-of-range setpoint: negative confirmation, nothing changes.
            contracted_kw = run.daemon.settings.grid.contracted_limit_kw
            quotas_before = run.site.stores.quotas.all()
            assert not await asyncio.to_thread(scada.send_setpoint, contracted_kw + 100.0)
            assert not await asyncio.to_thread(scada.send_setpoint, -5.0)
            await run.sleep_sim(2.0)
            assert run.site.stores.quotas.all() == quotas_before
            assert run.site.status().limit.origin == "contracted"
            assert [r.split(":")[0] for r in outstation(run).rejected] == ["out of range"] * 2

            # A setpoint of 30 % of the load: confirmed, met within sleep time + 2 cycles.
            setpoint_kw = round(0.3 * full_kw, 1)
            t_cmd = run.now_s()
            assert await asyncio.to_thread(scada.send_setpoint, setpoint_kw)
            await run.sleep_sim(SLEEP_S + 2 * CYCLE_S + 6.0)
            under_s = run.recorder.first_under(setpoint_kw, t_cmd) - t_cmd
            print(f"\nIEC 104 setpoint {setpoint_kw} kW: under it after {under_s:.2f} sim s")
            assert under_s <= SLEEP_S + 2 * CYCLE_S, run.trace(t_cmd - 1, t_cmd + 10)
            status = run.site.status()
            assert status.limit.limit_kw == pytest.approx(setpoint_kw)
            (quota,) = [q for q in run.site.stores.quotas.all() if q.source is QuotaSource.IEC104]
            assert quota.issued_by.startswith("iec104:127.0.0.1")
            assert status.limit.quota_id == quota.quota_id
            assert (await site_json(run))["quota_source"] == "iec104"
            audit = run.site.stores.db.query(
                "SELECT action, subject, detail FROM audit WHERE subject = ?",
                (quota.quota_id,),
                what="test audit",
            )
            assert [row[0] for row in audit] == ["quota.create"]
            assert '"source": "iec104"' in str(audit[0][2])
            await run.sleep_sim(PERIOD_S + 1.0)
            feedback = scada.latest(1006)
            assert feedback is not None and feedback.valid
            assert feedback.value == pytest.approx(setpoint_kw)
            origin = scada.latest(1003)
            assert origin is not None and origin.value == 1.0  # quota

            # Withdrawn: back to the contract, the feedback point goes invalid.
            assert await asyncio.to_thread(scada.send_withdraw)
            await run.wait_for(
                "limit back to the contract",
                lambda: run.site.status().limit.origin == "contracted",
                10.0,
            )
            assert run.site.stores.quotas.get(quota.quota_id).withdrawn_at_s is not None  # type: ignore[union-attr]
            await run.sleep_sim(PERIOD_S + 1.0)
            feedback = scada.latest(1006)
            assert feedback is not None and not feedback.valid
        finally:
            scada.stop()


@pytest.mark.asyncio
async def test_client_from_an_address_not_allowed_is_refused(tmp_path: Path) -> None:
    spec = site_spec(4, base_octet=122, speed=SPEED)
    async with running_site(spec, tmp_path) as run:
        port = free_port()
        # Only 127.0.0.2 may connect; the SCADA below comes from 127.0.0.1.
        settings = Iec104Settings.model_validate(
            {"enabled": True, "listen": f"127.0.0.1:{port}", "allowed_clients": ["127.0.0.2"]}
        )
        station = Iec104Outstation(settings, run.site, 100.0)
        task = asyncio.create_task(station.run())
        scada = Scada("127.0.0.1", port, run.sim.clock)
        try:
            await run.wait_for("outstation listening", lambda: running(station), 10.0)
            scada.start()
            await run.wait_for("refused", lambda: station.refused_connections >= 1, 20.0)
            await run.sleep_sim(2.0)
            assert not scada.active()
            assert scada.messages() == []
        finally:
            scada.stop()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


@pytest.mark.asyncio
async def test_link_loss_counts_as_the_grid_authority_going_silent(tmp_path: Path) -> None:
    port = free_port()
    spec = site_spec(4, base_octet=123, speed=SPEED)
    async with running_site(spec, tmp_path, extra_toml=iec104_toml(port)) as run:
        # [grid] quota_heartbeat_s = 8 (the written config has no hook for it).
        cycle = run.site.cycle
        cycle.config = dataclasses.replace(cycle.config, quota_heartbeat_s=8.0)
        await run.wait_for("silent before any link", lambda: run.site.status().failsafe, 20.0)
        scada = Scada("127.0.0.1", port, run.sim.clock)
        scada.start()
        try:
            await run.wait_for("SCADA connected", scada.active, 20.0)
            linked = lambda: not run.site.status().failsafe  # noqa: E731
            await run.wait_for("link up: no fail-safe", linked, 10.0)
            await run.sleep_sim(12.0)  # longer than the heartbeat: the link itself is the contact
            assert not run.site.status().failsafe, run.site.status().failsafe_reason
        finally:
            scada.stop()
        t_down = run.now_s()
        t_silent = await run.wait_for(
            "fail-safe after link loss", lambda: run.site.status().failsafe, 30.0
        )
        assert "silent" in run.site.status().failsafe_reason
        # Silent from the last contact (at most one look before the link went down) on.
        assert 7.0 <= t_silent - t_down <= 8.0 + 6 * CYCLE_S


@pytest.mark.asyncio
async def test_select_before_execute_and_a_setpoint_duration(tmp_path: Path) -> None:
    spec = site_spec(4, base_octet=124, speed=SPEED)
    async with running_site(spec, tmp_path) as run:
        port = free_port()
        settings = Iec104Settings.model_validate(
            {
                "enabled": True,
                "listen": f"127.0.0.1:{port}",
                "allowed_clients": ["127.0.0.1"],
                "select_before_execute": True,
                "setpoint_duration_s": 60.0,
            }
        )
        station = Iec104Outstation(settings, run.site, 100.0)
        task = asyncio.create_task(station.run())
        scada = Scada("127.0.0.1", port, run.sim.clock)
        try:
            await run.wait_for("outstation listening", lambda: running(station), 10.0)
            scada.start()
            await run.wait_for("SCADA connected", scada.active, 20.0)
            # An execute without a select is refused by the outstation.
            assert not await asyncio.to_thread(scada.send_setpoint, 8.0)
            assert not [q for q in run.site.stores.quotas.all() if q.source is QuotaSource.IEC104]
            scada.setpoint_point.command_mode = c104.CommandMode.SELECT_AND_EXECUTE
            assert await asyncio.to_thread(scada.send_setpoint, 8.0)
            await run.wait_for(
                "setpoint stored",
                lambda: any(q.source is QuotaSource.IEC104 for q in run.site.stores.quotas.all()),
                10.0,
            )
            (quota,) = [q for q in run.site.stores.quotas.all() if q.source is QuotaSource.IEC104]
            assert quota.limit_kw == 8.0
            assert quota.end_s is not None
            assert quota.end_s - quota.issued_at_s == pytest.approx(60.0, abs=0.5)
        finally:
            scada.stop()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
