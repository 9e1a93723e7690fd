"""Acceptance: 50 meters behind 5 Modbus gateways (10 unit ids each), read every second,
with one request per meter per poll when the meter's points are contiguous.

The gateways are the simulator's own Modbus servers holding simulated meters; a thin
wrapper counts, at the server, every read request that reaches each unit. The daemon side is
built from a site config through load_settings + build_devices, like `minerd run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest
from waiting import wait_until

from minerd.clock import SystemClock
from minerd.daemon.assembly import build_devices
from minerd.model import MeterRole, RegisterMap
from minerd.profiles import load_meter_map
from minerd.runtime.fleet import FleetState
from minerd.runtime.poller import Poller
from minerd.settings import load_settings
from minerd.sim.gateway import ModbusGateway
from minerd.sim.meters import MeterSim

GATEWAYS = 5
UNITS = 10
# SDM630, the generic meter and the Janitza 19000 block: one block each; Schneider and the
# legacy Janitza block: two (a gap of more than 64 registers between their points).
PROFILES = ["eastron-sdm630"] * 5 + ["janitza-umg604-legacy"] + ["generic-modbus-meter"] * 2
PROFILES += ["janitza-umg604", "schneider-iem3000"]
POLLS = 4  # every meter read at least this often before the poller stops


class CountingMeter:
    """A simulated meter that counts the read requests the gateway serves for it."""

    def __init__(self, sim: MeterSim) -> None:
        self.sim = sim
        self.reads = 0

    @property
    def regmap(self) -> RegisterMap:
        return self.sim.regmap

    @property
    def served_maps(self) -> tuple[RegisterMap, ...]:
        return self.sim.served_maps

    @property
    def modbus_fault(self) -> str:
        return self.sim.modbus_fault

    def register_values(self) -> dict[str, float]:
        self.reads += 1  # the gateway computes the values once per read request
        return self.sim.register_values()

    def register_write(self, name: str, value: float) -> bool:
        return False


def _counting(device: object) -> CountingMeter:
    assert isinstance(device, CountingMeter)
    return device


def _config(path: Path, gateways: list[ModbusGateway]) -> None:
    lines = [
        '[site]\nname = "fleet-meters"\ntimezone = "UTC"\n',
        "[grid]\ncontracted_limit_kw = 5000\nfailsafe_limit_kw = 3000\nmargin_kw = 50\n",
    ]
    for g, gw in enumerate(gateways):
        for unit, dev in gw.devices.items():
            assert isinstance(dev, CountingMeter)
            role = "grid" if (g, unit) == (0, 1) else "feeder"
            lines.append(
                "[[meters]]\n"
                f'name = "m{g}-u{unit:02d}"\n'
                f'profile = "{dev.regmap.name}"\n'
                f'endpoint = "tcp://{gw.host}:{gw.port}"\n'
                f"unit_id = {unit}\n"
                f'role = "{role}"\n'
                "interval_s = 1.0\n"
                "timeout_s = 5.0\n"  # generous: a busy machine must not turn a read into a failure
            )
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_fifty_meters_one_request_each_per_poll(tmp_path: Path) -> None:
    clock = SystemClock()
    rng = random.Random(3)
    gateways: list[ModbusGateway] = []
    try:
        for g in range(GATEWAYS):
            devices: dict[int, CountingMeter] = {}
            for unit, profile in enumerate(PROFILES, start=1):
                sim = MeterSim(
                    f"m{g}-u{unit:02d}",
                    MeterRole.FEEDER,
                    load_meter_map(profile),
                    unit,
                    "",
                    0.002,
                    rng,
                    clock,
                )
                sim.advance(clock.now_s(), 10_000.0 * (g + 1) + 100.0 * unit)
                devices[unit] = CountingMeter(sim)
            gw = ModbusGateway("127.0.0.1", 0, dict(devices))
            await gw.start()
            gateways.append(gw)
        path = tmp_path / "meters.toml"
        _config(path, gateways)
        site = build_devices(load_settings(path))
        assert len(site.meters) == GATEWAYS * UNITS
        assert len(site.hubs.hubs()) == GATEWAYS  # one connection per gateway, shared by units
        fleet = FleetState(site.rig_infos, site.meter_infos)
        poller = Poller(fleet, site.rigs, site.meters, clock)
        task = asyncio.create_task(poller.run())
        per_read = {m.name: m.requests_per_read for m in site.meters}
        counting = {
            f"m{g}-u{unit:02d}": _counting(d)
            for g, gw in enumerate(gateways)
            for unit, d in gw.devices.items()
        }
        await wait_until(
            lambda: all(d.reads >= POLLS * per_read[n] for n, d in counting.items()),
            60.0,
            f"every meter read {POLLS} times",
        )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        snap = fleet.snapshot(clock.now_s())
        await site.aclose()
    finally:
        for gw in gateways:
            await gw.close()

    assert poller.stats.meter_failures == 0
    by_name = {m.meter: m for m in snap.meters}
    blocks = {m.name: m.requests_per_read for m in site.meters}
    assert {p: blocks[f"m0-u{u:02d}"] for u, p in enumerate(PROFILES, start=1)} == {
        "eastron-sdm630": 1,
        "generic-modbus-meter": 1,
        "janitza-umg604": 1,
        "janitza-umg604-legacy": 2,
        "schneider-iem3000": 2,
    }
    polls_seen = 0.0
    for g, gw in enumerate(gateways):
        for unit, device in gw.devices.items():
            dev = _counting(device)
            name = f"m{g}-u{unit:02d}"
            ms = by_name[name]
            assert ms.fresh and ms.error == "" and ms.reading is not None, (name, ms.error)
            assert ms.reading.power_w == pytest.approx(dev.sim.power_w, rel=0.015), name
            # one request per block per poll (the cadence itself: test_fleet_schedule.py)
            polls = dev.reads / blocks[name]
            assert polls >= POLLS, (name, dev.reads)
            polls_seen += polls
    # every poll the poller made reached the server once per block, no more (the poller may
    # have been cancelled between the two blocks of one two-block meter: half a poll each)
    assert polls_seen == pytest.approx(poller.stats.meter_polls, abs=GATEWAYS * 2 * 0.5 + 1)
    print(
        f"{GATEWAYS * UNITS} meters, {poller.stats.meter_polls} polls, "
        f"{sum(_counting(d).reads for gw in gateways for d in gw.devices.values())} requests "
        "at the servers"
    )
