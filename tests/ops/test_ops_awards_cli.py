"""`minerd quota awards send|list|withdraw` and `minerd quota settlement` against a real API
server (uvicorn on a free port, the site's SQLite behind it): what is printed, the exit codes,
and what the API stored. The site's zone is Asia/Kolkata (+05:30), so local hours start at
:30 UTC and a wrong zone shows at once."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from ops_site import TOKENS, OpsSite, ServedSite
from servers import free_port

from minerd.api.times import iso
from minerd.cli import quota_cli
from minerd.cli.entry import main as minerd_main
from minerd.model import QuotaSource, SettlementRecord

TZ = ZoneInfo("Asia/Kolkata")
H = 3600.0


@pytest.fixture
def site(tmp_path: Path) -> Iterator[OpsSite]:
    s = OpsSite(tmp_path / "minerd.sqlite")
    yield s
    s.close()


@pytest.fixture
def served(site: OpsSite) -> Iterator[ServedSite]:
    with ServedSite(site, free_port()) as srv:
        yield srv


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml.tokens"
    path.write_text("".join(f'{role} = "{TOKENS[role]}"\n' for role in TOKENS))
    return path


def cli(
    capsys: pytest.CaptureFixture[str], served: ServedSite, tokens: Path, *argv: str
) -> tuple[int, str, str]:
    code = quota_cli.main(["quota", "--url", served.url, "--token-file", str(tokens), *argv])
    out = capsys.readouterr()
    for secret in TOKENS.values():
        assert secret not in out.out + out.err
    return code, out.out, out.err


def local_day(site: OpsSite, days: int) -> date:
    return datetime.fromtimestamp(site.now_s, TZ).date() + timedelta(days=days)


def local_s(d: date, hour: int) -> float:
    return datetime(d.year, d.month, d.day, hour, tzinfo=TZ).timestamp()


def stored(site: OpsSite, d: date) -> list[tuple[float, float, str | None]]:
    """(start_s, energy_kwh, reference) of the awards in force on local day d."""
    awards = site.stores.awards.in_range(local_s(d, 0), local_s(d + timedelta(days=1), 0))
    return [(a.start_s, a.energy_kwh, a.reference) for a in awards]


def _ids(site: OpsSite, d: date) -> list[str]:
    return [
        a.award_id
        for a in site.stores.awards.in_range(local_s(d, 0), local_s(d + timedelta(days=1), 0))
    ]


def test_send_csv_list_and_withdraw(
    site: OpsSite,
    served: ServedSite,
    tokens: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    day = local_day(site, 1)
    path = tmp_path / "korem-day-ahead.csv"
    path.write_text(
        "interval_start,energy_mwh,reference\n"
        f"{day}T00:00,0.075,korem-1\n"
        f"{day}T01:00,0.07,korem-1\n"
        f"{day}T02:00,0.06,korem-1\n"
    )
    code, out, err = cli(capsys, served, tokens, "awards", "send", str(path))
    assert (code, err) == (0, "")
    assert out == (
        "awards stored: 3 new, 0 repeated, 0 superseded, 0 withdrawn\n"
        f"3 intervals from {iso(local_s(day, 0))} to {iso(local_s(day, 3))}, 0.205 MWh\n"
    )
    assert stored(site, day) == [
        (local_s(day, 0), 75.0, "korem-1"),
        (local_s(day, 1), 70.0, "korem-1"),
        (local_s(day, 2), 60.0, "korem-1"),
    ]
    (first, *_) = site.stores.awards.in_range(local_s(day, 0), local_s(day, 1))
    assert (first.issued_by, first.source) == ("ops-grid", QuotaSource.API)

    code, out, err = cli(capsys, served, tokens, "awards", "send", str(path))
    assert (code, err) == (0, "")
    assert out.startswith("awards already stored: 3 repeated, nothing changed\n")
    assert len(stored(site, day)) == 3

    ids = _ids(site, day)
    now = datetime.fromtimestamp(site.now_s, TZ)
    code, out, err = cli(capsys, served, tokens, "--role", "viewer", "awards", "list")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"awards in force between {now:%Y-%m-%d %H:%M} and "
        f"{now + timedelta(days=2):%Y-%m-%d %H:%M} (Asia/Kolkata):",
        "  interval                      MWh    mean kW  id  [source]",
        f"  {day} 00:00-01:00      0.075       75.0  {ids[0]}  [api] ref korem-1",
        f"  {day} 01:00-02:00      0.070       70.0  {ids[1]}  [api] ref korem-1",
        f"  {day} 02:00-03:00      0.060       60.0  {ids[2]}  [api] ref korem-1",
        "3 awards, 0.205 MWh in force",
    ]

    code, out, err = cli(capsys, served, tokens, "awards", "withdraw", ids[1])
    assert (code, err) == (0, "")
    gone = site.stores.awards.get(ids[1])
    assert gone is not None and gone.withdrawn_at_s is not None
    assert out == f"award {ids[1]} withdrawn at {iso(gone.withdrawn_at_s)}\n"
    assert _ids(site, day) == [ids[0], ids[2]]

    code, out, err = cli(capsys, served, tokens, "awards", "list", "--history")
    assert code == 0
    history = out.splitlines()
    assert history[0].startswith("award history between ")
    assert history[3].endswith(f"{ids[1]}  [api] ref korem-1  withdrawn {now:%Y-%m-%d %H:%M}")
    assert history[-1] == "3 awards, 0.135 MWh in force"

    # the real entry point reaches the same code: `minerd quota ... awards list --json`
    argv = ["quota", "--url", served.url, "--token-file", str(tokens), "--json"]
    assert minerd_main([*argv, "awards", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["id"] for a in listed["awards"]] == [ids[0], ids[2]]


def test_an_award_in_progress_is_marked_and_stdin_is_read(
    site: OpsSite,
    served: ServedSite,
    tokens: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.fromtimestamp(site.now_s, TZ)
    hour = now.replace(minute=0, second=0, microsecond=0)
    path = tmp_path / "now.json"
    path.write_text(json.dumps([{"interval_start": hour.isoformat(), "energy_mwh": 0.05}]))
    code, out, err = cli(capsys, served, tokens, "awards", "send", str(path))
    assert (code, err) == (0, "")
    code, out, err = cli(capsys, served, tokens, "awards", "list")
    assert code == 0
    assert out.splitlines()[2].endswith("[api]  (in progress)")

    # `-` reads the file from stdin; its first character says JSON
    nxt = hour + timedelta(hours=1)
    body = json.dumps([{"interval_start": nxt.isoformat(), "energy_mwh": 0.04}]).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
    code, out, err = cli(capsys, served, tokens, "awards", "send", "-")
    assert (code, err) == (0, "")
    assert [
        a.energy_kwh for a in site.stores.awards.in_range(hour.timestamp(), H + nxt.timestamp())
    ] == [50.0, 40.0]


def test_bad_csv_lines_are_named_and_nothing_is_stored(
    site: OpsSite,
    served: ServedSite,
    tokens: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    day = local_day(site, 1)
    path = tmp_path / "day.csv"
    path.write_text(
        "interval_start,energy_mwh\n"
        f"{day}T00:00,0.07\n"
        f"{day}T01:30,0.07\n"  # line 3: not the start of an hour
        f"{day}T02:00,lots\n"  # line 4: not a number
    )
    code, out, err = cli(capsys, served, tokens, "awards", "send", str(path))
    assert (code, out) == (quota_cli.EXIT_API, "")
    assert err.splitlines() == [
        f"minerd quota: awards in {path} refused (HTTP 422), nothing stored:",
        f"  {path}:3: interval_start: {day}T01:30:00+05:30 is not the start of a 3600 s "
        "interval in Asia/Kolkata (intervals count from local midnight)",
        f"  {path}:4: energy_mwh: 'lots' is not a number",
    ]
    assert stored(site, day) == []

    # a JSON item is named by its index; the operator role may not send awards
    bad = tmp_path / "day.json"
    bad.write_text(json.dumps([{"interval_start": f"{day}T00:00", "energy_mwh": "0.07"}]))
    code, out, err = cli(capsys, served, tokens, "awards", "send", str(bad))
    assert code == quota_cli.EXIT_API
    assert err.splitlines()[1] == f"  {bad}: awards.0.energy_mwh: must be a number, not text"
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"interval_start": f"{day}T00:00", "energy_mwh": 0.07}]))
    code, out, err = cli(capsys, served, tokens, "--role", "operator", "awards", "send", str(good))
    assert code == quota_cli.EXIT_API
    assert err.startswith(f"minerd quota: awards in {good} refused: POST /api/v1/awards: HTTP 403")
    assert stored(site, day) == []

    code, out, err = cli(capsys, served, tokens, "awards", "send", str(tmp_path / "none.csv"))
    assert code == quota_cli.EXIT_USAGE
    assert err == f"minerd quota: cannot read {tmp_path / 'none.csv'}: No such file or directory\n"


def test_json_and_replace(
    site: OpsSite,
    served: ServedSite,
    tokens: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    day = local_day(site, 2)
    path = tmp_path / "awards.txt"  # no suffix to go by: the first character says JSON
    path.write_text(
        json.dumps(
            {
                "awards": [
                    {"interval_start": f"{day}T{h:02d}:00", "energy_mwh": 0.07} for h in range(3)
                ],
                "reference": "korem-2",
            }
        )
    )
    code, out, err = cli(capsys, served, tokens, "awards", "send", str(path))
    assert (code, err) == (0, "")
    assert out.startswith("awards stored: 3 new, 0 repeated")
    ids = _ids(site, day)
    revised = tmp_path / "revised.csv"
    revised.write_text(
        f"date;hour;energy_mwh\n{day};1;0,065\n{day};3;0,05\n"  # hours 1 and 3: 00:00, 02:00
    )
    code, out, err = cli(
        capsys,
        served,
        tokens,
        "awards",
        "send",
        str(revised),
        "--replace",
        "--idempotency-key",
        "r1",
    )
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "awards stored: 2 new, 0 repeated, 2 superseded, 1 withdrawn"
    assert stored(site, day) == [(local_s(day, 0), 65.0, None), (local_s(day, 2), 50.0, None)]
    assert ids[1] not in _ids(site, day)


def _record(start_s: float, imported_kwh: float, note: str = "") -> SettlementRecord:
    return SettlementRecord(
        interval_start_s=start_s,
        interval_s=H,
        imported_kwh=imported_kwh,
        integrated_kwh=imported_kwh + 0.2,
        register_kwh=imported_kwh,
        peak_kw=imported_kwh * 1.1,
        seconds_over=4.0,
        covered_s=H,
        samples=3600,
        note=note,
    )


def test_settlement_report_for_a_day(
    site: OpsSite,
    served: ServedSite,
    tokens: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    day = local_day(site, -1)
    path = tmp_path / "yesterday.csv"
    path.write_text(f"interval_start,energy_mwh\n{day}T00:00,0.07\n{day}T01:00,0.06\n")
    assert cli(capsys, served, tokens, "awards", "send", str(path))[0] == 0
    site.stores.awards.put_settlement(_record(local_s(day, 0), 69.0))
    site.stores.awards.put_settlement(_record(local_s(day, 1), 62.0))
    site.stores.awards.put_settlement(_record(local_s(day, 2), 40.0, "meter gap 12 s"))
    site.stores.awards.put_settlement(_record(local_s(day + timedelta(days=1), 0), 1.0))

    code, out, err = cli(capsys, served, tokens, "--role", "operator", "settlement", "yesterday")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"settlement ops-site {day} (Asia/Kolkata): 3 closed intervals",
        "interval    awarded MWh imported MWh deviation MWh   dev %   peak kW  over s  source",
        "00:00-01:00       0.070        0.069        -0.001   -1.43      75.9     4.0  register",
        "01:00-02:00       0.060        0.062        +0.002   +3.33      68.2     4.0  register",
        "02:00-03:00           -        0.040             -       -      44.0     4.0  register"
        "  meter gap 12 s",
        "total: awarded 0.130 MWh, imported 0.131 MWh in the intervals with an award, "
        "deviation +0.001 MWh; 1 over the award, 1 under 99 %; 12.0 s over a power limit",
    ]
    code, by_date, _ = cli(capsys, served, tokens, "settlement", day.isoformat())
    assert (code, by_date) == (0, out)

    code, text, err = cli(capsys, served, tokens, "settlement", day.isoformat(), "--csv")
    assert (code, err) == (0, "")
    rows = text.splitlines()
    assert rows[0].startswith("interval_start,interval_end,awarded_mwh,imported_mwh")
    assert [r.split(",")[:4] for r in rows[1:]] == [
        [iso(local_s(day, 0)), iso(local_s(day, 1)), "0.070000", "0.069000"],
        [iso(local_s(day, 1)), iso(local_s(day, 2)), "0.060000", "0.062000"],
        [iso(local_s(day, 2)), iso(local_s(day, 3)), "", "0.040000"],
    ]

    code, out, err = cli(capsys, served, tokens, "settlement")  # today: its first hour
    assert code == 0
    assert out.splitlines()[0] == (
        f"settlement ops-site {local_day(site, 0)} (Asia/Kolkata): 1 closed interval"
    )
    assert out.splitlines()[2].startswith("00:00-01:00           -        0.001")
    code, out, err = cli(capsys, served, tokens, "--role", "viewer", "settlement")
    assert code == quota_cli.EXIT_API and "HTTP 403" in err
    code, out, err = cli(capsys, served, tokens, "settlement", "last week")
    assert code == quota_cli.EXIT_USAGE
    assert err == "minerd quota: day 'last week': expected YYYY-MM-DD, today or yesterday\n"
