"""The one award parser: the market's date-and-hour form in a DST zone and in Almaty, local
times without an offset, and what is refused with which words."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from minerd.runtime.award_input import AwardInputError, Rules, parse_csv_text, parse_json

BERLIN = Rules(ZoneInfo("Europe/Berlin"), 3600.0)
ALMATY = Rules(ZoneInfo("Asia/Almaty"), 3600.0)


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_date_and_hour_on_the_spring_dst_day() -> None:
    # 2026-03-29 in Berlin has 23 hours: hour 3 is 03:00 CEST (01:00Z), hour 23 the last.
    batch = parse_csv_text(
        "date,hour,energy_mwh\n2026-03-29,1,1\n2026-03-29,3,2\n2026-03-29,23,3\n", BERLIN
    )
    assert [a.start_s for a in batch.lines] == [
        utc("2026-03-28T23:00:00"),
        utc("2026-03-29T01:00:00"),
        utc("2026-03-29T21:00:00"),
    ]
    assert [a.end_s - a.start_s for a in batch.lines] == [3600.0] * 3
    with pytest.raises(AwardInputError) as exc:
        parse_csv_text("date,hour,energy_mwh\n2026-03-29,24,1\n", BERLIN)
    assert str(exc.value.problems[0]) == (
        "line 2: hour: must be a whole number 1..23: 2026-03-29 has 23 intervals of 3600 s "
        "in Europe/Berlin"
    )
    autumn = parse_json([{"date": "2026-10-25", "hour": 25, "energy_mwh": 1}], BERLIN)
    assert autumn.lines[0].start_s == utc("2026-10-25T22:00:00")  # 25th hour: 23:00 CET


def test_almaty_local_times_and_the_market_hour_agree() -> None:
    by_hour = parse_json([{"date": "2026-11-30", "hour": 15, "energy_mwh": 42}], ALMATY)
    by_time = parse_json([{"interval_start": "2026-11-30T14:00", "energy_mwh": 42}], ALMATY)
    with_offset = parse_json([{"interval_start": "2026-11-30T09:00:00Z", "energy_mwh": 42}], ALMATY)
    assert by_hour.lines[0].start_s == by_time.lines[0].start_s == with_offset.lines[0].start_s
    assert by_hour.lines[0].start_s == utc("2026-11-30T09:00:00")
    assert by_hour.lines[0].energy_kwh == 42_000.0


@pytest.mark.parametrize(
    ("item", "field", "words"),
    [
        ({"interval_start": "2026-03-29T02:00", "energy_mwh": 1}, "interval_start", "DST gap"),
        ({"interval_start": "2026-10-25T02:00", "energy_mwh": 1}, "interval_start", "twice"),
        ({"date": "2026-03-29", "energy_mwh": 1}, "hour", "is required"),
        ({"date": "29.03.2026", "hour": 1, "energy_mwh": 1}, "date", "not a date"),
        (
            {
                "interval_start": "2026-03-29T05:00",
                "date": "2026-03-29",
                "hour": 1,
                "energy_mwh": 1,
            },
            "interval_start",
            "not both",
        ),
        ({"interval_start": "2026-03-29T05:00", "energy_mwh": True}, "energy_mwh", "number"),
        (
            {"interval_start": "2026-03-29T05:00", "energy_mwh": 1, "interval_s": 700},
            "interval_s",
            "divide a day",
        ),
    ],
)
def test_refusals_name_the_field(item: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(AwardInputError) as exc:
        parse_json([item], BERLIN)
    first = exc.value.problems[0]
    assert (first.where, first.field) == ("awards.0", field)
    assert words in first.message


def test_fifteen_minute_intervals_and_a_replace_batch() -> None:
    quarter = Rules(ZoneInfo("Europe/Berlin"), 900.0)
    batch = parse_json(
        {"awards": [{"date": "2026-03-29", "hour": 9, "energy_mwh": 0.25}], "replace": True},
        quarter,
    )
    assert batch.replace and batch.lines[0].start_s == utc("2026-03-29T01:00:00")
    with pytest.raises(AwardInputError, match="not the start of a 900 s interval"):
        parse_json([{"interval_start": "2026-03-29T05:10", "energy_mwh": 1}], quarter)
