"""The award inbox folder: a good file is imported and moved to processed/, a bad one to
rejected/ with the reason beside it, the same file twice is stored once, a file still being
written waits, and a storage failure leaves the file to be tried again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from minerd.clock import ManualClock
from minerd.model import QuotaSource
from minerd.runtime.award_inbox import AwardInbox, InboxResult
from minerd.runtime.award_input import Rules
from minerd.runtime.service import SiteService
from minerd.storage import Database, Stores

START_S = 1_800_000_000.0  # 2027-01-15T08:00Z
DAY = 86_400.0
GOOD = "interval_start,energy_mwh\n2027-01-16T00:00,1.5\n2027-01-16T01:00,1.25\n"


class FakeSite:
    def __init__(self, stores: Stores, clock: ManualClock) -> None:
        self.stores = stores
        self.clock = clock
        self.changes = 0

    def quotas_changed(self) -> None:
        self.changes += 1


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FakeSite]:
    db = Database(tmp_path / "inbox.sqlite")
    yield FakeSite(Stores.open(db), ManualClock(START_S))
    db.close()


@pytest.fixture
def inbox(tmp_path: Path, site: FakeSite) -> AwardInbox:
    folder = tmp_path / "inbox"
    folder.mkdir()
    rules = Rules(ZoneInfo("Asia/Almaty"), 3600.0)
    return AwardInbox(cast(SiteService, site), folder, rules, site.clock)


async def settle(inbox: AwardInbox) -> list[InboxResult]:
    """Two polls: a file is taken once it is unchanged from one poll to the next."""
    first = await inbox.poll_once()
    assert first == []
    return await inbox.poll_once()


def stored(site: FakeSite) -> list[tuple[float, QuotaSource]]:
    return [(a.energy_kwh, a.source) for a in site.stores.awards.in_range(START_S, START_S + DAY)]


@pytest.mark.asyncio
async def test_inbox_good_file_imported_and_moved(inbox: AwardInbox, site: FakeSite) -> None:
    (inbox.folder / "korem-2027-01-16.csv").write_text(GOOD)
    (inbox.folder / "notes.txt").write_text("not an award file")
    results = await settle(inbox)
    assert [(r.name, r.fate) for r in results] == [("korem-2027-01-16.csv", "imported")]
    assert stored(site) == [(1500.0, QuotaSource.FILE), (1250.0, QuotaSource.FILE)]
    assert (inbox.folder / "processed" / "korem-2027-01-16.csv").read_text() == GOOD
    assert not (inbox.folder / "korem-2027-01-16.csv").exists()
    assert (inbox.folder / "notes.txt").exists()  # other files are left alone
    audit = site.stores.audit.query()
    assert [(e.actor, e.action) for e in audit] == [
        ("award-inbox:korem-2027-01-16.csv", "award.put")
    ]
    assert site.changes == 1


@pytest.mark.asyncio
async def test_inbox_same_file_twice_is_stored_once(inbox: AwardInbox, site: FakeSite) -> None:
    (inbox.folder / "day.csv").write_text(GOOD)
    await settle(inbox)
    (inbox.folder / "day.csv").write_text(GOOD)  # dropped again, same content
    again = await settle(inbox)
    assert [(r.name, r.fate) for r in again] == [("day.csv", "repeated")]
    assert len(site.stores.awards.history(START_S, START_S + DAY)) == 2
    # both copies kept, the second under a new name
    names = sorted(p.name for p in (inbox.folder / "processed").iterdir())
    assert names == ["day.1.csv", "day.csv"]
    assert site.changes == 1


@pytest.mark.asyncio
async def test_inbox_bad_file_rejected_with_reason(inbox: AwardInbox, site: FakeSite) -> None:
    bad = "interval_start,energy_mwh\n2027-01-16T00:00,1\n2027-01-16T00:30,2\n2027-01-16T02:00,x\n"
    (inbox.folder / "bad.csv").write_text(bad)
    (inbox.folder / "bad.json").write_text('[{"interval_start": "2027-01-16T00:00"}]')
    results = await settle(inbox)
    assert [(r.name, r.fate) for r in results] == [
        ("bad.csv", "rejected"),
        ("bad.json", "rejected"),
    ]
    reason = (inbox.folder / "rejected" / "bad.csv.error.txt").read_text()
    lines = reason.strip().split("\n")
    assert lines[0].startswith("line 3: interval_start: ")
    assert "not the start of a 3600 s interval" in lines[0]
    assert lines[1] == "line 4: energy_mwh: 'x' is not a number"
    json_reason = (inbox.folder / "rejected" / "bad.json.error.txt").read_text()
    assert json_reason.strip() == "awards.0: energy_mwh: is required"
    assert (inbox.folder / "rejected" / "bad.csv").read_text() == bad
    assert stored(site) == []  # nothing of a bad file is stored
    assert site.changes == 0


@pytest.mark.asyncio
async def test_inbox_waits_for_a_file_being_written(inbox: AwardInbox, site: FakeSite) -> None:
    path = inbox.folder / "growing.csv"
    path.write_text("interval_start,energy_mwh\n")
    assert await inbox.poll_once() == []
    with path.open("a") as f:  # the writer is not done yet
        f.write("2027-01-16T00:00,1.5\n")
    assert await inbox.poll_once() == []
    results = await inbox.poll_once()
    assert [r.fate for r in results] == ["imported"]
    assert stored(site) == [(1500.0, QuotaSource.FILE)]


@pytest.mark.asyncio
async def test_inbox_storage_failure_keeps_the_file(inbox: AwardInbox, site: FakeSite) -> None:
    (inbox.folder / "day.json").write_text(
        '{"awards": [{"interval_start": "2027-01-16T00:00", "energy_mwh": 2}]}'
    )
    await inbox.poll_once()
    site.stores.db.close()  # the disk is gone: nothing can be stored
    results = await inbox.poll_once()
    assert [r.fate for r in results] == ["retry"]
    assert (inbox.folder / "day.json").exists()
    assert not (inbox.folder / "processed").exists()


@pytest.mark.asyncio
async def test_inbox_run_polls_on_the_injected_clock(inbox: AwardInbox, site: FakeSite) -> None:
    (inbox.folder / "day.csv").write_text(GOOD)
    task = asyncio.create_task(inbox.run())
    try:
        for _ in range(200):
            await asyncio.sleep(0)
            if (inbox.folder / "processed" / "day.csv").exists():
                break
            site.clock.advance(inbox.poll_s)
            await asyncio.sleep(0.01)
        assert (inbox.folder / "processed" / "day.csv").exists()
    finally:
        task.cancel()
