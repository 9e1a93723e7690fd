"""The wire messages: round trips, versioning, every bad field refused with its sender named."""

from __future__ import annotations

import dataclasses
import json

import pytest
from cluster_fleet import by_shard, mixed_fleet

from minerd.cluster.curve import build_curve
from minerd.cluster.messages import (
    Budget,
    ShardAggregate,
    decode_aggregate,
    decode_budget,
    encode_aggregate,
    encode_budget,
)
from minerd.control.planner import PlanConstraints
from minerd.errors import ClusterError

SUBJECT = "minerd.site1.shard.s1.aggregate"


def aggregate(n: int = 2000) -> ShardAggregate:
    rigs = by_shard(mixed_fleet(n))["s1"]
    curve = build_curve(rigs, PlanConstraints(min_on_s=60.0, min_off_s=60.0))
    return ShardAggregate(
        "site1", "s1", 7, 1_800_000_000.5, 1.5e6, 60_000.0, 1.6e6, len(rigs), 490, 400, 3, 42,
        False, curve, 1.45e6, 1.52e6,
    )  # fmt: skip


def budget(**kw: object) -> Budget:
    fields: dict[str, object] = dict(
        site="site1", shard_id="s1", controller_id="c1", lease_revision=5, seq=3,
        sent_at_s=1_800_000_000.0, budget_w=123_456.5, failsafe_w=50_000.0, max_wakes=12,
    )  # fmt: skip
    fields.update(kw)
    return Budget(**fields)  # type: ignore[arg-type]


def test_aggregate_round_trips_with_its_curve() -> None:
    a = aggregate()
    assert a.curve.classes  # a real curve, several classes
    assert decode_aggregate(encode_aggregate(a), SUBJECT) == a


@pytest.mark.parametrize("wakes", [12, None, 0])
def test_budget_round_trips(wakes: int | None) -> None:
    b = budget(max_wakes=wakes)
    assert decode_budget(encode_budget(b), "minerd.site1.shard.s1.budget") == b


def test_aggregate_carries_the_uncounted_total_and_an_older_one_means_none() -> None:
    a = dataclasses.replace(aggregate(200), uncounted_total_w=12_345.5)
    assert decode_aggregate(encode_aggregate(a), SUBJECT) == a
    older = json.loads(encode_aggregate(a))
    del older["uncounted_total_w"]  # a shard from before the running total
    assert decode_aggregate(json.dumps(older).encode(), SUBJECT).uncounted_total_w == 0.0
    older["uncounted_total_w"] = -1.0
    with pytest.raises(ClusterError, match="uncounted_total_w must be a finite number >= 0"):
        decode_aggregate(json.dumps(older).encode(), SUBJECT)


def test_budget_carries_the_sites_overload_and_an_older_one_means_none() -> None:
    b = budget(overload_w=3_300.0)
    assert decode_budget(encode_budget(b), "minerd.site1.shard.s1.budget") == b
    older = json.loads(encode_budget(budget()))
    del older["overload_w"]  # a controller from before overload sheds
    got = decode_budget(json.dumps(older).encode(), "minerd.site1.shard.s1.budget")
    assert got.overload_w == 0.0


def test_budget_carries_the_economics_filter_and_an_older_one_means_none() -> None:
    b = budget(max_j_per_th=24.5)
    assert decode_budget(encode_budget(b), "minerd.site1.shard.s1.budget") == b
    assert "max_j_per_th" not in json.loads(encode_budget(budget()))  # none: not sent
    older = json.loads(encode_budget(budget()))  # a controller from before shard economics
    got = decode_budget(json.dumps(older).encode(), "minerd.site1.shard.s1.budget")
    assert got.max_j_per_th is None
    older["max_j_per_th"] = None
    got = decode_budget(json.dumps(older).encode(), "minerd.site1.shard.s1.budget")
    assert got.max_j_per_th is None


def test_aggregate_stays_small_whatever_the_shard_size() -> None:
    # The curve has one row per class, not per rig: 10x the rigs, about the same bytes.
    small, large = len(encode_aggregate(aggregate(2000))), len(encode_aggregate(aggregate(20000)))
    assert large < 2 * small
    assert large < 64 * 1024  # far under the NATS 1 MB max payload


def mutate(raw: bytes, **changes: object) -> bytes:
    obj = json.loads(raw)
    obj.update(changes)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"v": 2}, "version 2"),
        ({"type": "aggregate"}, "type"),
        ({"budget_w": -1.0}, "budget_w"),
        ({"budget_w": "100"}, "budget_w"),
        ({"lease_revision": 1.5}, "lease_revision"),
        ({"lease_revision": True}, "lease_revision"),
        ({"max_wakes": -3}, "max_wakes"),
        ({"shard": ""}, "shard"),
        ({"overload_w": -1.0}, "overload_w"),
        ({"overload_w": float("inf")}, "overload_w"),
        ({"max_j_per_th": 0.0}, "max_j_per_th"),
        ({"max_j_per_th": -20.0}, "max_j_per_th"),
        ({"max_j_per_th": "30"}, "max_j_per_th"),
    ],
)
def test_bad_budget_is_refused_naming_sender_and_subject(
    changes: dict[str, object], says: str
) -> None:
    raw = mutate(encode_budget(budget()), **changes)
    with pytest.raises(ClusterError) as err:
        decode_budget(raw, "minerd.site1.shard.s1.budget")
    assert says in str(err.value)
    assert "controller c1" in str(err.value)
    assert "minerd.site1.shard.s1.budget" in str(err.value)


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"rigs": [1, 2, 3]}, "rigs"),
        ({"curve": {"fixed_w": 0, "release_w": 0, "classes": [[1, 2, 3]]}}, "curve class"),
        (
            {
                "curve": {
                    "fixed_w": 0,
                    "release_w": 0,
                    "classes": [[1, 9, 1, False, [[0, 1, True]]]],
                }
            },
            "dp_w",
        ),
        ({"power_w": float("nan")}, "power_w"),
        ({"failsafe": "no"}, "failsafe"),
    ],
)
def test_bad_aggregate_is_refused(changes: dict[str, object], says: str) -> None:
    raw = mutate(encode_aggregate(aggregate(200)), **changes)
    with pytest.raises(ClusterError) as err:
        decode_aggregate(raw, SUBJECT)
    assert says in str(err.value)
    assert "shard s1" in str(err.value)


def test_not_json_is_refused() -> None:
    for raw in (b"\xff\xfe", b"[1,2]", b"{"):
        with pytest.raises(ClusterError):
            decode_budget(raw, "x")
