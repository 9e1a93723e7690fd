"""The shared record of the allocations sent (cluster.sent_store): round trip, every bad
field refused naming the bucket, and a site's list bounded only in the safe direction (a
merged allocation spans both and runs at the higher power, so the silent site's use bound of
region_regive can only grow)."""

from __future__ import annotations

import json

import pytest

from minerd.cluster.region_regive import SentAllocation, SilentSite, use_bound
from minerd.cluster.sent_store import (
    MAX_PER_SITE,
    SentRecord,
    bounded,
    decode_sent,
    encode_sent,
    merged,
)
from minerd.errors import ClusterError

BUCKET = "minerd-r1-sent"


def test_the_record_round_trips() -> None:
    record = SentRecord(
        1_800_000_000.0,
        {
            "big": (SentAllocation(1_800_000_010.0, 20.0, 60_000.0),),
            "small": (
                SentAllocation(1_800_000_010.0, 20.0, 30_000.0),
                SentAllocation(1_800_000_030.5, 20.0, 25_000.0),
            ),
        },
    )
    assert decode_sent(encode_sent(record), BUCKET) == record


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "allocations sent unreadable"),
        (b'{"sites": {}}', "from_s"),
        (b'{"from_s": -1, "sites": {}}', "-1 is not a finite number"),
        (b'{"from_s": 1, "sites": {"a": [[1, 2]]}}', "[issued_at_s, lease_s, allocation_w]"),
        (b'{"from_s": 1, "sites": {"a": [[1, 2, "x"]]}}', "'x' is not a finite number"),
        (b'{"from_s": 1, "sites": {"": []}}', "a list of allocations per site name"),
    ],
)
def test_a_bad_record_is_refused_naming_the_bucket(body: bytes, says: str) -> None:
    with pytest.raises(ClusterError) as err:
        decode_sent(body, BUCKET)
    assert BUCKET in str(err.value) and says in str(err.value)


def test_a_long_history_is_merged_up_never_down() -> None:
    # Allocations alternating 10 and 40 kW every 20 s: far more than the list keeps.
    sent = [
        SentAllocation(1_000.0 + 20.0 * k, 20.0, 40_000.0 if k % 2 else 10_000.0)
        for k in range(3 * MAX_PER_SITE)
    ]
    kept = bounded(sent, keep_from_s=0.0)
    assert len(kept) == MAX_PER_SITE
    assert kept[0].issued_at_s == sent[0].issued_at_s  # spans all of it
    assert kept[-1] == sent[-1]  # the newest stay as sent
    # At every moment, the kept list allows at least what was sent.
    for a in sent:
        t_s = a.issued_at_s + 1.0
        cap_w = max(k.allocation_w for k in kept if k.issued_at_s <= t_s < k.ends_at_s)
        assert cap_w >= a.allocation_w
    # So the silent site's use bound over an interval can only be larger.
    start_s, end_s = 1_000.0, 1_000.0 + 20.0 * len(sent) + 600.0
    exact = use_bound(start_s, end_s, 1_000.0, SilentSite(5_000.0, tuple(sent)), 5.0)
    merged_up = use_bound(start_s, end_s, 1_000.0, SilentSite(5_000.0, kept), 5.0)
    assert merged_up.bound_kwh >= exact.bound_kwh
    # Allocations that ended before keep_from_s are dropped.
    assert bounded(sent, keep_from_s=sent[-1].issued_at_s) == (sent[-1],)


def test_two_histories_merge_each_allocation_once_in_issue_order() -> None:
    a = SentAllocation(10.0, 20.0, 1.0)
    b = SentAllocation(30.0, 20.0, 2.0)
    c = SentAllocation(50.0, 20.0, 3.0)
    got = merged({"s": [a, b]}, {"s": [b, c], "t": [a]})
    assert got == {"s": [a, b, c], "t": [a]}


def test_the_record_stays_under_a_nats_message_for_a_hundred_sites() -> None:
    sent = tuple(
        SentAllocation(1_800_000_000.123 + 20.0 * k, 20.0, 12_345_678.9)
        for k in range(MAX_PER_SITE)
    )
    size = len(
        encode_sent(SentRecord(1_800_000_000.0, {f"site-{n:03d}": sent for n in range(100)}))
    )
    assert size < 1024 * 1024  # nats-server's default max_payload
    assert json.loads(encode_sent(SentRecord(1.0, {})))["sites"] == {}
