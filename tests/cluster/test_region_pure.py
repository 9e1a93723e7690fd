"""The regional split, its messages and a site's allocation lease: pure, no NATS."""

from __future__ import annotations

import json

import pytest
from cluster_fleet import mixed_fleet

from minerd.cluster.curve import CurveClass, ShardCurve, Upgrade, build_curve
from minerd.cluster.region import (
    Allocation,
    SiteOffer,
    allocation_subject,
    decode_allocation,
    decode_offer,
    encode_allocation,
    encode_offer,
    offer_subject,
)
from minerd.cluster.region_split import SiteBid, split_region, stage_raises
from minerd.control.planner import PlanConstraints
from minerd.control.region_lease import (
    ORIGIN_REGION,
    REASON_EXPIRED,
    REASON_NONE_YET,
    RegionalGrant,
    RegionalLease,
)
from minerd.errors import ClusterError
from minerd.model import EffectiveLimit


def rigs_curve(n: int, ths_per_kw: float, rig_kw: float = 3.0) -> ShardCurve:
    """n sleeping rigs of one class: waking one buys rig_kw at ths_per_kw."""
    up = Upgrade(rig_kw * 1000.0, rig_kw * ths_per_kw, False)
    return ShardCurve(0.0, 0.0, (CurveClass(n, 0.0, 0.0, True, (up,)),))


# ---------------------------------------------------------------- split


def test_the_more_efficient_site_gets_more_and_the_sum_stays_within_the_limit() -> None:
    bids = {
        "eff": SiteBid(rigs_curve(20, 40.0), 1_000.0, 100_000.0),
        "old": SiteBid(rigs_curve(20, 25.0), 1_000.0, 100_000.0),
    }
    alloc = split_region(50_000.0, bids)
    assert alloc["eff"] > alloc["old"]
    # The efficient site's rigs first: all 20 (60 kW) do not fit, so it takes what fits.
    assert alloc["eff"] >= 1_000.0 + 15 * 3_000.0
    assert sum(alloc.values()) <= 50_000.0 + 1e-6


def test_a_site_never_gets_more_than_its_own_limit_and_the_rest_goes_on() -> None:
    bids = {
        "eff": SiteBid(rigs_curve(20, 40.0), 1_000.0, 20_000.0),  # contract 20 kW
        "old": SiteBid(rigs_curve(20, 25.0), 1_000.0, 100_000.0),
    }
    alloc = split_region(50_000.0, bids)
    assert alloc["eff"] == pytest.approx(20_000.0)
    assert alloc["old"] == pytest.approx(30_000.0)
    assert sum(alloc.values()) <= 50_000.0 + 1e-6


def test_more_than_every_curve_can_use_is_shared_by_headroom_within_each_limit() -> None:
    bids = {
        "a": SiteBid(rigs_curve(2, 40.0), 500.0, 10_000.0),  # draws at most 6.5 kW
        "b": SiteBid(rigs_curve(2, 25.0), 500.0, 8_000.0),
    }
    alloc = split_region(1_000_000.0, bids)
    assert alloc == {"a": pytest.approx(10_000.0), "b": pytest.approx(8_000.0)}


def test_below_every_floor_the_sum_is_still_the_limit() -> None:
    fixed = ShardCurve(30_000.0, 0.0, ())
    bids = {"a": SiteBid(fixed, 0.0, 50_000.0), "b": SiteBid(fixed, 0.0, 50_000.0)}
    alloc = split_region(20_000.0, bids)
    assert sum(alloc.values()) == pytest.approx(20_000.0)
    assert alloc["a"] == pytest.approx(alloc["b"])


def test_real_curves_from_the_planner() -> None:
    rigs = mixed_fleet(400)
    c = PlanConstraints(min_on_s=60.0, min_off_s=60.0)
    curve = build_curve(rigs, c)
    bids = {s: SiteBid(curve, 2_000.0, curve.max_w * 0.8) for s in ("x", "y", "z")}
    limit_w = 1.2 * curve.max_w
    alloc = split_region(limit_w, bids)
    assert sum(alloc.values()) <= limit_w + 1e-6
    assert all(a <= curve.max_w * 0.8 + 1e-6 for a in alloc.values())


def test_raises_wait_for_the_cuts_to_be_confirmed() -> None:
    # a goes 60 -> 20 kW, b 20 -> 60 kW under a 80 kW limit: b may not take a's 40 kW
    # while a may still draw its old 60.
    first = stage_raises({"a": 20e3, "b": 60e3}, {"a": 60e3, "b": 20e3}, 80e3)
    assert first["a"] == 20e3
    assert first["b"] == pytest.approx(20e3)
    assert max(first["a"], 60e3) + first["b"] <= 80e3
    # a confirmed (it obeys 20 kW): b gets it all.
    second = stage_raises({"a": 20e3, "b": 60e3}, {"a": 20e3, "b": 20e3}, 80e3)
    assert second == {"a": 20e3, "b": 60e3}


# ---------------------------------------------------------------- messages


def offer() -> SiteOffer:
    return SiteOffer(
        "alatau", "site-a", 4, 1.8e9, 52_000.0, 1_500.0, 100_000.0, 30_000.0, 60_000.0, 9,
        build_curve(mixed_fleet(300), PlanConstraints()),
    )  # fmt: skip


def allocation(**kw: object) -> Allocation:
    fields: dict[str, object] = dict(
        region="alatau", site="site-a", coordinator_id="coord-1", lease_revision=3, seq=17,
        issued_at_s=1.8e9, lease_s=30.0, allocation_w=61_000.5, regional_limit_w=150_000.0,
    )  # fmt: skip
    fields.update(kw)
    return Allocation(**fields)  # type: ignore[arg-type]


def test_offer_and_allocation_round_trip() -> None:
    o = offer()
    assert o.curve.classes
    assert decode_offer(encode_offer(o), offer_subject("alatau", "site-a")) == o
    a = allocation()
    assert decode_allocation(encode_allocation(a), allocation_subject("alatau", "site-a")) == a


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("allocation_w", -1.0, "allocation_w"),
        ("allocation_w", "lots", "allocation_w"),
        ("lease_s", 0.0, "lease_s"),
        ("seq", 0, "seq"),
        ("v", 2, "version"),
        ("site", "site-b", "not this subject"),
    ],
)
def test_a_malformed_allocation_is_refused_naming_sender_and_subject(
    field: str, value: object, words: str
) -> None:
    body = json.loads(encode_allocation(allocation()))
    body[field] = value
    subject = allocation_subject("alatau", "site-a")
    with pytest.raises(ClusterError) as err:
        decode_allocation(json.dumps(body).encode(), subject)
    assert err.value.subject == subject
    assert err.value.peer == "coordinator coord-1"
    assert words in str(err.value)


def test_garbage_is_refused_naming_the_subject() -> None:
    with pytest.raises(ClusterError) as err:
        decode_allocation(b"\xff{", "minerd.region.alatau.site.site-a.allocation")
    assert err.value.subject.endswith("site-a.allocation")


# ---------------------------------------------------------------- the site's lease


def grant(seq: int, kw: float, at_s: float, rev: int = 3, lease_s: float = 30.0) -> RegionalGrant:
    return RegionalGrant("coord-1", rev, seq, at_s, lease_s, kw)


def test_the_lease_caps_like_a_quota_then_expires_to_failsafe() -> None:
    lease = RegionalLease()
    contract = EffectiveLimit(100.0, "contracted")
    assert lease.failsafe_reason(0.0) == REASON_NONE_YET
    assert lease.cap(contract, 0.0) == contract
    assert lease.accept(grant(1, 60.0, 1000.0), 1000.0) == ""
    assert lease.cap(contract, 1010.0) == EffectiveLimit(60.0, ORIGIN_REGION)
    # Never a raise above the site's own limit.
    quota = EffectiveLimit(40.0, "quota", "q1")
    assert lease.cap(quota, 1010.0) == quota
    # A fail-safe limit stays fail-safe (the loop treats it so).
    assert lease.cap(EffectiveLimit(80.0, "failsafe"), 1010.0).origin == "failsafe"
    assert lease.failsafe_reason(1029.9) == ""
    assert lease.failsafe_reason(1030.0).startswith(REASON_EXPIRED)
    assert lease.cap(contract, 1030.0) == contract  # the fail-safe reason takes it from here


def test_stale_fenced_and_replayed_grants_are_refused_and_counted() -> None:
    lease = RegionalLease()
    assert lease.accept(grant(5, 60.0, 1000.0, rev=4), 1000.0) == ""
    assert "fenced" in lease.accept(grant(6, 90.0, 1001.0, rev=3), 1001.0)
    assert "replayed" in lease.accept(grant(5, 90.0, 1001.0, rev=4), 1001.0)
    assert "stale" in lease.accept(grant(7, 90.0, 900.0, rev=4), 1001.0)
    assert lease.refused == 3
    assert lease.allocation_kw(1001.0) == 60.0
    # A coordinator clock ahead cannot stretch the lease past lease_s after receipt.
    assert lease.accept(grant(8, 50.0, 1500.0, rev=4), 1002.0) == ""
    assert lease.expires_at_s == 1032.0


def test_a_split_site_offers_its_shards_curves_side_by_side() -> None:
    from minerd.daemon.region_role import merged_curve

    a = ShardCurve(100.0, 10.0, (CurveClass(2, 1.0, 0.0, True, ()),))
    b = rigs_curve(3, 40.0)
    m = merged_curve([a, b])
    assert m.fixed_w == 100.0 and m.release_w == 10.0
    assert m.classes == a.classes + b.classes
    assert m.max_w == pytest.approx(a.max_w + b.max_w)
