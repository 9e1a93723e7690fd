"""The status page in headless Chromium against the real API: the figures it renders are
the figures GET /api/v1/site answers; it lists rigs, alerts and the coming quotas; under
the fail-safe it tells one story; times are the site's, 24-hour; a new site's chart spans
the data it has; the rig table scrolls inside its card.

Screenshots are kept in test-artifacts/status-page*.png."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from ops_site import TOKENS, OpsSite, ServedSite
from servers import free_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
    "--virtual-time-budget=5000",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run make deps", pytrace=False)
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[OpsSite, ServedSite]]:
    site = OpsSite(tmp_path / "minerd.sqlite")
    with ServedSite(site, free_port()) as srv:
        yield site, srv
    site.close()


def run_chromium(tmp_path: Path, url: str, *mode: str) -> str:
    profile = tmp_path / f"chromium-{len(list(tmp_path.glob('chromium-*')))}"
    argv = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *mode, url]
    if any(m.startswith("--window-size=") for m in mode):
        argv.remove("--window-size=1280,900")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def by_id(dom: str, element_id: str) -> str:
    m = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', dom)
    assert m is not None, f"no element #{element_id} in the rendered page"
    return html.unescape(m.group(1)).strip()


def table_rows(dom: str, table_id: str) -> list[list[str]]:
    m = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert m is not None, f"no table #{table_id}"
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", m.group(1), re.S)
    return [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows]


def test_status_page_serves_assets_with_a_strict_policy(
    served: tuple[OpsSite, ServedSite],
) -> None:
    _, srv = served
    page = httpx.get(srv.url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script" in page.text and "cdn" not in page.text.lower()
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        r = httpx.get(f"{srv.url}/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        again = httpx.get(f"{srv.url}/static/{name}", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
    assert httpx.get(srv.url + "/static/..%2Fstatus_page.py").status_code == 404
    assert httpx.get(srv.url + "/static/nothing.js").status_code == 404


def test_status_page_renders_what_the_api_answers(
    served: tuple[OpsSite, ServedSite], tmp_path: Path
) -> None:
    site, srv = served
    token = TOKENS["operator"]
    api = httpx.get(srv.url + "/api/v1/site", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200
    s = api.json()
    url = f"{srv.url}/#token={token}"

    dom = run_chromium(tmp_path, url, "--dump-dom")

    assert by_id(dom, "site-name") == s["site"] == "ops-site"
    assert by_id(dom, "grid-import") == f"{s['grid_import_kw']:.1f}" == "17.7"
    assert by_id(dom, "limit") == f"{s['limit']['limit_kw']:.1f}" == "60.0"
    assert by_id(dom, "limit-origin") == s["limit"]["origin"] == "quota"
    assert by_id(dom, "limit-quota") == "(q-now)"
    # the quota in force names who issued it (api, mqtt, schedule, iec104, openadr)
    assert s["quota_source"] == "api"
    assert by_id(dom, "quota-now") == "In force: 60.0 kW quota q-now from api."
    assert by_id(dom, "headroom") == f"{s['limit']['limit_kw'] - s['grid_import_kw']:.1f}"
    assert by_id(dom, "budget") == f"{s['rig_budget_kw']:.1f}"
    # How much of the limit the interval has used so far, and why when under 97 %.
    assert s["interval_utilization"] == 0.962
    assert by_id(dom, "interval-used") == "96.2"
    assert by_id(dom, "interval-under") == "· under 97 %: min-off hold"
    assert by_id(dom, "hashrate") == f"{s['hashrate_ths']:.1f}" == "706.5"
    assert by_id(dom, "efficiency") == f"{s['rig_power_kw'] * 1000 / s['hashrate_ths']:.1f}"
    assert by_id(dom, "rigs-total") == str(s["rigs_total"]) == "8"
    assert by_id(dom, "commandable-share") == f"{s['commandable_share'] * 100:.1f}" == "95.0"
    assert by_id(dom, "commandable-power") == f"{s['commandable_power_kw']:.1f}"
    for state in ("hashing", "sleeping", "offline", "fault"):
        assert by_id(dom, f"state-{state}") == str(s["rigs_by_state"].get(state, 0))
    assert by_id(dom, "failsafe") == "off"
    assert by_id(dom, "cap-now") == "none"
    # an operator token needs no note that it needs one
    assert re.search(r'<p id="cap-msg" class="muted" hidden', dom)
    # times in the site's zone (+05:30), 24-hour
    zone = ZoneInfo(s["timezone"])
    taken = datetime.fromisoformat(s["taken_at"]).astimezone(zone)
    assert s["timezone"] == "Asia/Kolkata"
    assert by_id(dom, "updated") == f"as of {taken:%H:%M:%S} Asia/Kolkata \u00b7 cycle 1234"

    # the chart has the polled import and the limit steps
    assert re.search(r'id="chart-limit"', dom) and re.search(r'id="chart-import"', dom)
    # rig table: every rig, offline and fault ones marked
    rigs = table_rows(dom, "rigs")
    assert len(rigs) == 8
    states = {r[0]: r[3] for r in rigs}
    assert states["c2-r06"].startswith("offline")
    assert states["c2-r07"] == "fault"
    assert by_id(dom, "rigs-msg") == "rigs 1\u20138 of 8"
    # alerts and the coming schedule
    alerts = table_rows(dom, "alerts")
    assert [a[1] for a in alerts] == ["rig_overheat"]
    schedule = table_rows(dom, "schedule")
    assert schedule[0][0] == "now" and schedule[0][2] == "60.0" and schedule[0][4] == "q-now"
    assert ["45.0", "quota", "q-evening"] in [r[2:] for r in schedule]
    evening = datetime.fromtimestamp(site.now_s + 2 * 3600.0, zone)
    assert [f"{evening:%Y-%m-%d %H:%M}", "45.0"] in [[r[0], r[2]] for r in schedule]
    assert not re.search(r"\b(AM|PM)\b", dom), "24-hour times"
    assert site.operator_cap_kw is None

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    run_chromium(tmp_path, url, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000


def test_status_page_without_token_asks_for_one(
    served: tuple[OpsSite, ServedSite], tmp_path: Path
) -> None:
    _, srv = served
    dom = run_chromium(tmp_path, srv.url + "/", "--dump-dom")
    assert re.search(r'<section id="login">', dom), "the token form is shown"
    assert by_id(dom, "grid-import") == "\u2013"  # an en dash: no figure yet

    assert re.search(r'<div id="banner" class="banner" hidden', dom), "no banner before a token"

    dom = run_chromium(tmp_path, srv.url + "/#token=wrong-token", "--dump-dom")
    assert "The token was refused" in by_id(dom, "login-msg")
    assert re.search(r'<div id="banner" class="banner" hidden', dom)


def test_status_page_shows_the_failsafe(served: tuple[OpsSite, ServedSite], tmp_path: Path) -> None:
    site, srv = served
    site.failsafe_reason = "grid meter stale: grid-main"
    headers = {"Authorization": f"Bearer {TOKENS['viewer']}"}
    s = httpx.get(srv.url + "/api/v1/site", headers=headers).json()
    # the payload keeps apart what holds the site and what is in force
    assert s["limit"] == {"limit_kw": 20.0, "origin": "failsafe", "quota_id": None}
    assert s["in_force"] == {"limit_kw": 60.0, "origin": "quota", "quota_id": "q-now"}
    assert s["failsafe"] == {"active": True, "reason": "grid meter stale: grid-main"}
    assert s["role"] == "viewer"

    url = f"{srv.url}/#token={TOKENS['viewer']}"
    dom = run_chromium(tmp_path, url, "--dump-dom")
    assert by_id(dom, "failsafe") == "ACTIVE"
    assert by_id(dom, "failsafe-reason") == "grid meter stale: grid-main"
    # the limit card names the fail-safe and why, and no quota it overrides
    assert by_id(dom, "limit") == "20.0" and by_id(dom, "limit-origin") == "fail-safe"
    assert by_id(dom, "limit-quota") == "(grid meter stale: grid-main)"
    # "quota now" says what is in force and that the fail-safe caps it
    assert by_id(dom, "quota-now") == (
        "In force: 60.0 kW quota q-now from api, capped by the fail-safe at 20.0 kW "
        "(grid meter stale: grid-main)."
    )
    now = table_rows(dom, "schedule")[0]
    assert now[0] == "now" and now[2:] == [
        "60.0",
        "quota, capped by the fail-safe at 20.0 kW",
        "q-now",
    ]
    assert by_id(dom, "banner").startswith("FAIL-SAFE: grid meter stale: grid-main")
    # a viewer sees rigs and alerts, and the note that the cap needs an operator token
    assert len(table_rows(dom, "rigs")) == 8
    assert by_id(dom, "cap-msg") == "Needs an operator token."
    assert not re.search(r'<p id="cap-msg" class="muted" hidden', dom)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status-page-failsafe.png"
    run_chromium(tmp_path, url, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000


def test_a_new_site_chart_spans_the_data_it_has(tmp_path: Path) -> None:
    site = OpsSite(tmp_path / "minerd.sqlite", started_ago_s=120.0)
    try:
        with ServedSite(site, free_port()) as srv:
            url = f"{srv.url}/#token={TOKENS['operator']}"
            dom = run_chromium(tmp_path, url, "--dump-dom")
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "status-page-new-site.png"
            run_chromium(tmp_path, url, f"--screenshot={shot}")
    finally:
        site.close()
    m = re.search(r'<svg [^>]*data-from="([0-9.]+)" data-to="([0-9.]+)"', dom)
    assert m is not None, "the chart is drawn"
    t0_ms, t1_ms = float(m.group(1)), float(m.group(2))
    # from the daemon's start (not an hour back) to now
    assert t0_ms == site.started_s * 1000 and t1_ms >= site.now_s * 1000
    zone = ZoneInfo(site.timezone)
    started = datetime.fromtimestamp(site.started_s, zone)
    assert by_id(dom, "chart-span") == f"since {started:%H:%M} Asia/Kolkata"

    def xs(path_id: str) -> list[float]:
        d = re.search(rf'd="([^"]*)"[^>]*id="{path_id}"', dom)
        assert d, f"no path #{path_id}"
        return [float(v) for v in re.findall(r"[MLH]([0-9.]+)", d.group(1))]

    imports, limits = xs("chart-import"), xs("chart-limit")
    assert re.search(r'd="M[^"]*L[^"]*"[^>]*id="chart-import"', dom), "import drawn as a line"
    # the import spans the chart (left edge at x=48, right at x=790), not its right end
    assert imports[0] < 60 and imports[-1] > 700
    # no limit before the daemon started: it starts where the data does
    assert min(limits) >= imports[0] - 0.5
    assert shot.stat().st_size > 10_000


class PageGone(Exception):
    """The page's JavaScript context went away (it navigated)."""


class Browser:
    """Headless Chromium driven over the DevTools protocol (a pipe-free WebSocket)."""

    def __init__(self, tmp_path: Path, url: str, window: str = "1280,900") -> None:
        self.profile = tmp_path / "chromium-cdp"
        argv = [
            chromium(),
            *[f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")][:-1],
            f"--window-size={window}",  # no virtual time: the page runs in real time here
            f"--user-data-dir={self.profile}",
            "--remote-debugging-port=0",
            url,
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._ids = 0

    async def __aenter__(self) -> Browser:
        port_file = self.profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        self.http = aiohttp.ClientSession()
        async with self.http.get(f"http://127.0.0.1:{port}/json/list") as r:
            targets = await r.json()
        page = next(t for t in targets if t["type"] == "page")
        self.ws = await self.http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        # The target may still be navigating from about:blank to the page.
        for _ in range(200):
            try:
                ready = "document.readyState === 'complete' && location.pathname === '/'"
                if await self.js(ready):
                    break
            except PageGone:
                pass
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.http.close()
        self.proc.terminate()
        self.proc.wait(10)

    async def js(self, expression: str) -> object:
        """Evaluate in the page (awaiting a promise) and return the value."""
        self._ids += 1
        call = {
            "id": self._ids,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "awaitPromise": True, "returnByValue": True},
        }
        await self.ws.send_json(call)
        async with asyncio.timeout(20):
            while True:
                msg = await self.ws.receive_json()
                if msg.get("id") == self._ids:
                    if "error" in msg:
                        raise PageGone(str(msg["error"]))
                    result = msg["result"]
                    assert "exceptionDetails" not in result, result
                    return result["result"].get("value")

    async def wait_text(self, element_id: str, predicate_js: str) -> str:
        """Wait until the element's text satisfies `t => ...` and return it."""
        value = await self.js(
            f"""new Promise((ok, fail) => {{
                const t0 = Date.now();
                const check = () => {{
                    const e = document.getElementById({element_id!r});
                    const t = e ? e.textContent : "";
                    if (e && ({predicate_js})(t)) ok(t);
                    else if (Date.now() - t0 > 15000) fail(new Error("timeout: " + t));
                    else setTimeout(check, 50);
                }};
                check();
            }})"""
        )
        assert isinstance(value, str)
        return value


@pytest.mark.asyncio
async def test_operator_sets_and_clears_the_cap_from_the_page(
    served: tuple[OpsSite, ServedSite], tmp_path: Path
) -> None:
    site, srv = served
    async with Browser(tmp_path, f"{srv.url}/#token={TOKENS['operator']}") as page:
        await page.wait_text("limit", "t => t === '60.0'")
        await page.js(
            "document.getElementById('cap-input').value = '35.5';"
            "document.getElementById('cap-form').requestSubmit(); true"
        )
        msg = await page.wait_text("cap-msg", "t => t.startsWith('Cap ')")
        assert msg == "Cap 35.5 kW set by ops-operator."
        assert site.operator_cap_kw == 35.5
        # the page re-polls: the limit and its origin follow the cap
        await page.wait_text("limit", "t => t === '35.5'")
        assert await page.js("document.getElementById('limit-origin').textContent") == (
            "operator-cap"
        )
        assert await page.js("document.getElementById('cap-now').textContent") == "35.5 kW"

        await page.js("document.getElementById('cap-clear').click(); true")
        msg = await page.wait_text("cap-msg", "t => t.startsWith('Cap cleared')")
        assert site.operator_cap_kw is None
        await page.wait_text("limit", "t => t === '60.0'")
    audit = [e.action for e in site.stores.audit.query(0.0, 2e9, 10, None)]
    assert audit[:2] == ["operator_cap.clear", "operator_cap.set"]


@pytest.mark.asyncio
async def test_a_viewer_cannot_set_the_cap(
    served: tuple[OpsSite, ServedSite], tmp_path: Path
) -> None:
    site, srv = served
    async with Browser(tmp_path, f"{srv.url}/#token={TOKENS['viewer']}") as page:
        await page.wait_text("rigs-total", "t => t === '8'")
        await page.js(
            "document.getElementById('cap-input').value = '10';"
            "document.getElementById('cap-form').requestSubmit(); true"
        )
        msg = await page.wait_text("cap-msg", "t => t.startsWith('Only')")
        assert msg == "Only an operator token may set the cap."
    assert site.operator_cap_kw is None


@pytest.mark.asyncio
async def test_the_rig_table_scrolls_inside_its_card_at_1400_px(
    served: tuple[OpsSite, ServedSite], tmp_path: Path
) -> None:
    site, srv = served
    long_reason = "offline: " + "connection refused by 127.0.2.16:4028 after 3 retries; " * 4
    i = site.fleet.rig_index("c2-r06")
    site.fleet.update_rig(
        i, replace(site.fleet.reading("c2-r06"), reason=long_reason.strip(), profile="x" * 60)
    )
    async with Browser(tmp_path, f"{srv.url}/#token={TOKENS['operator']}", "1400,900") as page:
        await page.wait_text("rigs-msg", "t => t.startsWith('rigs 1')")
        assert await page.js("window.innerWidth") == 1400
        page_w = await page.js("document.documentElement.scrollWidth")
        client_w = await page.js("document.documentElement.clientWidth")
        assert isinstance(page_w, int) and isinstance(client_w, int)
        assert page_w <= client_w, "the page scrolls sideways"
        wrap = "document.getElementById('rigs').parentElement"
        assert await page.js(f"{wrap}.className") == "scroll"
        assert await page.js(f"{wrap}.scrollWidth > {wrap}.clientWidth"), "the card scrolls"
        right = await page.js(f"{wrap}.getBoundingClientRect().right")
        assert isinstance(right, int | float) and right <= client_w


@pytest.mark.asyncio
async def test_the_limit_of_an_earlier_run_is_not_drawn_through_the_restart(
    tmp_path: Path,
) -> None:
    site = OpsSite(tmp_path / "minerd.sqlite", started_ago_s=600.0)
    # what this browser polled from the previous run, 40 to 30 minutes ago
    old = [
        {"t": (site.now_s - 2400 + 60 * k) * 1000, "importKw": 70.0, "limitKw": 80.0}
        for k in range(11)
    ]
    saved = {"site": "ops-site", "samples": [{**p, "budgetKw": 75.0} for p in old]}
    try:
        with ServedSite(site, free_port()) as srv:
            async with Browser(tmp_path, f"{srv.url}/#token={TOKENS['operator']}") as page:
                await page.wait_text("rigs-total", "t => t === '8'")
                await page.js(
                    f"localStorage.setItem('minerd.samples', {json.dumps(json.dumps(saved))});"
                    "location.reload(); true"
                )
                await asyncio.sleep(0.5)  # the reload replaces the document
                for _ in range(100):
                    with contextlib.suppress(PageGone):
                        if await page.js("document.readyState === 'complete'"):
                            break
                    await asyncio.sleep(0.05)
                await page.wait_text("chart-span", "t => t.startsWith('since')")
                d = await page.js("document.getElementById('chart-limit').getAttribute('d')")
                svg_from = await page.js(
                    "Number(document.querySelector('#chart svg').dataset.from)"
                )
                svg_to = await page.js("Number(document.querySelector('#chart svg').dataset.to)")
    finally:
        site.close()
    assert isinstance(d, str) and isinstance(svg_from, int | float)
    assert isinstance(svg_to, int | float)
    assert svg_from == old[0]["t"]  # the chart reaches back to the data this browser has

    def x(t_ms: float) -> float:
        return 48 + (t_ms - svg_from) / (svg_to - svg_from) * 742

    runs = re.findall(r"M([0-9.]+) ", d)
    assert len(runs) == 2, d  # the old run's limit, then this run's from its start
    first_run = d.split("M")[1]
    assert max(float(v) for v in re.findall(r"H([0-9.]+)", first_run)) <= x(old[-1]["t"]) + 0.5
    assert abs(float(runs[1]) - x(site.started_s * 1000)) < 0.5
