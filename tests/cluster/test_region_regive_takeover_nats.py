"""Re-giving after a coordinator takeover in the middle of an interval, on a real nats-server
and the real site wiring of test_region_award_nats: the first coordinator leads from before
the interval, writing every allocation it sends to the region's shared record
(cluster.sent_store) before sending it; it stops mid-interval and the standby takes over. A
site then goes silent. The new leader reads the record at its takeover, so it knows every
allocation sent since before the interval and re-gives the silent site's unusable energy once
its lease (and the clock slack) ran out, as the first coordinator would have. Before the
record, a leader knew only its own term's sends and re-gave nothing until the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import nats
import pytest
import region_rounds as rounds
from servers import ServerProcess
from test_region_award_nats import HOUR_S, T0, TOKEN, WAIT_S, send_awards, stop_sites
from waiting import wait_until

from minerd.clock import ManualClock
from minerd.cluster.coordinator import Coordinator
from minerd.cluster.region import lease_token
from minerd.cluster.sent_store import get_sent, sent_bucket

pytestmark = pytest.mark.timeout(180)

LEASE_S = 20.0
SLACK_S = 5.0
AWARD_KWH = 60.0
START_S = T0 + 40.0  # past the first coordinator's term start (T0 + 8) + lease + slack
TAKEOVER_S = START_S + 60.0


@pytest.mark.asyncio
async def test_a_coordinator_taking_over_mid_interval_re_gives_from_the_shared_record(
    nats_server: ServerProcess, tmp_path: Path
) -> None:
    name = f"r{uuid.uuid4().hex[:8]}"
    clock = ManualClock(T0)
    nc = await nats.connect(nats_server.url)

    def coordinator(cid: str) -> Coordinator:
        return Coordinator(
            nc, name, cid, 100.0, clock, lease_s=LEASE_S, site_silent_s=10.0,
            control_token=TOKEN, regive_slack_s=SLACK_S,
        )  # fmt: skip

    first, second = await rounds.leased_pair(nc, name, clock, coordinator)
    runs = rounds.big_and_small(name, nats_server.url, tmp_path)
    live = list(runs)

    def step(seconds: int) -> None:
        rounds.step(clock, runs, seconds)

    async def lead(leader: Coordinator, standby: Coordinator | None) -> None:
        await rounds.lead(clock, leader, standby, live)

    try:
        step(8)
        await wait_until(
            lambda: any(r.failed() for r in runs) or set(first.sites()) == {"big", "small"},
            WAIT_S,
            "both sites' offers",
        )
        term_start_s = clock.now_s()
        await lead(first, second)
        answer = await send_awards(
            nc,
            name,
            [{"id": "r-1", "start_s": START_S, "end_s": START_S + HOUR_S,
              "energy_kwh": AWARD_KWH}],
        )  # fmt: skip
        assert answer["ok"] is True, answer
        while clock.now_s() < TAKEOVER_S:
            step(4)
            await lead(first, second)
        split = dict(first.award_splits["r-1"])
        assert set(split) == {"big", "small"}
        # Every allocation the first leader sent is in the shared record, from its term on.
        record = await get_sent(nc.jetstream(), sent_bucket(lease_token(name)))
        assert record is not None and record.from_s == term_start_s
        for site in ("big", "small"):
            last_sent = first._history[site][-1]
            last_kept = record.sites[site][-1]
            assert last_kept.allocation_w == last_sent.allocation_w
            assert last_kept.ends_at_s >= last_sent.ends_at_s

        # The first coordinator stops in the middle of the interval; the standby leads.
        assert first.lease is not None
        await first.lease.release()
        await first.stop()
        step(1)
        await lead(second, None)
        assert second._history_from_s == term_start_s  # not its takeover: the record's

        # The small site goes silent: its role stops, no more offers.
        small = runs[1]
        small.serve.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await small.serve
        live.remove(small)
        for _ in range(60):
            step(2)
            await lead(second, None)
            if second.award_splits["r-1"] != split:
                break
        new = second.award_splits["r-1"]
        assert new != split, "nothing re-given after the takeover"
        expiry_s = second._history["small"][-1].ends_at_s + SLACK_S
        assert clock.now_s() >= expiry_s  # never before the silent site's lease ran out
        gift_kwh = split["small"] - new["small"]
        assert gift_kwh > 0.0
        assert new["big"] == pytest.approx(split["big"] + gift_kwh)
        assert sum(new.values()) <= AWARD_KWH + 1e-9
    finally:
        await stop_sites(runs)
        await first.stop()
        await second.stop()
        await nc.close()
