"""The Grafana dashboards against real telemetry.

An hour of a small site is encoded by minerd's own sink code (PointEncoder) and written by
its v1 writer into a real influxd 1.x; then every panel query and every variable query of
every dashboard runs there with Grafana's macros substituted, and each must return data.
The site overview's economics row shows the last `economics` figures written and the
stale hashprice feed. The JSON itself is checked too: unique panel ids, the ${DS} variable on
every panel and target, no overlapping panels (row headers included), and provisioning
files that point at the dashboards."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from servers import ServerProcess, influx_create_database, influx_query

from minerd.clock import SystemClock
from minerd.model import (
    Alert,
    ComplianceRecord,
    EffectiveLimit,
    MeterReading,
    MeterRole,
    RigAction,
    RigCommand,
    RigProtocol,
    RigReading,
    RigState,
    SettlementRecord,
    Severity,
)
from minerd.runtime.devices import MeterInfo, RigInfo
from minerd.runtime.economics_status import EconomicsStatus
from minerd.runtime.fleet import FleetState
from minerd.sinks import PointEncoder, V1Target, V1Writer
from minerd.sinks.points import to_ms

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATABASE = "minerd_dash"
SITE = "dash-site"
RIGS = [f"c{1 + i // 4}-r{i:02d}" for i in range(8)]
DETAIL_RIG = "c1-r01"
STEP_S = 30.0


def load(path: Path) -> Any:
    """A dashboard as parsed JSON (test code indexes it freely)."""
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def panels(board: Any) -> list[Any]:
    """The panels that query (row panels only group the ones below them)."""
    out = board["panels"]
    assert isinstance(out, list)
    return [p for p in out if p["type"] != "row"]


def row_of(board: Any, title: str) -> list[Any]:
    """The panels under the row panel `title`, up to the next row."""
    out: list[Any] = []
    inside = False
    for p in sorted(board["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        if p["type"] == "row":
            inside = p["title"] == title
        elif inside:
            out.append(p)
    return out


def economics(t_s: float, now_s: float) -> EconomicsStatus:
    """Price-aware dispatch as the status page shows it: the price steps every 15 minutes,
    and the hashprice feed is stale for the five minutes from 40 to 35 minutes ago."""
    stale = now_s - 40 * 60.0 <= t_s < now_s - 35 * 60.0
    price = 41.0 + 4.0 * ((t_s // 900.0) % 3)
    cost = 22.0 * price / 1000.0
    return EconomicsStatus(
        enabled=True,
        state="stale" if stale else "active",
        reason="",
        currency="KZT",
        energy_price_per_mwh=price,
        hashprice_usd_per_th_day=0.0521,
        hashprice_fresh=not stale,
        breakeven_j_per_th=24.0 + 4.0 * ((t_s // 900.0) % 3),
        revenue_per_h=1.25,
        energy_cost_per_h=cost,
        margin_per_h=1.25 - cost,
    )


def rig_reading(i: int, t_s: float) -> RigReading:
    if i == 6:  # offline all along
        return RigReading(RIGS[i], t_s, RigState.OFFLINE, "offline: connection refused")
    if i == 7:
        return RigReading(RIGS[i], t_s, RigState.SLEEPING, "asleep", power_w=18.0)
    wobble = (t_s % 600.0) / 600.0
    return RigReading(
        RIGS[i],
        t_s,
        RigState.HASHING,
        "",
        hashrate_ths=100.0 + 10.0 * (i % 2) + wobble,
        power_w=3200.0 + 50.0 * i,
        chip_temp_max_c=70.0 + i + 5.0 * wobble,
        fan_rpm_min=5400 + 10 * i,
        profile="stock",
    )


def telemetry(now_s: float) -> list[str]:
    """About an hour of a site with 8 rigs, up to a few seconds ago, as line protocol."""
    infos = [
        RigInfo(
            RIGS[i],
            "bitmain-s21" if i % 2 else "bitmain-s19jpro",
            f"c{1 + i // 4}",
            f"127.0.3.{i + 1}",
            4028,
            RigProtocol.LUXOS,
            15.0,
            3.0,
            60.0,
        )
        for i in range(len(RIGS))
    ]
    meters = [
        MeterInfo("grid-main", MeterRole.GRID, "", "tcp://127.0.0.1:5020", 1.0, 0.5, 5.0),
        MeterInfo("cooling", MeterRole.AUX, "c1", "tcp://127.0.0.1:5021", 1.0, 0.5, 5.0),
    ]
    fleet = FleetState(infos, meters)
    enc = PointEncoder(SITE)
    lines: list[str] = []
    start_s = now_s - 55 * 60.0
    t = start_s
    while t <= now_s - 5.0:
        for i in range(len(RIGS)):
            fleet.update_rig(i, rig_reading(i, t))
        fleet.update_meter(MeterReading("grid-main", t, power_w=22_000.0 + (t % 300.0)))
        fleet.update_meter(MeterReading("cooling", t, power_w=1_100.0))
        snap = fleet.snapshot(t)
        failsafe = now_s - 30 * 60.0 <= t < now_s - 27 * 60.0
        if failsafe:
            limit = EffectiveLimit(20.0, "failsafe")
        elif t < now_s - 20 * 60.0:
            limit = EffectiveLimit(40.0, "quota", "q-1")
        else:
            limit = EffectiveLimit(30.0, "operator-cap")
        lines.append(enc.site_line(snap, limit, limit.limit_kw * 1000.0 - 3000.0, failsafe))
        lines.append(enc.economics_line(economics(t, now_s), t))
        lines += enc.meter_lines(snap)
        enc.rig_lines(snap.rigs, to_ms(t), lines)
        t += STEP_S
    commands = [
        RigCommand(DETAIL_RIG, RigAction.SLEEP, reason="budget"),
        RigCommand("c2-r05", RigAction.SET_POWER, power_w=3000.0, reason="budget"),
    ]
    lines += enc.command_lines(commands, now_s - 600.0)
    lines += enc.command_lines([RigCommand(DETAIL_RIG, RigAction.WAKE, reason="room")], now_s - 60)
    for k, over_s in ((1, 0.0), (2, 42.0), (3, 0.0)):
        rec = ComplianceRecord(
            interval_start_s=now_s - 60 * 60.0 + k * 900.0,
            interval_s=900.0,
            avg_import_kw=22.1,
            limit_kw=40.0 if k < 3 else 30.0,
            max_excess_kw=1.5 if over_s else 0.0,
            seconds_over=over_s,
            energy_over_kwh=0.0125 if over_s else 0.0,
            samples=900,
        )
        lines.append(enc.compliance_line(rec))
        lines.append(
            enc.settlement_line(
                SettlementRecord(
                    interval_start_s=now_s - 60 * 60.0 + k * 900.0,
                    interval_s=900.0,
                    imported_kwh=5.5,
                    integrated_kwh=5.5,
                    register_kwh=None,
                    peak_kw=23.0,
                    seconds_over=over_s,
                    covered_s=900.0,
                    samples=900,
                    awarded_kwh=5.6,
                    award_id=f"a-{k}",
                )
            )
        )
    alert = Alert(
        "a-1",
        "grid_meter_stale",
        Severity.CRITICAL,
        (("meter", "grid-main"),),
        "grid meter stale",
        "",
        now_s - 30 * 60.0,
    )
    lines.append(enc.alert_line(alert, now_s - 30 * 60.0))
    lines.append(enc.alert_line(dataclasses.replace(alert, ends_at_s=now_s), now_s))
    return lines


async def write_lines(url: str, lines: list[str]) -> None:
    writer = V1Writer(V1Target(url, DATABASE))
    try:
        for k in range(0, len(lines), 5000):
            chunk = lines[k : k + 5000]
            await writer.write("\n".join(chunk).encode(), len(chunk))
    finally:
        await writer.close()


@pytest.fixture(scope="module")
def influx(influxd: ServerProcess, written_at: float) -> Iterator[ServerProcess]:
    influx_create_database(influxd, DATABASE)
    asyncio.run(write_lines(influxd.url, telemetry(written_at)))
    yield influxd


def regex_value(*values: str) -> str:
    """What Grafana puts in /^$var$/ for one value, or for several (an alternation)."""
    escaped = [re.sub(r"([\\^$*+?.()|\[\]{}/-])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


VARIABLES = {
    "site": regex_value(SITE),
    "container": regex_value("c1", "c2"),
    "rig": regex_value(DETAIL_RIG),
}


def substitute(query: str) -> str:
    q = query.replace("$timeFilter", "time > now() - 1h").replace("$__interval", "10s")
    for name, value in VARIABLES.items():
        q = q.replace("${" + name + "}", value).replace("$" + name, value)
    leftover = re.findall(r"\$\{?\w+", q)
    assert not leftover, f"unsubstituted macro {leftover} in {q}"
    return q


def run(server: ServerProcess, query: str) -> list[Any]:
    answer = influx_query(server, DATABASE, query)
    results = answer.get("results")
    assert isinstance(results, list) and results, answer
    for r in results:
        assert "error" not in r, f"{query}\n-> {r['error']}"
    series = results[0].get("series", [])
    assert isinstance(series, list)
    return series


def has_data(v: object) -> bool:
    """A value that shows something: not null, and not a 0 a fill(0) may have made."""
    if v is None:
        return False
    return isinstance(v, bool | str) or v != 0


def all_targets() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        for p in panels(load(path)):
            for t in p["targets"]:
                out.append((path.name, str(p["title"]), str(t["query"])))
    return out


def last_step(now_s: float) -> float:
    """The time of the last snapshot telemetry() wrote."""
    t = now_s - 55 * 60.0
    while t + STEP_S <= now_s - 5.0:
        t += STEP_S
    return t


@pytest.fixture(scope="module")
def written_at() -> float:
    return SystemClock().now_s()


def test_there_are_the_four_dashboards() -> None:
    uids = {load(p)["uid"] for p in DASHBOARDS}
    assert uids == {"minerd-site", "minerd-fleet", "minerd-quota", "minerd-rig"}


@pytest.mark.parametrize(("board", "title", "query"), all_targets())
def test_every_panel_query_returns_data(
    influx: ServerProcess, board: str, title: str, query: str
) -> None:
    series = run(influx, substitute(query))
    values = [v for s in series for row in s.get("values", []) for v in row[1:]]
    assert any(has_data(v) for v in values), f"{board} / {title}: no data\n{query}"


def test_every_variable_query_returns_values(influx: ServerProcess) -> None:
    found: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        for var in load(path)["templating"]["list"]:
            if var["type"] != "query":
                continue
            series = run(influx, substitute(var["query"]))
            found[var["name"]] = {row[1] for s in series for row in s["values"]}
    assert found["site"] == {SITE}
    assert found["container"] == {"c1", "c2"}
    assert found["rig"] == set(RIGS)


def test_economics_row_shows_the_last_figures_and_the_stale_feed(
    influx: ServerProcess, written_at: float
) -> None:
    board = load(ROOT / "dashboards" / "minerd-site-overview.json")
    row = row_of(board, "Economics")
    queries = " ".join(t["query"] for p in row for t in p["targets"])
    for field in (
        "energy_price_per_mwh",
        "hashprice_usd_per_th_day",
        "revenue_per_h",
        "energy_cost_per_h",
        "margin_per_h",
    ):
        assert f'"{field}"' in queries, field
    last = economics(last_step(written_at), written_at)
    shown = {}
    for p in row:
        if p["type"] == "stat":
            (series,) = run(influx, substitute(p["targets"][0]["query"]))
            for name, value in zip(series["columns"][1:], series["values"][-1][1:], strict=True):
                shown[name] = value
    assert shown == {
        "energy price": last.energy_price_per_mwh,
        "hashprice": last.hashprice_usd_per_th_day,
        "revenue": last.revenue_per_h,
        "energy cost": pytest.approx(last.energy_cost_per_h),
        "margin": pytest.approx(last.margin_per_h),
        "state": "active",
        "currency": "KZT",
    }
    (timeline,) = [p for p in row if p["type"] == "state-timeline"]
    (series,) = run(influx, substitute(timeline["targets"][0]["query"]))
    states = {row[1] for row in series["values"]}
    fresh = {row[2] for row in series["values"]}
    assert states == {"active", "stale"} and fresh == {True, False}


def test_offline_table_lists_the_offline_rig(influx: ServerProcess) -> None:
    board = load(ROOT / "dashboards" / "minerd-fleet.json")
    (panel,) = [p for p in panels(board) if p["title"] == "Rigs offline or in fault"]
    series = run(influx, substitute(panel["targets"][0]["query"]))
    assert [s["tags"]["rig"] for s in series] == ["c2-r06"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    board = load(path)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = board["templating"]["list"]
    ds = [v for v in variables if v["type"] == "datasource"]
    assert ds == [ds[0]] and ds[0]["name"] == "DS" and ds[0]["query"] == "influxdb"
    for v in variables:
        if v["type"] == "query":
            assert v["datasource"] == {"type": "influxdb", "uid": "${DS}"}, v["name"]
    boxes = []
    for p in board["panels"]:
        if p["type"] == "row":  # a row header: no query; it spans the width
            g = p["gridPos"]
            assert (g["x"], g["w"], g["h"]) == (0, 24, 1) and p["collapsed"] is False
            boxes.append((str(p["title"]), 0, g["y"], 24, g["y"] + 1))
            continue
        assert p["datasource"] == {"type": "influxdb", "uid": "${DS}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "influxdb", "uid": "${DS}"}, p["title"]
            assert t["rawQuery"] is True
            assert "$timeFilter" in t["query"] or "now() -" in t["query"], p["title"]
            # one database may hold several sites: every query picks one
            assert '"site" =~ /^$site$/' in t["query"], p["title"]
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["w"] > 0 and g["h"] > 0
        boxes.append((str(p["title"]), g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap = a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
            assert not overlap, f"panels {a[0]!r} and {b[0]!r} overlap"


def test_provisioning_points_at_the_dashboards() -> None:
    prov = ROOT / "dashboards" / "provisioning"
    ds_text = (prov / "datasources" / "minerd.yaml").read_text()
    dash_text = (prov / "dashboards" / "minerd.yaml").read_text()
    assert "type: influxdb" in ds_text and "apiVersion: 1" in ds_text
    assert "type: file" in dash_text and "apiVersion: 1" in dash_text
    for text in (ds_text, dash_text):
        assert "\t" not in text
