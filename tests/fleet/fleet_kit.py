"""Shared pieces of the fleet acceptance tests: a simulated site, the daemon's devices built
from the config the simulator writes, and a Poller feeding a FleetState.

The truth the tests judge by is the simulator's own (SimSite.truth()), never the daemon's
view of it. The poller uses the simulator's clock so timestamps share one axis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from minerd.daemon.assembly import SiteDevices, build_devices
from minerd.model import FleetSnapshot, RigStatus
from minerd.runtime.fleet import FleetState
from minerd.runtime.poller import Poller
from minerd.settings import load_settings
from minerd.sim import SimSite, SiteSpec

Truth = dict[str, object]


def tune_config(
    path: Path,
    rig_interval_s: float,
    rig_timeout_s: float,
    meter_interval_s: float = 1.0,
    meter_timeout_s: float = 0.5,
) -> None:
    """Give every rig group and meter the intervals the test wants (the sim writes defaults)."""
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "[[rigs]]\n", f"[[rigs]]\ninterval_s = {rig_interval_s}\ntimeout_s = {rig_timeout_s}\n"
    )
    text = text.replace(
        "[[meters]]\n",
        f"[[meters]]\ninterval_s = {meter_interval_s}\ntimeout_s = {meter_timeout_s}\n",
    )
    path.write_text(text, encoding="utf-8")


@dataclass
class Polled:
    """A running simulated site with the daemon-side poller reading it."""

    site: SimSite
    devices: SiteDevices
    fleet: FleetState
    poller: Poller

    def snapshot(self) -> FleetSnapshot:
        return self.fleet.snapshot(self.site.clock.now_s())

    def rig(self, rig_id: str) -> RigStatus:
        snap = self.snapshot()
        return next(r for r in snap.rigs if r.rig_id == rig_id)

    async def wait_for(
        self, check: Callable[[FleetSnapshot], bool], timeout_s: float, what: str
    ) -> FleetSnapshot:
        """Poll the fleet snapshot until check passes; fail naming `what` after timeout_s
        (a generous bound, never asserted as a duration)."""
        try:
            async with asyncio.timeout(timeout_s):
                while not check(snap := self.snapshot()):  # noqa: ASYNC110 - the poller's work
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}") from None
        return snap


@contextlib.asynccontextmanager
async def polled_site(
    spec: SiteSpec,
    tmp_path: Path,
    *,
    rig_interval_s: float = 1.0,
    rig_timeout_s: float = 0.5,
    meter_interval_s: float = 1.0,
    meter_timeout_s: float = 0.5,
    concurrency: int = 64,
    track_per_rig: bool = False,
    before_poll: Callable[[SimSite], object] | None = None,
) -> AsyncIterator[Polled]:
    """Start the site, write and load its config, build devices, run the poller."""
    async with SimSite(spec) as site:
        path = tmp_path / "site.toml"
        site.write_config(path)
        tune_config(path, rig_interval_s, rig_timeout_s, meter_interval_s, meter_timeout_s)
        devices = build_devices(load_settings(path))
        fleet = FleetState(devices.rig_infos, devices.meter_infos)
        poller = Poller(
            fleet, devices.rigs, devices.meters, site.clock, concurrency=concurrency, seed=7
        )
        poller.stats.track_per_rig = track_per_rig
        if before_poll is not None:
            result = before_poll(site)
            if asyncio.iscoroutine(result):
                await result
        tasks: list[asyncio.Task[None]] = []
        if devices.mqtt_rigs is not None:
            tasks.append(asyncio.create_task(devices.mqtt_rigs.run(), name="fleet-test-mqtt"))
            await devices.mqtt_rigs.wait_connected(10.0)
            for hub in devices.mqtt_rig_hubs:
                await hub.start()
        tasks.append(asyncio.create_task(poller.run(), name="fleet-test-poller"))
        try:
            yield Polled(site, devices, fleet, poller)
        finally:
            for task in reversed(tasks):
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=10.0)
                if not done:  # a task that ignores cancel: say which, do not hang the suite
                    task.print_stack()
                    raise AssertionError(f"{task.get_name()} did not stop within 10 s of cancel")
            async with asyncio.timeout(10.0):
                await devices.aclose()


def all_read_since(snap: FleetSnapshot, since_s: float) -> bool:
    """Every rig has a reading (or failure) taken after since_s; every meter was read or
    failed (a meter failure keeps no timestamp of its own)."""
    rigs_ok = all(r.reading.taken_at_s >= since_s for r in snap.rigs)
    meters_ok = all(
        (m.reading is not None and m.reading.taken_at_s >= since_s)
        or m.error not in ("", "not read yet")
        for m in snap.meters
    )
    return rigs_ok and meters_ok


def truth_rigs(truth: Truth) -> dict[str, dict[str, object]]:
    rigs = truth["rigs"]
    assert isinstance(rigs, list)
    return {str(r["id"]): r for r in rigs}


def truth_meters(truth: Truth) -> dict[str, dict[str, object]]:
    meters = truth["meters"]
    assert isinstance(meters, list)
    return {str(m["name"]): m for m in meters}


def num(value: object) -> float:
    assert isinstance(value, int | float), value
    return float(value)
