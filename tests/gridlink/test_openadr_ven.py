"""Acceptance of the OpenADR 2.0b VEN: openleadr's own VTN (in this process) registers
minerd's VEN, sends events and receives TELEMETRY_USAGE reports, against the real daemon on
a simulated site (12 LuxOS S19j Pro, sleep 5 s) at 4x speed. Judged by the simulator's
truth; times are simulated seconds (event times are absolute, on the daemon's clock)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_kit import running_site, site_spec
from servers import free_port
from vtn import VEN_ID, Vtn

from minerd.model import QuotaSource
from minerd.profiles import load_rig_model

# The test VTN (openleadr's aiohttp app) stores itself under a plain string key.
pytestmark = pytest.mark.filterwarnings("ignore:It is recommended to use web.AppKey")

SPEED = 4.0
RIGS = 12
CYCLE_S = 1.0
SLEEP_S = load_rig_model("bitmain-s19jpro").sleep_time_s
LEVEL_KW = {1: 25.0, 2: 12.0}  # SIMPLE level 1 and 2 on a ~37 kW site


def openadr_toml(vtn: Vtn) -> str:
    levels = "".join(f"{level} = {kw}\n" for level, kw in LEVEL_KW.items())
    return (
        "[openadr]\nenabled = true\n"
        f'vtn_url = "{vtn.url}"\nven_name = "minerd-test"\nreport_interval_s = 1.0\n'
        f"[openadr.simple_level_kw]\n{levels}"
    )


@pytest.mark.asyncio
async def test_vtn_event_with_two_levels_is_followed_and_telemetry_reported(
    tmp_path: Path,
) -> None:
    vtn = Vtn(free_port())
    await vtn.start()
    try:
        spec = site_spec(RIGS, base_octet=131, speed=SPEED)
        async with running_site(spec, tmp_path, extra_toml=openadr_toml(vtn)) as run:
            parts = run.daemon.components
            assert parts is not None and parts.grid_links.openadr is not None
            ven = parts.grid_links.openadr
            await run.wait_for("registered", ven.registered.is_set, 20.0)
            assert vtn.registered == ["minerd-test"]
            await run.sleep_sim(3.0)
            full_kw = await run.truth_kw()
            assert full_kw > LEVEL_KW[1] + 5.0, "the site is not loaded above level 1"

            start_s = run.now_s() + 12.0  # the VEN polls every wall second (4 sim s)
            span_s = 24.0
            event_id = vtn.send([(start_s, span_s, 1.0), (start_s + span_s, span_s, 2.0)])
            await run.wait_for("event opted in", lambda: bool(vtn.opts), 20.0)
            assert vtn.opts == [(event_id, "optIn")]
            end_s = start_s + 2 * span_s
            await run.wait_for("event over", lambda: run.now_s() > end_s + 1.0, 60.0)

            react_s = SLEEP_S + 2 * CYCLE_S
            for n, level in enumerate((1, 2)):
                a = start_s + n * span_s
                limit_kw = LEVEL_KW[level]
                under_s = run.recorder.first_under(limit_kw, a) - a
                print(f"\nOpenADR level {level} ({limit_kw} kW): under it {under_s:+.2f} sim s")
                assert under_s <= react_s, run.trace(a - 1, a + 10)
                held = run.recorder.between(a + react_s, a + span_s)
                assert held and max(s.power_kw for s in held) <= limit_kw, run.trace(a, a + span_s)
            # Level 1 was followed, not level 2: well above level 2 in interval 1 (until the
            # controller sheds ahead of the lower interval, by about the rigs' sleep time).
            first = run.recorder.mean_kw(start_s + react_s, start_s + span_s - react_s - 1.0)
            assert first > LEVEL_KW[2] + 5.0, run.trace(start_s, start_s + span_s)

            quotas = [q for q in run.site.stores.quotas.all() if q.source is QuotaSource.OPENADR]
            assert sorted(q.limit_kw for q in quotas) == sorted(LEVEL_KW.values())
            assert all(q.issued_by == "openadr:TEST-VTN" for q in quotas)

            # TELEMETRY_USAGE reports reached the VTN, with the site's import in kW.
            await run.wait_for("reports", lambda: len(vtn.reports) >= 2, 20.0)
            site_reports = [v for r_id, v in vtn.reports if r_id == "site-power"]
            assert site_reports and all(0.0 <= v <= 1.2 * full_kw for v in site_reports)
    finally:
        await vtn.stop()


@pytest.mark.asyncio
async def test_cancelled_event_restores_the_previous_limit(tmp_path: Path) -> None:
    vtn = Vtn(free_port())
    await vtn.start()
    try:
        spec = site_spec(RIGS, base_octet=132, speed=SPEED)
        async with running_site(spec, tmp_path, extra_toml=openadr_toml(vtn)) as run:
            ven = run.daemon.components.grid_links.openadr  # type: ignore[union-attr]
            assert ven is not None
            await run.wait_for("registered", ven.registered.is_set, 20.0)
            before = run.post_quota(30.0)  # an earlier order from the REST API
            await run.wait_for(
                "API quota in force",
                lambda: run.site.status().limit.quota_id == before.quota_id,
                10.0,
            )
            event_id = vtn.send([(run.now_s() + 2.0, 600.0, 2.0)])
            await run.wait_for(
                "event in force",
                lambda: run.site.status().limit.limit_kw == LEVEL_KW[2],
                20.0,
            )
            t_event = run.now_s()
            assert run.site.status().limit.source is QuotaSource.OPENADR
            await run.sleep_sim(SLEEP_S + 3 * CYCLE_S)
            assert run.recorder.mean_kw(run.now_s() - 1.0, run.now_s()) <= LEVEL_KW[2]
            vtn.cancel(event_id)
            await run.wait_for(
                "previous limit back",
                lambda: run.site.status().limit.quota_id == before.quota_id,
                20.0,
            )
            assert run.site.status().limit.limit_kw == 30.0
            (adr,) = [q for q in run.site.stores.quotas.all() if q.source is QuotaSource.OPENADR]
            assert adr.withdrawn_at_s is not None and adr.withdrawn_at_s > t_event
            # The site climbs back above the event's level once it is cancelled.
            await run.sleep_sim(20.0)
            assert run.recorder.mean_kw(run.now_s() - 2.0, run.now_s()) > LEVEL_KW[2] + 3.0
            assert ven.client.ven_id == VEN_ID
    finally:
        await vtn.stop()
