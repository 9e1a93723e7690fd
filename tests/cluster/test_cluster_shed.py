"""A split site's shed capacity and commandable power: each shard sends its own in its
aggregate (round trip; an older shard's aggregate without them decodes as unknown; a bad
one is refused naming sender and subject), and the controller sums its live shards'."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import pytest
from nats.aio.client import Client
from test_cluster_messages import SUBJECT, aggregate

from minerd.clock import system_clock
from minerd.cluster.messages import ShardAggregate, decode_aggregate, encode_aggregate
from minerd.cluster.nodes import ControllerNode
from minerd.cluster.site_shed import sum_commandable, sum_shed
from minerd.errors import ClusterError
from minerd.model import RigProtocol, ShedCapacity, ShedClass
from minerd.runtime.commandable import Commandable

HORIZONS = (5.0, 60.0, 600.0)
LUX, STOCK = RigProtocol.LUXOS, RigProtocol.STOCK


def cap(*classes: ShedClass, horizons: tuple[float, ...] = HORIZONS) -> ShedCapacity:
    return ShedCapacity(horizons, 1.05, classes)


def measured(shard: str, shed: ShedCapacity | None, able: Commandable | None) -> ShardAggregate:
    return dataclasses.replace(aggregate(200), shard_id=shard, shed=shed, commandable=able)


S1 = cap(
    ShedClass(LUX, "bitmain-s19jpro", 40, 120_000.0, (100_000.0, 110_000.0, 115_000.0)),
    ShedClass(STOCK, "bitmain-s21", 10, 35_000.0, (0.0, 0.0, 34_000.0)),
)
S2 = cap(ShedClass(LUX, "bitmain-s19jpro", 20, 60_000.0, (50_000.0, 55_000.0, 57_500.5)))


def test_aggregate_round_trips_with_shed_and_commandable() -> None:
    a = measured("s1", S1, Commandable(155_000.0, 160_000.0, 170_000.0))
    assert decode_aggregate(encode_aggregate(a), SUBJECT) == a


def test_an_older_shards_aggregate_has_them_unknown() -> None:
    raw = json.loads(encode_aggregate(measured("s1", S1, Commandable(1.0, 2.0, 3.0))))
    del raw["shed"], raw["commandable"]
    a = decode_aggregate(json.dumps(raw).encode(), SUBJECT)
    assert a.shed is None and a.commandable is None
    assert a.power_w > 0  # the rest decodes as before


def test_the_shed_figures_stay_small() -> None:
    # One row per (family, model) class, never per rig.
    a = measured("s1", S1, Commandable(1.0, 2.0, 3.0))
    extra = len(encode_aggregate(a)) - len(encode_aggregate(measured("s1", None, None)))
    assert 0 < extra < 400


def bad(**changes: object) -> bytes:
    raw = json.loads(encode_aggregate(measured("s1", S1, Commandable(1.0, 2.0, 3.0))))
    raw.update(changes)
    return json.dumps(raw).encode()


GOOD_ROW = ["luxos", "bitmain-s19jpro", 4, 100.0, [1.0, 2.0, 3.0]]


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"shed": [1, 2]}, "shed must be an object"),
        ({"shed": {"horizons_s": [0, 60], "site_factor": 1.0, "classes": []}}, "horizons"),
        ({"shed": {"horizons_s": [60, 5, 600], "site_factor": 1, "classes": []}}, "rising"),
        ({"shed": {"horizons_s": [5, 60, 600], "site_factor": -1, "classes": []}}, "site_factor"),
        (
            {"shed": {"horizons_s": [5, 60, 600], "site_factor": 1, "classes": [GOOD_ROW[:4]]}},
            "shed class",
        ),
        (
            {"shed": {"horizons_s": [5, 60], "site_factor": 1, "classes": [GOOD_ROW]}},
            "one figure per horizon",
        ),
        (
            {
                "shed": {
                    "horizons_s": [5, 60, 600],
                    "site_factor": 1,
                    "classes": [["antminer-os", *GOOD_ROW[1:]]],
                }
            },
            "firmware family",
        ),
        (
            {
                "shed": {
                    "horizons_s": [5, 60, 600],
                    "site_factor": 1,
                    "classes": [[*GOOD_ROW[:4], [1.0, float("nan"), 3.0]]],
                }
            },
            "shed_w",
        ),
        (
            {
                "shed": {
                    "horizons_s": [5, 60, 600],
                    "site_factor": 1,
                    "classes": [[GOOD_ROW[0], GOOD_ROW[1], -4, *GOOD_ROW[3:]]],
                }
            },
            "shed rigs",
        ),
        ({"commandable": [1.0, 2.0]}, "commandable"),
        ({"commandable": [1.0, -2.0, 3.0]}, "commandable"),
        ({"commandable": "all"}, "commandable"),
    ],
)
def test_a_bad_shed_or_commandable_field_is_refused(changes: dict[str, object], says: str) -> None:
    with pytest.raises(ClusterError) as err:
        decode_aggregate(bad(**changes), SUBJECT)
    assert says in str(err.value)
    assert "shard s1" in str(err.value)
    assert SUBJECT in str(err.value)


def test_the_sum_merges_classes_by_family_and_model() -> None:
    total = sum_shed([measured("s1", S1, None), measured("s2", S2, None)], HORIZONS, 1.1)
    assert total.site_factor == 1.1
    assert total.horizons_s == HORIZONS
    assert [(c.family, c.model, c.rigs) for c in total.classes] == [
        (LUX, "bitmain-s19jpro", 60),
        (STOCK, "bitmain-s21", 10),
    ]
    assert total.rig_w == pytest.approx((150_000.0, 165_000.0, 206_500.5))
    assert total.within_kw(600.0) == pytest.approx(206.5005 * 1.1)
    assert total.classes[0].power_w == pytest.approx(180_000.0)


def test_the_sum_counts_an_unknown_shard_and_a_missing_horizon_as_zero() -> None:
    only_5s = cap(ShedClass(LUX, "bitmain-s19jpro", 1, 3000.0, (2500.0,)), horizons=(5.0,))
    total = sum_shed([measured("s1", None, None), measured("s2", only_5s, None)], HORIZONS, 1.0)
    assert total.rig_w == (2500.0, 0.0, 0.0)
    assert sum_shed([], HORIZONS, 1.0).rig_w == (0.0, 0.0, 0.0)


def test_commandable_sums_and_unknown_counts_zero() -> None:
    total = sum_commandable(
        [
            measured("s1", None, Commandable(100.0, 200.0, 400.0)),
            measured("s2", None, Commandable(50.0, 100.0, 100.0)),
            measured("s3", None, None),
        ]
    )
    assert total == Commandable(150.0, 300.0, 500.0)
    assert total.share == pytest.approx(0.6)


def controller() -> ControllerNode:
    return ControllerNode(
        Client(), "site1", "c1", None, ("s1", "s2"), 100_000.0, system_clock, stale_cycles=2
    )


def test_the_controller_sums_live_shards_and_drops_a_silent_one() -> None:
    node = controller()
    node.hear(measured("s1", S1, Commandable(155_000.0, 160_000.0, 170_000.0)))
    node.hear(measured("s2", S2, Commandable(60_000.0, 65_000.0, 65_000.0)))
    both = node.site_shed(HORIZONS, 1.05)
    assert both.rig_w == pytest.approx(
        tuple(a + b for a, b in zip(S1.rig_w, S2.rig_w, strict=True))
    )
    assert node.site_commandable().power_w == pytest.approx(215_000.0)

    async def cycles(n: int) -> None:
        for _ in range(n):
            await node.cycle(50_000.0)  # no lease: counts the cycle, sends nothing

    # s1 goes on speaking, s2 falls silent: after stale_cycles cycles only s1 is summed.
    asyncio.run(cycles(2))
    node.hear(dataclasses.replace(measured("s1", S1, Commandable(1.0, 1.0, 1.0)), seq=8))
    asyncio.run(cycles(1))
    assert node.last is not None and node.last.silent_shards == ("s2",)
    assert node.site_shed(HORIZONS, 1.05).rig_w == pytest.approx(S1.rig_w)
    assert node.site_commandable() == Commandable(1.0, 1.0, 1.0)


def test_an_older_shard_is_named_once_and_counted_zero(caplog: pytest.LogCaptureFixture) -> None:
    node = controller()
    with caplog.at_level(logging.WARNING, logger="minerd.cluster"):
        for seq in (1, 2, 3):
            node.hear(dataclasses.replace(measured("s2", None, None), seq=seq))
        node.hear(measured("s1", S1, Commandable(1.0, 2.0, 3.0)))
    named = [r.getMessage() for r in caplog.records if "no shed capacity" in r.getMessage()]
    assert len(named) == 1 and "shard s2" in named[0], named
    assert node.site_shed(HORIZONS, 1.0).rig_w == pytest.approx(S1.rig_w)
    assert node.site_commandable() == Commandable(1.0, 2.0, 3.0)
