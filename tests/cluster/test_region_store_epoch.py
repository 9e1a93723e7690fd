"""A site's regional lease and the coordinator's store epoch, pure, on a manual clock.

Within one epoch revisions fence as before. A grant of another epoch (the coordinator's
JetStream store was wiped: revisions restart at 1) is refused while the site's lease is
valid, with both epochs named, and taken once it has expired, its revision the newest from
then on. A site with no lease takes any epoch; a lease saved before epochs restores with an
unknown epoch (revisions alone decide). After the switch, a late message of the old epoch is
refused while the new lease runs. The site node audits the change of store once.
"""

from __future__ import annotations

import json
import logging

import pytest
from nats.aio.client import Client

from minerd.clock import ManualClock
from minerd.cluster.region import (
    Allocation,
    allocation_subject,
    decode_allocation,
    encode_allocation,
)
from minerd.cluster.region_site import ACTION_STORE_CHANGED, RegionSiteNode
from minerd.control.region_lease import RegionalGrant, RegionalLease, SavedLease

LEASE_S = 30.0
OLD, NEW = "0ld0ld0ld0ld0ld0", "9e99e99e99e99e99"
REGION, SITE = "alatau", "plant"


def grant(
    clock: ManualClock, seq: int, rev: int, epoch: str, kw: float = 40.0, coord: str = "coord-a"
) -> RegionalGrant:
    return RegionalGrant(coord, rev, seq, clock.now_s(), LEASE_S, kw, epoch)


def running(clock: ManualClock) -> RegionalLease:
    """A site that took revision 57 of the old store at now (its lease ends now + 30 s)."""
    lease = RegionalLease()
    assert lease.accept(grant(clock, 812, 57, OLD), clock.now_s()) == ""
    return lease


def test_within_one_epoch_revisions_fence_as_before() -> None:
    clock = ManualClock()
    lease = running(clock)
    clock.advance(1.0)
    why = lease.accept(grant(clock, 813, 56, OLD, 90.0, "coord-b"), clock.now_s())
    assert why.startswith("fenced: revision 56 is older than 57")
    assert "former leader" in why and "forget" not in why  # an epoch tells it is no wipe
    assert "replayed" in lease.accept(grant(clock, 812, 57, OLD, 90.0), clock.now_s())
    assert lease.accept(grant(clock, 1, 58, OLD, 35.0, "coord-b"), clock.now_s()) == ""
    assert (lease.newest_revision, lease.newest_epoch) == (58, OLD)
    assert lease.allocation_kw(clock.now_s()) == 35.0
    assert (lease.accepted, lease.refused) == (2, 2)


def test_another_epoch_waits_for_the_lease_to_expire_then_starts_the_count_anew() -> None:
    clock = ManualClock()
    lease = running(clock)
    clock.advance(10.0)
    why = lease.accept(grant(clock, 1, 2, NEW, 70.0, "coord-b"), clock.now_s())
    assert why.startswith(f"another store epoch: {NEW} (revision 2), not {OLD} (revision 57)")
    assert "taken once the current lease has expired, in 20.0s" in why
    assert lease.allocation_kw(clock.now_s()) == 40.0  # the old allocation holds meanwhile
    clock.advance(19.9)
    assert "another store epoch" in lease.accept(grant(clock, 2, 2, NEW), clock.now_s())
    assert lease.refused == 2 and lease.valid(clock.now_s())

    clock.advance(0.1)  # the lease is over: the site is on its fail-safe limit
    assert not lease.valid(clock.now_s())
    assert lease.accept(grant(clock, 3, 2, NEW, 70.0, "coord-b"), clock.now_s()) == ""
    assert (lease.newest_revision, lease.newest_epoch) == (2, NEW)
    assert lease.allocation_kw(clock.now_s()) == 70.0
    # Fencing goes on in the new store: its own older revision is refused, a newer one taken.
    clock.advance(1.0)
    assert "fenced" in lease.accept(grant(clock, 4, 1, NEW), clock.now_s())
    assert lease.accept(grant(clock, 5, 3, NEW, 60.0, "coord-c"), clock.now_s()) == ""
    assert lease.newest_revision == 3


def test_a_site_with_no_lease_takes_any_epoch() -> None:
    clock = ManualClock()
    lease = RegionalLease()
    assert lease.accept(grant(clock, 1, 1, NEW), clock.now_s()) == ""
    assert (lease.newest_revision, lease.newest_epoch) == (1, NEW)


def test_an_old_epochs_late_message_after_the_switch_is_refused_while_the_new_lease_runs() -> None:
    clock = ManualClock()
    lease = running(clock)
    late = grant(clock, 813, 57, OLD, 95.0)  # sent by the old coordinator, delivered late
    clock.advance(LEASE_S + 1.0)
    assert lease.accept(grant(clock, 1, 2, NEW, 30.0, "coord-b"), clock.now_s()) == ""
    clock.advance(1.0)
    replay = grant(clock, 900, 57, OLD, 95.0)  # a replay restamped "now": not stale itself
    for g in (late, replay):
        why = lease.accept(g, clock.now_s())
        assert why.startswith(f"another store epoch: {OLD} (revision 57), not {NEW} (revision 2)")
    assert lease.allocation_kw(clock.now_s()) == 30.0
    assert (lease.newest_revision, lease.newest_epoch) == (2, NEW)
    clock.advance(LEASE_S)  # the new lease over too: the late one is stale by now
    assert lease.accept(late, clock.now_s()).startswith("stale")


def test_the_epoch_is_saved_and_a_restored_lease_goes_on_fencing_with_it() -> None:
    clock = ManualClock()
    saved = running(clock).saved()
    assert saved is not None
    state = json.loads(json.dumps(saved.to_state(), allow_nan=False))
    assert state["store_epoch"] == OLD and state["lease_revision"] == 57
    back = SavedLease.from_state(state)
    assert back == saved

    clock.advance(5.0)  # restarted within the lease
    lease = RegionalLease()
    lease.restore(back, clock.now_s())
    assert (lease.newest_revision, lease.newest_epoch) == (57, OLD)
    assert "another store epoch" in lease.accept(grant(clock, 1, 2, NEW), clock.now_s())
    clock.advance(LEASE_S)
    assert lease.accept(grant(clock, 2, 2, NEW), clock.now_s()) == ""


def test_a_lease_saved_before_epochs_restores_and_revisions_alone_decide() -> None:
    clock = ManualClock()
    old_state = {
        "coordinator_id": "coord-a",
        "lease_revision": 57,
        "seq": 812,
        "issued_at_s": clock.now_s(),
        "lease_s": LEASE_S,
        "allocation_kw": 40.0,
        "expires_at_s": clock.now_s() + LEASE_S,
    }
    saved = SavedLease.from_state(old_state)
    assert saved.grant.store_epoch == ""
    lease = RegionalLease()
    lease.restore(saved, clock.now_s())
    assert (lease.newest_revision, lease.newest_epoch) == (57, "")
    clock.advance(LEASE_S + 1.0)  # even once over: an unknown epoch cannot tell a wipe
    why = lease.accept(grant(clock, 1, 1, NEW), clock.now_s())
    assert "fenced" in why and "minerd region forget" in why
    # The same store's coordinator, upgraded: a newer revision, now with its epoch.
    assert lease.accept(grant(clock, 2, 60, NEW), clock.now_s()) == ""
    assert (lease.newest_revision, lease.newest_epoch) == (60, NEW)
    # An older coordinator (no epoch) of the same store goes by revision too.
    assert lease.accept(grant(clock, 3, 61, ""), clock.now_s()) == ""
    assert "fenced" in lease.accept(grant(clock, 4, 59, ""), clock.now_s())


@pytest.mark.parametrize("bad", [7, None, ["x"]])
def test_a_saved_epoch_that_is_no_string_is_refused(bad: object) -> None:
    saved = running(ManualClock()).saved()
    assert saved is not None
    with pytest.raises(ValueError, match="store_epoch"):
        SavedLease.from_state({**saved.to_state(), "store_epoch": bad})


def allocation(clock: ManualClock, seq: int, rev: int, epoch: str, kw: float) -> bytes:
    coord = "coord-a" if epoch == OLD else "coord-b"
    a = Allocation(
        REGION, SITE, coord, rev, seq, clock.now_s(), LEASE_S, kw * 1000.0, 500_000.0, (), epoch
    )
    return encode_allocation(a)


def test_an_allocation_carries_its_epoch_and_an_older_one_decodes_without() -> None:
    clock = ManualClock()
    subject = allocation_subject(REGION, SITE)
    assert decode_allocation(allocation(clock, 1, 2, NEW, 5.0), subject).store_epoch == NEW
    older = json.loads(allocation(clock, 1, 2, "", 5.0))
    assert "store_epoch" not in older  # what an older coordinator sends
    assert decode_allocation(json.dumps(older).encode(), subject).store_epoch == ""


def test_the_site_takes_the_new_store_after_expiry_and_audits_the_change_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    subject = allocation_subject(REGION, SITE)
    audits: list[tuple[str, dict[str, object]]] = []
    node = RegionSiteNode(
        Client(), REGION, SITE, RegionalLease(), clock, audit=lambda a, d: audits.append((a, d))
    )
    assert node.take(allocation(clock, 812, 57, OLD, 40.0), subject)
    clock.advance(5.0)
    with caplog.at_level(logging.WARNING, logger="minerd.cluster.region"):
        for _ in range(3):  # the new coordinator every round; refused while the lease runs
            assert not node.take(allocation(clock, 1, 2, NEW, 70.0), subject)
            clock.advance(1.0)
        clock.advance(LEASE_S)
        node.watch()  # the lease's end: fail-safe
        assert node.lease.allocation_kw(clock.now_s()) is None
        assert node.take(allocation(clock, 4, 2, NEW, 70.0), subject)
        clock.advance(1.0)
        assert node.take(allocation(clock, 5, 2, NEW, 70.0), subject)
    assert node.lease.allocation_kw(clock.now_s()) == 70.0
    refusals = [r.getMessage() for r in caplog.records if "another store epoch" in r.getMessage()]
    assert len(refusals) == 1 and OLD in refusals[0] and NEW in refusals[0]  # once, at WARNING
    changed = [d for a, d in audits if a == ACTION_STORE_CHANGED]
    assert changed == [
        {
            "actor": "coordinator coord-b",
            "from_epoch": OLD,
            "from_revision": 57,
            "to_epoch": NEW,
            "to_revision": 2,
            "seq": 4,
        }
    ]
    said = [r.getMessage() for r in caplog.records if "store changed" in r.getMessage()]
    assert len(said) == 1
    actions = [a for a, _ in audits]
    assert actions.index("region.lease_expired") < actions.index(ACTION_STORE_CHANGED)
