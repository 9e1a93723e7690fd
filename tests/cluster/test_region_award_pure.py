"""Regional energy awards, pure: the split over sites (in the proportion of the power split,
each within its contract, silent sites set aside first), the request's checks, the award
in the allocation message, and the coordinator's intake (token, replay, conflict,
revision). No NATS: the coordinator's request handler is called directly."""

from __future__ import annotations

import json

import pytest
from nats.aio.client import Client

from minerd.clock import ManualClock
from minerd.cluster.coordinator import Coordinator, Round
from minerd.cluster.curve import CurveClass, ShardCurve, Upgrade
from minerd.cluster.region import (
    Allocation,
    allocation_subject,
    decode_allocation,
    encode_allocation,
)
from minerd.cluster.region_award import (
    SiteAward,
    read_awards,
    rescale,
    site_award_id,
    split_award,
)
from minerd.cluster.region_site import RegionSiteNode
from minerd.cluster.region_split import SiteBid, split_region
from minerd.control.region_lease import RegionalLease
from minerd.errors import ClusterError, QuotaError

T0 = 1_800_000_000.0
H = 1.0  # a one-hour interval
TOKEN = "tok"


def rigs_curve(n: int, ths_per_kw: float, rig_kw: float = 3.0) -> ShardCurve:
    up = Upgrade(rig_kw * 1000.0, rig_kw * ths_per_kw, False)
    return ShardCurve(0.0, 0.0, (CurveClass(n, 0.0, 0.0, True, (up,)),))


# ---------------------------------------------------------------- the split


def test_site_awards_follow_the_power_split_sum_to_the_award_and_stay_in_contract() -> None:
    bids = {
        "eff": SiteBid(rigs_curve(20, 40.0), 1_000.0, 40_000.0),
        "mid": SiteBid(rigs_curve(20, 30.0), 1_000.0, 100_000.0),
        "old": SiteBid(rigs_curve(20, 25.0), 1_000.0, 100_000.0),
    }
    targets = split_region(90_000.0, bids)
    contract = {s: b.max_import_w for s, b in bids.items()}
    energy_kwh = 60.0  # less than the power split could draw in the hour (90 kWh)
    got = split_award(energy_kwh, H, targets, contract, {})
    assert sum(got.values()) == pytest.approx(energy_kwh)
    total_w = sum(targets.values())
    for s, kwh in got.items():
        assert kwh == pytest.approx(energy_kwh * targets[s] / total_w)  # proportional
        assert kwh <= contract[s] * H / 1000.0 + 1e-9  # within its contract over the hour
    assert targets["eff"] == pytest.approx(40_000.0)  # the best rigs, up to its contract
    assert got["mid"] > got["old"] > 0.0


def test_a_site_capped_at_its_contract_passes_the_rest_to_the_others() -> None:
    targets = {"small": 10_000.0, "big": 10_000.0}
    contract = {"small": 12_000.0, "big": 100_000.0}  # small: at most 12 kWh in the hour
    got = split_award(40.0, H, targets, contract, {})
    assert got["small"] == pytest.approx(12.0)
    assert got["big"] == pytest.approx(28.0)
    assert sum(got.values()) == pytest.approx(40.0)


def test_energy_no_contract_can_take_is_not_handed_out() -> None:
    got = split_award(500.0, H, {"a": 10_000.0, "b": 5_000.0}, {"a": 20_000.0, "b": 30_000.0}, {})
    assert got == pytest.approx({"a": 20.0, "b": 30.0})
    # No power target (a regional limit of 0): no energy to anyone.
    assert split_award(50.0, H, {"a": 0.0}, {"a": 20_000.0}, {}) == {"a": 0.0}


def test_silent_sites_are_set_aside_what_they_may_draw_first() -> None:
    got = split_award(
        100.0, 0.5, {"a": 30_000.0, "b": 10_000.0}, {"a": 1e6, "b": 1e6}, {"s": 40_000.0}
    )
    assert got["s"] == pytest.approx(20.0)  # 40 kW for half an hour
    assert got["a"] == pytest.approx(60.0) and got["b"] == pytest.approx(20.0)
    # More set aside than the award: the silent sites share it, the fresh ones get none.
    short = split_award(10.0, H, {"a": 30_000.0}, {"a": 1e6}, {"s": 40_000.0, "t": 60_000.0})
    assert short == pytest.approx({"s": 4.0, "t": 6.0, "a": 0.0})


def test_a_revision_rescales_the_same_shares() -> None:
    old = {"a": 30.0, "b": 10.0}
    assert rescale(old, 40.0, 20.0) == pytest.approx({"a": 15.0, "b": 5.0})
    assert rescale(old, 0.0, 20.0) == {"a": 0.0, "b": 0.0}


def test_a_site_award_id_changes_with_its_energy_only() -> None:
    one = site_award_id("k-01", "eff", T0, T0 + 3600, 12.5)
    assert one == site_award_id("k-01", "eff", T0, T0 + 3600, 12.5)
    assert one.startswith("k-01.eff.")
    assert one != site_award_id("k-01", "eff", T0, T0 + 3600, 12.0)
    assert one != site_award_id("k-01", "old", T0, T0 + 3600, 12.5)


# ---------------------------------------------------------------- the request's awards


def award(**kw: object) -> dict[str, object]:
    return {"id": "k-01", "start_s": T0, "end_s": T0 + 3600, "energy_kwh": 50.0, **kw}


@pytest.mark.parametrize(
    ("items", "field", "words"),
    [
        ([], "awards", "non-empty list"),
        ([award(id="a b")], "awards.0.id", "A-Z"),
        ([award(), award(energy_kwh="x")], "awards.1.energy_kwh", "finite number"),
        ([award(energy_kwh=-1)], "awards.0.energy_kwh", ">= 0"),
        ([award(end_s=T0)], "awards.0.end_s", "after start_s"),
        ([award(end_s=T0 + 3_600_000)], "awards.0.end_s", "longer than"),
        ([award(energy_kwh=5e10)], "awards.0.energy_kwh", "Wh?"),
        ([award(start_s=T0 - 7200, end_s=T0 - 3600)], "awards.0.end_s", "over"),
        ([award(), award()], "awards.1.id", "repeats awards.0"),
        ([award(), award(id="k-02", start_s=T0 + 1800, end_s=T0 + 5400)], "awards.1", "overlaps"),
        ([award(issued_by="")], "awards.0.issued_by", "non-empty"),
    ],
)
def test_a_bad_award_is_refused_naming_where_and_what(
    items: list[object], field: str, words: str
) -> None:
    with pytest.raises(QuotaError) as err:
        read_awards({"awards": items}, "ops", T0)
    assert err.value.field == field
    assert words in err.value.message


def test_an_award_without_issuer_is_the_actors() -> None:
    (a,) = read_awards({"awards": [award()]}, "ops-alice", T0 + 10)
    assert (a.issued_by, a.energy_kwh, a.interval_h, a.received_at_s) == (
        "ops-alice",
        50.0,
        1.0,
        T0 + 10,
    )


# ---------------------------------------------------------------- the message


def allocation(awards: tuple[SiteAward, ...]) -> Allocation:
    return Allocation("north", "eff", "c1", 3, 7, T0, 30.0, 20_000.0, 90_000.0, awards)


def test_an_allocation_carries_the_sites_awards_and_none_when_empty() -> None:
    w = SiteAward("k-01.eff.0a1b2c3d", "k-01", T0, T0 + 3600, 12.5, 50.0, "korem")
    subject = allocation_subject("north", "eff")
    back = decode_allocation(encode_allocation(allocation((w,))), subject)
    assert back.awards == (w,)
    plain = encode_allocation(allocation(()))
    assert b"awards" not in plain  # an allocation without awards is as before
    assert decode_allocation(plain, subject).awards == ()


def test_a_bad_award_in_an_allocation_refuses_it() -> None:
    body = json.loads(encode_allocation(allocation(())))
    body["awards"] = [
        {"id": "x", "regional_id": "k", "start_s": T0, "end_s": T0 - 1, "energy_kwh": 1.0,
         "regional_energy_kwh": 2.0, "issued_by": "k"}
    ]  # fmt: skip
    with pytest.raises(ClusterError, match="end_s must be after start_s"):
        decode_allocation(json.dumps(body).encode(), allocation_subject("north", "eff"))
    body["awards"] = [{"id": "x"}]
    with pytest.raises(ClusterError, match=r"awards\.regional_id"):
        decode_allocation(json.dumps(body).encode(), allocation_subject("north", "eff"))


# ---------------------------------------------------------------- the coordinator's intake


def coordinator(audit: list[tuple[str, dict[str, object]]]) -> Coordinator:
    return Coordinator(
        Client(),
        "north",
        "c1",
        90.0,
        ManualClock(T0 + 5),
        control_token=TOKEN,
        audit=lambda a, s, d: audit.append((a, d)),
    )


def ask(c: Coordinator, items: list[object], token: str = TOKEN) -> dict[str, object]:
    body = {"awards": items, "actor": "ops-alice", "token": token}
    return c.set_awards_request(json.dumps(body).encode())


def test_awards_need_the_token_and_are_audited_replays_told_apart() -> None:
    audit: list[tuple[str, dict[str, object]]] = []
    c = coordinator(audit)
    assert ask(c, [award()], token="nope") == {"ok": False, "error": "bad token"}
    assert c.awards == {} and audit[-1][0] == "region.award.refused"
    first = ask(c, [award(issued_by="korem")])
    assert first == {"ok": True, "coordinator": "c1", "awards": [{"id": "k-01", "created": True}]}
    assert c.wake.is_set()  # a running interval is split at once
    assert c.awards_in_force["k-01"].issued_by == "korem"
    assert [a for a, _ in audit] == ["region.award.refused", "region.award.set"]
    again = ask(c, [award(issued_by="korem")])
    assert again["awards"] == [{"id": "k-01", "created": False}]
    assert len(audit) == 2  # a replay changes nothing and is not audited again
    conflict = ask(c, [award(energy_kwh=51.0)])
    assert conflict["ok"] is False and conflict["field"] == "awards.id"
    assert "other content" in str(conflict["error"])
    assert c.awards_in_force["k-01"].energy_kwh == 50.0
    bad = ask(c, [award(id="k-02", start_s=T0 + 3600, end_s=T0 + 7200), award(id="")])
    assert bad["ok"] is False and bad["field"] == "awards.1.id"
    assert "k-02" not in c.awards  # a batch is taken whole or not at all


def test_a_revision_of_a_running_interval_rescales_its_split_and_overlaps_are_replaced() -> None:
    c = coordinator([])
    ask(c, [award()])
    round_ = Round({}, {}, 0.0, 90_000.0)
    c.award_splits["k-01"] = {"eff": 30.0, "old": 20.0}  # fixed when the interval began
    ask(c, [award(id="k-01r", energy_kwh=40.0)])
    assert set(c.awards_in_force) == {"k-01r"}
    assert c.award_splits["k-01r"] == pytest.approx({"eff": 24.0, "old": 16.0})
    c._split_awards(round_, T0 + 5, 1)  # already split: not split again
    assert c.award_splits["k-01r"] == pytest.approx({"eff": 24.0, "old": 16.0})
    sent = c.site_awards("eff", T0 + 5)
    assert [(w.regional_award_id, w.energy_kwh, w.regional_energy_kwh) for w in sent] == [
        ("k-01r", pytest.approx(24.0), 40.0)
    ]
    assert c.site_awards("eff", T0 + 3600) == ()  # over: no longer sent
    # Another span overlapping it replaces it; its split waits for its own interval.
    ask(c, [award(id="k-30", start_s=T0 + 1800, end_s=T0 + 2700, energy_kwh=10.0)])
    assert set(c.awards_in_force) == {"k-30"} and "k-30" not in c.award_splits


def test_only_an_accepted_allocation_hands_its_awards_to_the_site() -> None:
    heard: list[Allocation] = []
    clock = ManualClock(T0)
    node = RegionSiteNode(Client(), "north", "eff", RegionalLease(), clock, on_awards=heard.append)
    w = SiteAward("k-01.eff.0a1b2c3d", "k-01", T0, T0 + 3600, 12.5, 50.0, "korem")
    subject = allocation_subject("north", "eff")
    assert node.take(encode_allocation(allocation((w,))), subject)
    assert [a.awards for a in heard] == [(w,)]
    fenced = Allocation("north", "eff", "c0", 2, 99, T0, 30.0, 20_000.0, 90_000.0, (w,))
    assert not node.take(encode_allocation(fenced), subject)  # an older revision
    assert not node.take(encode_allocation(allocation((w,))), subject)  # a replay of seq 7
    assert len(heard) == 1
