"""Settlement maths (table-driven) and site-timezone intervals (Almaty, a DST day in Berlin)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from minerd.control.settlement import SettlementAccumulator, SettlementSample
from minerd.intervals import (
    LocalTimeError,
    day_intervals,
    interval_bounds,
    interval_start_s,
    iso_local,
    local_to_s,
)
from minerd.model import SettlementRecord

UTCZ = ZoneInfo("UTC")
ALMATY = ZoneInfo("Asia/Almaty")
BERLIN = ZoneInfo("Europe/Berlin")
H = 3600.0


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# ---------------------------------------------------------------- intervals in a zone


def test_almaty_intervals_follow_tzdata_not_a_fixed_offset() -> None:
    # UTC+5 since 2024-03-01: local midnight of 30 Nov 2026 is 19:00Z the day before.
    assert interval_start_s(utc("2026-11-29T19:30:00"), H, ALMATY) == utc("2026-11-29T19:00:00")
    assert iso_local(utc("2026-11-29T19:00:00"), ALMATY) == "2026-11-30T00:00:00+05:00"
    day = day_intervals(date(2026, 11, 30), H, ALMATY)
    assert len(day) == 24 and day[0][0] == utc("2026-11-29T19:00:00")
    # Before the change Almaty was UTC+6: the same rule gives 18:00Z, from tzdata alone.
    assert day_intervals(date(2024, 1, 15), H, ALMATY)[0][0] == utc("2024-01-14T18:00:00")


def test_berlin_dst_spring_day_has_23_intervals_and_right_boundaries() -> None:
    day = day_intervals(date(2026, 3, 29), H, BERLIN)
    assert len(day) == 23
    assert day[0] == (utc("2026-03-28T23:00:00"), utc("2026-03-29T00:00:00"))
    # 02:00 local is skipped: the third interval is 03:00-04:00 CEST = 01:00-02:00Z
    assert day[2][0] == utc("2026-03-29T01:00:00")
    assert iso_local(day[2][0], BERLIN) == "2026-03-29T03:00:00+02:00"
    assert interval_bounds(utc("2026-03-29T01:30:00"), H, BERLIN) == day[2]
    assert day[-1][1] == utc("2026-03-29T22:00:00")  # next local midnight (CEST)
    assert len(day_intervals(date(2026, 10, 25), H, BERLIN)) == 25
    assert len(day_intervals(date(2026, 3, 29), 900.0, BERLIN)) == 92


def test_local_times_without_offset() -> None:
    assert local_to_s(datetime(2026, 11, 30, 14, 0), ALMATY) == utc("2026-11-30T09:00:00")
    with pytest.raises(LocalTimeError, match="does not exist"):
        local_to_s(datetime(2026, 3, 29, 2, 30), BERLIN)
    with pytest.raises(LocalTimeError, match="occurs twice"):
        local_to_s(datetime(2026, 10, 25, 2, 30), BERLIN)


def test_half_hour_zone_aligns_to_local_hours() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+5:30: local hours start at :30 UTC
    assert interval_start_s(utc("2026-11-30T10:10:00"), H, kolkata) == utc("2026-11-30T09:30:00")


# ---------------------------------------------------------------- settlement maths


@dataclass(frozen=True)
class Case:
    name: str
    samples: tuple[tuple[float, float, float, float | None], ...]  # t, kW, limit kW, register
    close_at_s: float
    imported_kwh: float
    integrated_kwh: float
    register_kwh: float | None
    peak_kw: float
    seconds_over: float
    note: str = ""


Samples = tuple[tuple[float, float, float, float | None], ...]  # t, kW, limit kW, register


def _steady(kw: float, limit_kw: float, reg0: float | None, every_s: float = 10.0) -> Samples:
    out: list[tuple[float, float, float, float | None]] = []
    t = 0.0
    while t < H:
        reg = None if reg0 is None else reg0 + kw * t / H
        out.append((t, kw, limit_kw, reg))
        t += every_s
    return tuple(out)


CASES = [
    Case(
        "steady, no register", _steady(1000.0, 1200.0, None), H, 1000.0, 1000.0, None, 1000.0, 0.0
    ),
    Case(
        "over the limit half the hour",
        tuple((t, 1300.0 if t < 1800 else 900.0, 1200.0, None) for t in range(0, 3600, 10)),
        H,
        1100.0,
        1100.0,
        None,
        1300.0,
        1800.0,
    ),
    Case(
        "register agrees: settled from it",
        _steady(1000.0, 1200.0, 5000.0),
        H,
        1000.0,
        1000.0,
        1000.0,
        1000.0,
        0.0,
    ),
    Case(
        "register disagrees: integral settled",
        tuple((t, 1000.0, 1200.0, 5000.0 + (1.2 * 1000.0 * t / H)) for t in range(0, 3600, 10)),
        H,
        1000.0,
        1000.0,
        # the last reading (3590 s) plus the import held to the end of the hour
        5000.0 + 1.2 * 1000.0 * 3590 / H + 1000.0 * 10 / H - 5000.0,
        1000.0,
        0.0,
        "disagrees with integrated power",
    ),
    Case(
        "register goes backwards: a fault, integral settled",
        tuple(
            (float(t), 1000.0, 1200.0, 5000.0 + 1000.0 * t / H - (50.0 if t >= 1800 else 0.0))
            for t in range(0, 3600, 10)
        ),
        H,
        1000.0,
        1000.0,
        None,
        1000.0,
        0.0,
        "went backwards",
    ),
    Case(
        "ten minutes without readings: the register fills the gap",
        tuple(
            (float(t), 1000.0, 1200.0, 5000.0 + 1000.0 * t / H)
            for t in range(0, 3600, 10)
            if not 1200 <= t < 1800 + 60
        ),
        H,
        1000.0,
        # readings stop after 1190 s, the last held 60 s: 1250..1860 s is not covered
        1000.0 - 610.0 * 1000.0 / H,
        1000.0,
        1000.0,
        0.0,
        "covers a 610 s gap",
    ),
    Case(
        # The daemon's first reading of all comes 300 s into the hour: the register starts
        # there too, so nothing counts the lead and the record says so (it used to say the
        # register covered it).
        "first reading 300 s late: the lead is a gap nobody counted",
        tuple((float(t), 1000.0, 1200.0, 5000.0 + 1000.0 * t / H) for t in range(300, 3600, 10)),
        H,
        1000.0 * 3300 / H,
        1000.0 * 3300 / H,
        1000.0 * 3300 / H,
        1000.0,
        0.0,
        "grid meter data for 3300 of 3600 s",
    ),
    Case(
        "first reading 300 s late, then a 610 s outage: the register covers the outage only",
        tuple(
            (float(t), 1000.0, 1200.0, 5000.0 + 1000.0 * t / H)
            for t in range(300, 3600, 10)
            if not 1200 <= t < 1800 + 60
        ),
        H,
        1000.0 * 3300 / H,
        1000.0 * (3300 - 610) / H,
        1000.0 * 3300 / H,
        1000.0,
        0.0,
        "covers a 610 s gap in the readings; no grid meter data for the first 300 s",
    ),
]


def _run(
    samples: tuple[tuple[float, float, float, float | None], ...],
    close_at_s: float,
    tz: ZoneInfo = UTCZ,
    start_s: float = 0.0,
) -> list[SettlementRecord]:
    acc = SettlementAccumulator(H, tz)
    out: list[SettlementRecord] = []
    for t, kw, lim, reg in samples:
        acc, closed = acc.add(SettlementSample(start_s + t, kw, lim, reg))
        out += closed
    acc, closed = acc.close(start_s + close_at_s)
    return out + closed


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_settlement_table(case: Case) -> None:
    records = _run(case.samples, case.close_at_s)
    assert len(records) == 1
    r = records[0]
    assert (r.interval_start_s, r.interval_s) == (0.0, H)
    assert r.imported_kwh == pytest.approx(case.imported_kwh, abs=1e-6)
    assert r.integrated_kwh == pytest.approx(case.integrated_kwh, abs=1e-6)
    if case.register_kwh is None:
        assert r.register_kwh is None
    else:
        assert r.register_kwh == pytest.approx(case.register_kwh, abs=1e-6)
    assert r.peak_kw == case.peak_kw
    assert r.seconds_over == pytest.approx(case.seconds_over)
    assert case.note in r.note
    assert r.samples == len(case.samples)


def test_settlement_held_sample_is_split_at_the_boundary() -> None:
    # 1000 kW from 3590 s to 3610 s: 10 s in each hour; the second hour then 500 kW.
    samples = (
        (0.0, 0.0, 2000.0, None),
        (3590.0, 1000.0, 2000.0, None),
        (3610.0, 500.0, 2000.0, None),
    )
    records = _run(samples, 2 * H)
    assert [r.interval_start_s for r in records] == [0.0, H]
    assert records[0].integrated_kwh == pytest.approx(1000.0 * 10 / H)
    # 1000 kW for 10 s, then 500 kW held for at most 60 s (a meter gap is not filled in)
    assert records[1].integrated_kwh == pytest.approx((1000.0 * 10 + 500.0 * 60) / H)
    assert "grid meter data for 70 of 3600 s" in records[1].note


def test_settlement_against_the_award_and_over_dst() -> None:
    start = utc("2026-03-28T23:00:00")  # local midnight in Berlin, the day clocks go forward
    samples = tuple((float(t), 800.0, 1000.0, None) for t in range(0, int(3 * H), 30))
    records = _run(samples, 3 * H, BERLIN, start)
    assert [iso_local(r.interval_start_s, BERLIN) for r in records] == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]
    r = records[0]
    with_award = replace(r, awarded_kwh=810.0)
    assert with_award.deviation_kwh == pytest.approx(-10.0)
    assert with_award.deviation_pct == pytest.approx(-100.0 * 10.0 / 810.0)
    assert replace(r, awarded_kwh=0.0).deviation_pct is None
