"""A split site's rigs moving to the shards' commands (issue 16): the shard sends how long its
rigs may still move and what its raises in flight may add; the controller's closed loop then
learns no load from the meter meanwhile, as one process does after its own commands.

Why: the readings of a rig told to move lag the meter by its reaction time plus up to a poll
interval. The controller sent no command, so it never knew: in a 20,000-rig benchmark (60 s
polls, 15 s cycles) it took the meter against readings still arriving for load, within the
loop's 2 % consistency band, and the shards moved whole classes of 2,500 rigs between
profiles every cycle or two for the 300 s after a cut.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from nats.aio.client import Client
from test_cluster_messages import SUBJECT, aggregate

from minerd.clock import ManualClock
from minerd.cluster.messages import decode_aggregate, encode_aggregate
from minerd.cluster.nodes import ControllerNode


def test_the_aggregate_carries_moving_and_rising_and_an_older_one_means_still() -> None:
    a = dataclasses.replace(aggregate(200), moving_s=37.5, rising_w=4_200.0)
    assert decode_aggregate(encode_aggregate(a), SUBJECT) == a
    older = json.loads(encode_aggregate(a))
    del older["moving_s"], older["rising_w"]
    got = decode_aggregate(json.dumps(older).encode(), SUBJECT)
    assert (got.moving_s, got.rising_w) == (0.0, 0.0)


def test_the_controller_counts_a_shards_moving_window_from_hearing_it() -> None:
    clock = ManualClock(start_s=1_000.0)
    node = ControllerNode(Client(), "site1", "c1", None, ("s1", "s2"), 100_000.0, clock)
    assert node.moving_until_s() == -float("inf")
    base = aggregate(200)
    node.hear(dataclasses.replace(base, seq=1, moving_s=30.0, rising_w=1_000.0))
    clock.advance(10.0)
    node.hear(dataclasses.replace(base, shard_id="s2", seq=1, moving_s=5.0, rising_w=500.0))
    # The later of the two: s1's 30 s from t=1000, not s2's 5 s from t=1010.
    assert node.moving_until_s() == pytest.approx(1_030.0)
    assert node.site_rising_w() == pytest.approx(1_500.0)
    # A shard's next aggregate, its rigs still: the window heard before still runs out.
    clock.advance(5.0)
    node.hear(dataclasses.replace(base, seq=2, moving_s=0.0, rising_w=0.0))
    assert node.moving_until_s() == pytest.approx(1_030.0)
    assert node.site_rising_w() == pytest.approx(500.0)
