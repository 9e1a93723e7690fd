"""Retries, Retry-After, order and the never-block rule, against a real local HTTP server
that records what it accepts and answers what the test tells it to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from local_http import local_http
from sinks_data import LIMIT, T0_S, make_snapshot, open_spool, running, wait_until

from minerd.sinks import InfluxSink, InfluxSinkConfig, PointEncoder, SinkHub, V1Target, V1Writer


@dataclass
class Recorder:
    """Answers `script` statuses in turn (then 204) and keeps the lines of accepted writes."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)  # status answered, in order
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        assert request.headers.get("Content-Encoding") == "gzip"
        body = await request.read()  # aiohttp decompresses it
        status, headers = self.script.pop(0) if self.script else (204, {})
        self.attempts.append(status)
        if status == 204:
            assert request.query["db"] == "d" and request.query["precision"] == "ms"
            assert request.query["rp"] == "week"
            # basic auth "minerd:s3cret"
            assert request.headers["Authorization"] == "Basic bWluZXJkOnMzY3JldA=="
            self.lines.extend(body.decode().split("\n"))
        return web.Response(status=status, headers=headers)


@pytest_asyncio.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    async with local_http([web.post("/write", rec.handle)]) as base_url:
        rec.url = base_url
        yield rec


def sink_for(rec: Recorder, tmp_path: Path, **cfg: float) -> InfluxSink:
    config = InfluxSinkConfig(
        batch_size=int(cfg.get("batch_size", 100)),
        flush_interval_s=0.02,
        rig_interval_s=0.0,
        min_backoff_s=0.01,
        max_backoff_s=0.05,
        queue_size=int(cfg.get("queue_size", 1000)),
        max_retry_after_s=cfg.get("max_retry_after_s", 300.0),
    )
    target = V1Target(rec.url, "d", retention_policy="week", username="minerd", password="s3cret")
    writer = V1Writer(target, gzip_body=True, timeout_s=2.0)
    return InfluxSink(writer, open_spool(tmp_path / "m.db"), PointEncoder("s"), config)


def held_by_sender(sink: InfluxSink) -> bool:
    """Queued nowhere, not being built, not spooled, yet not idle: the sender holds it (here
    waiting 30 s for a fuller batch). Reads the stages idle() sums up."""
    return (
        sink._events.empty()
        and sink._chunks.empty()
        and not sink._building
        and sink.spool.points == 0
        and not sink.idle()
    )


def site_times(lines: list[str]) -> list[int]:
    return [int(x.rsplit(" ", 1)[1]) for x in lines if x.startswith("site,")]


@pytest.mark.asyncio
async def test_retry_after_is_honoured_and_order_kept(recorder: Recorder, tmp_path: Path) -> None:
    # An hour's Retry-After: while it runs the sink only spools, it never tries again (its
    # own backoff here is 10-50 ms, so a sink that ignored the header would have retried).
    recorder.script = [(503, {"Retry-After": "3600"})]
    sink = sink_for(recorder, tmp_path, max_retry_after_s=7200.0)
    hub = SinkHub([sink])
    async with running(hub):
        for i in range(40):
            hub.publish_snapshot(make_snapshot(T0_S + i, 3), LIMIT, 1.0)
            await asyncio.sleep(0.01)
        await wait_until(lambda: sink.spool.points == 40 * 5, 30, "all 40 snapshots spooled")
        assert recorder.attempts == [503]
    # A new sink on the same spool (the old one stopped inside its wait): a 429 with
    # Retry-After 0 is retried at once, then everything arrives once, in publish order.
    recorder.script = [(429, {"Retry-After": "0"})]
    sink = sink_for(recorder, tmp_path)
    async with running(SinkHub([sink])):
        await wait_until(sink.idle, 30, "delivery after the refusals")
    assert recorder.attempts[:3] == [503, 429, 204]
    assert site_times(recorder.lines) == [round((T0_S + i) * 1000) for i in range(40)]
    assert len(recorder.lines) == 40 * 5 and sink.spool.points == 0


@pytest.mark.asyncio
async def test_retry_after_is_capped(recorder: Recorder, tmp_path: Path) -> None:
    recorder.script = [(503, {"Retry-After": "3600"})]
    sink = sink_for(recorder, tmp_path, max_retry_after_s=0.05)
    hub = SinkHub([sink])
    async with running(hub):
        hub.publish_snapshot(make_snapshot(T0_S, 3), LIMIT, 1.0)
        # Capped at 50 ms: delivered long before the bound (an uncapped wait is an hour).
        await wait_until(sink.idle, 30, "delivery after the capped Retry-After")
    assert recorder.attempts == [503, 204]
    assert site_times(recorder.lines) == [round(T0_S * 1000)]


@pytest.mark.asyncio
async def test_rejected_batch_is_dropped_not_retried(recorder: Recorder, tmp_path: Path) -> None:
    recorder.script = [(400, {})]
    sink = sink_for(recorder, tmp_path)
    hub = SinkHub([sink])
    async with running(hub):
        hub.publish_snapshot(make_snapshot(T0_S, 3), LIMIT, 1.0)
        await wait_until(lambda: sink.points_rejected == 5, 30, "the rejection")
        hub.publish_snapshot(make_snapshot(T0_S + 1, 3), LIMIT, 1.0)
        await wait_until(sink.idle, 30, "the next write")
    assert site_times(recorder.lines) == [round((T0_S + 1) * 1000)]


@pytest.mark.asyncio
async def test_offer_never_blocks_full_queue_spools(recorder: Recorder, tmp_path: Path) -> None:
    sink = sink_for(recorder, tmp_path, queue_size=2)
    hub = SinkHub([sink])
    snaps = [make_snapshot(T0_S + i, 200) for i in range(20)]
    # The sink is not running: its queue fills after two events, and the rest are spooled by
    # the caller, synchronously (its cost is benchmarks/bench_sinks.py's, "full queue").
    for s in snaps:
        hub.publish_snapshot(s, LIMIT, 1.0)
    assert sink.overflow_spooled_events == 18 and sink.dropped_events == 0
    assert sink.stats().queued == 2 and sink.spool.points == 18 * 201 + 18
    async with running(hub):
        await wait_until(sink.idle, 30, "replay of the overflow")
    assert len(recorder.lines) == 20 * 202
    assert sorted(site_times(recorder.lines)) == [round((T0_S + i) * 1000) for i in range(20)]


@pytest.mark.asyncio
async def test_stop_spools_what_is_in_memory(recorder: Recorder, tmp_path: Path) -> None:
    config = InfluxSinkConfig(batch_size=1000, flush_interval_s=30.0, rig_interval_s=0.0)
    writer = V1Writer(V1Target(recorder.url, "d", "week", "minerd", "s3cret"))
    spool = open_spool(tmp_path / "m.db")
    sink = InfluxSink(writer, spool, PointEncoder("s"), config)
    hub = SinkHub([sink])
    async with running(hub):
        hub.publish_snapshot(make_snapshot(T0_S, 3), LIMIT, 1.0)
        await wait_until(lambda: held_by_sender(sink), 30, "the sender to take the batch")
        assert spool.points == 0 and not sink.idle()
    assert spool.points == 5 and recorder.lines == []  # stopped: on disk, not lost
    sink = InfluxSink(
        V1Writer(V1Target(recorder.url, "d", "week", "minerd", "s3cret")),
        open_spool(tmp_path / "m.db"),
        PointEncoder("s"),
        config,
    )
    async with running(SinkHub([sink])):
        await wait_until(sink.idle, 30, "the replay")
    assert site_times(recorder.lines) == [round(T0_S * 1000)]


@pytest.mark.asyncio
async def test_rig_points_at_most_every_rig_interval(recorder: Recorder, tmp_path: Path) -> None:
    config = InfluxSinkConfig(flush_interval_s=0.02, rig_interval_s=15.0)
    writer = V1Writer(V1Target(recorder.url, "d", "week", "minerd", "s3cret"))
    sink = InfluxSink(writer, open_spool(tmp_path / "m.db"), PointEncoder("s"), config)
    hub = SinkHub([sink])
    async with running(hub):
        for i in range(31):
            hub.publish_snapshot(make_snapshot(T0_S + i, 3), LIMIT, 1.0)
        await wait_until(sink.idle, 30, "delivery")
    assert len(site_times(recorder.lines)) == 31  # site and meter points every cycle
    rig_times = sorted({int(x.rsplit(" ", 1)[1]) for x in recorder.lines if x.startswith("rig,")})
    assert rig_times == [round((T0_S + i) * 1000) for i in (0, 15, 30)]
