"""A site's regional lease across a restart, pure: saved, read back, restored in force or
already over (fail-safe with the expiry reason), never fresher than a grant after it, and a
corrupt saved value refused with a ValueError (the daemon then ignores it)."""

from __future__ import annotations

import json
import math

import pytest

from minerd.control.region_lease import (
    ORIGIN_REGION,
    REASON_EXPIRED,
    REASON_NONE_YET,
    RegionalGrant,
    RegionalLease,
    SavedLease,
)
from minerd.model import EffectiveLimit

T0 = 1_800_000_000.0
CONTRACT = EffectiveLimit(100.0, "contracted")


def grant(seq: int, kw: float, at_s: float, rev: int = 3, lease_s: float = 30.0) -> RegionalGrant:
    return RegionalGrant("coord-1", rev, seq, at_s, lease_s, kw)


def running_lease() -> RegionalLease:
    """A lease that took seq 7 at T0 (rev 3, 60 kW, lease 30 s): it ends at T0 + 30."""
    lease = RegionalLease()
    assert lease.accept(grant(7, 60.0, T0), T0) == ""
    return lease


def through_disk(lease: RegionalLease) -> SavedLease:
    """What the daemon writes and reads back (JSON in the state table)."""
    saved = lease.saved()
    assert saved is not None
    return SavedLease.from_state(json.loads(json.dumps(saved.to_state(), allow_nan=False)))


def test_nothing_to_save_before_the_first_grant() -> None:
    assert RegionalLease().saved() is None


def test_the_saved_lease_reads_back_as_it_was() -> None:
    lease = running_lease()
    back = through_disk(lease)
    assert back == lease.saved()
    assert back.grant == grant(7, 60.0, T0) and back.expires_at_s == T0 + 30.0


def test_restored_before_its_end_it_is_in_force_until_then() -> None:
    restored = RegionalLease()
    restored.restore(through_disk(running_lease()), T0 + 12.0)  # down 12 s
    assert restored.valid(T0 + 12.0)
    assert restored.allocation_kw(T0 + 12.0) == 60.0
    assert restored.cap(CONTRACT, T0 + 12.0) == EffectiveLimit(60.0, ORIGIN_REGION)
    assert restored.failsafe_reason(T0 + 29.9) == ""
    # Its end is the saved one, not a fresh lease_s from the restart.
    assert restored.expires_at_s == T0 + 30.0
    reason = restored.failsafe_reason(T0 + 30.0)
    assert reason.startswith(REASON_EXPIRED) and "coord-1" in reason and "revision 3" in reason
    assert restored.cap(CONTRACT, T0 + 30.0) == CONTRACT  # fail-safe takes it from here
    assert restored.accepted == 0  # restored, not taken off the wire


def test_restored_after_its_end_the_site_is_in_failsafe_as_if_it_had_run() -> None:
    ran = running_lease()
    restored = RegionalLease()
    restored.restore(through_disk(ran), T0 + 45.0)  # down past the end
    assert not restored.valid(T0 + 45.0)
    assert restored.allocation_kw(T0 + 45.0) is None
    assert restored.failsafe_reason(T0 + 45.0) == ran.failsafe_reason(T0 + 45.0)
    assert restored.failsafe_reason(T0 + 45.0).startswith(REASON_EXPIRED)
    assert restored.cap(CONTRACT, T0 + 45.0) == CONTRACT
    # Until the coordinator's next allocation.
    assert restored.accept(grant(8, 50.0, T0 + 46.0), T0 + 46.0) == ""
    assert restored.cap(CONTRACT, T0 + 46.0) == EffectiveLimit(50.0, ORIGIN_REGION)


def test_a_wall_clock_set_back_while_down_does_not_stretch_the_restored_lease() -> None:
    restored = RegionalLease()
    restored.restore(through_disk(running_lease()), T0 - 3600.0)
    assert restored.expires_at_s == T0 - 3600.0 + 30.0  # at most lease_s from now


def test_any_newer_grant_wins_over_the_restored_one_and_older_ones_are_fenced() -> None:
    now_s = T0 + 5.0
    restored = RegionalLease()
    restored.restore(through_disk(running_lease()), now_s)
    # Older than what the site had taken before its restart: refused, as if it had run.
    assert "fenced" in restored.accept(grant(99, 90.0, now_s, rev=2), now_s)
    assert "replayed" in restored.accept(grant(7, 90.0, now_s), now_s)
    assert "replayed" in restored.accept(grant(6, 90.0, now_s), now_s)
    assert restored.allocation_kw(now_s) == 60.0 and restored.refused == 3
    # The same coordinator's next seq replaces it, cut or raise, with its own lease.
    assert restored.accept(grant(8, 40.0, now_s), now_s) == ""
    assert restored.allocation_kw(now_s) == 40.0 and restored.expires_at_s == now_s + 30.0
    # A new leadership (higher revision) replaces it whatever its seq.
    assert restored.accept(grant(1, 45.0, now_s + 1.0, rev=4), now_s + 1.0) == ""
    assert restored.allocation_kw(now_s + 1.0) == 45.0 and restored.newest_revision == 4


def test_a_grant_taken_before_the_restore_is_kept() -> None:
    lease = RegionalLease()
    assert lease.accept(grant(1, 20.0, T0 + 5.0, rev=4), T0 + 5.0) == ""
    lease.restore(through_disk(running_lease()), T0 + 5.0)
    assert lease.last == grant(1, 20.0, T0 + 5.0, rev=4) and lease.newest_revision == 4


def good_state() -> dict[str, object]:
    saved = running_lease().saved()
    assert saved is not None
    return dict(saved.to_state())


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"coordinator_id": ""}, "coordinator_id"),
        ({"coordinator_id": 7}, "coordinator_id"),
        ({"lease_revision": True}, "lease_revision"),
        ({"lease_revision": 3.5}, "lease_revision"),
        ({"seq": -1}, "seq"),
        ({"seq": "7"}, "seq"),
        ({"issued_at_s": math.nan}, "issued_at_s"),
        ({"allocation_kw": "60"}, "allocation_kw"),
        ({"allocation_kw": -1.0}, "allocation"),
        ({"lease_s": 0.0}, "lease_s"),
        ({"expires_at_s": math.inf}, "expires_at_s"),
        ({"expires_at_s": T0 + 31.0}, "after its grant"),
        ({"expires_at_s": None}, "expires_at_s"),
    ],
)
def test_a_corrupt_saved_lease_is_refused_naming_the_field(
    change: dict[str, object], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        SavedLease.from_state({**good_state(), **change})


@pytest.mark.parametrize("value", [None, 42, "lease", [1, 2], {}])
def test_a_saved_value_that_is_no_lease_at_all_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="saved regional lease"):
        SavedLease.from_state(value)


def test_an_empty_lease_is_the_behaviour_before_the_first_allocation() -> None:
    lease = RegionalLease()
    assert lease.failsafe_reason(T0) == REASON_NONE_YET
    assert lease.cap(CONTRACT, T0) == CONTRACT
