"""What the status page card tests share: serve a site, read GET /api/v1/site as the viewer
and the page's DOM as headless Chromium renders it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from ops_site import TOKENS, OpsSite, ServedSite
from servers import free_port
from test_ops_status_page import run_chromium

from minerd.runtime.award_view import AwardView
from minerd.runtime.economics_status import EconomicsView
from minerd.runtime.energy_view import EnergyView


def site_json_and_dom(
    site: OpsSite,
    tmp_path: Path,
    *,
    awards: AwardView | None = None,
    economics: EconomicsView | None = None,
    energy: EnergyView | None = None,
) -> tuple[dict[str, Any], str]:
    """The site's JSON and the page's DOM; the site is closed afterwards, even on failure."""
    token = TOKENS["viewer"]
    try:
        with ServedSite(
            site, free_port(), awards=awards, economics=economics, energy=energy
        ) as srv:
            s = httpx.get(srv.url + "/api/v1/site", headers={"Authorization": f"Bearer {token}"})
            dom = run_chromium(tmp_path, f"{srv.url}/#token={token}", "--dump-dom")
    finally:
        site.close()
    body: dict[str, Any] = s.json()
    return body, dom
