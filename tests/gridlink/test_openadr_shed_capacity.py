"""The OpenADR VEN reports what the site can shed within 5 s / 60 s / 10 min (site import kW)
as TELEMETRY_USAGE (r_id shed-5s, shed-60s, shed-600s) to openleadr's own VTN, with the
values /api/v1/site shows; real daemon on 12 simulated LuxOS S19j Pro at 4x."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_kit import running_site, site_spec
from servers import free_port
from test_iec104_scada import site_json
from test_openadr_ven import openadr_toml
from vtn import Vtn

pytestmark = pytest.mark.filterwarnings("ignore:It is recommended to use web.AppKey")

SPEED = 4.0
RIGS = 12
R_IDS = {"shed-5s": "within_5s_kw", "shed-60s": "within_60s_kw", "shed-600s": "within_600s_kw"}


@pytest.mark.asyncio
async def test_ven_reports_shed_capacity_as_telemetry(tmp_path: Path) -> None:
    vtn = Vtn(free_port())
    await vtn.start()
    try:
        spec = site_spec(RIGS, base_octet=168, speed=SPEED)
        async with running_site(spec, tmp_path, extra_toml=openadr_toml(vtn)) as run:
            parts = run.daemon.components
            assert parts is not None and parts.grid_links.openadr is not None
            await run.wait_for("registered", parts.grid_links.openadr.registered.is_set, 20.0)
            await run.sleep_sim(6.0)  # every rig read at full load
            since = len(vtn.reports)

            def shed_reported() -> bool:
                got = {r_id for r_id, _ in vtn.reports[since:]}
                return set(R_IDS) <= got

            await run.wait_for("shed capacity reports", shed_reported, 30.0)
            shed = (await site_json(run))["shed_capacity"]
            assert isinstance(shed, dict)
            # LuxOS curtails in 5 s: every horizon is the whole fleet down to sleep power.
            assert float(shed["within_5s_kw"]) > 0.9 * RIGS * 3.0
            for r_id, key in R_IDS.items():
                latest = [v for rid, v in vtn.reports[since:] if rid == r_id][-1]
                assert latest == pytest.approx(float(shed[key]), rel=0.05), (r_id, shed)
    finally:
        await vtn.stop()
