"""The fan-out never lets a sink break the caller or the other sinks."""

from __future__ import annotations

import asyncio

import pytest
from sinks_data import LIMIT, T0_S, make_snapshot, running, wait_until

from minerd.sinks import PrometheusSink, SinkHub, SinkStats, TelemetryEvent


class BrokenSink:
    """Refuses every event and crashes twice when run."""

    name = "broken"

    def __init__(self) -> None:
        self.runs = 0

    def offer(self, event: TelemetryEvent) -> None:
        raise ValueError("cannot take it")

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= 2:
            raise RuntimeError("crash")
        await asyncio.Event().wait()

    def stats(self) -> SinkStats:
        return SinkStats(self.name, False, 0, 0, spool_fill_ratio=0.85)


@pytest.mark.asyncio
async def test_broken_sink_is_isolated_and_restarted() -> None:
    broken, prom = BrokenSink(), PrometheusSink("s")
    hub = SinkHub([broken, prom], restart_delay_s=0.05)
    async with running(hub):
        hub.publish_snapshot(make_snapshot(T0_S, 2), LIMIT, 1.0)  # does not raise
        assert prom.latest is not None and prom.latest.failsafe is False
        await wait_until(lambda: broken.runs == 3, 30, "two restarts")
    assert hub.spool_fill_ratio == 0.85
    failsafe = LIMIT.__class__(limit_kw=50.0, origin="failsafe")
    hub.publish_snapshot(make_snapshot(T0_S + 1, 2), failsafe, 1.0)
    assert prom.latest is not None and prom.latest.failsafe is True
