"""SimSite: a whole simulated site (rigs, meters, physics, faults, control endpoint).

async with SimSite(SiteSpec(groups=(RigGroupSpec("bitmain-s19jpro", 10),))) as site:
    truth = await site.truth()
    await site.inject("c001-r001", "hung")
    site.write_config(tmp_path / "site.toml")
"""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from types import TracebackType

from minerd.cancelling import TasksDidNotStop, stop_tasks
from minerd.clock import ScaledClock
from minerd.model import MeterRole, RigProtocol
from minerd.sim.catalog import meter_map, rig_model, rig_register_map
from minerd.sim.config import SiteTokens, write_site_config
from minerd.sim.control import ControlServer
from minerd.sim.faults import METER_FAULTS, UnknownDevice, UnknownFault
from minerd.sim.fleet import RigFleet
from minerd.sim.gateway import ModbusGateway, ModbusSimDevice
from minerd.sim.meters import MeterSim
from minerd.sim.mqtt import MqttRigs
from minerd.sim.physics import aux_power_w
from minerd.sim.plc import PlcRig
from minerd.sim.spec import (
    TCP_PROTOCOLS,
    RigPlan,
    SiteSpec,
    container_count,
    container_name,
    plan_rigs,
    plc_host,
)
from minerd.sim.workers import WorkerPool

log = logging.getLogger(__name__)

TICK_S = 0.2  # wall seconds between meter energy integration steps...
TICK_SIM_S = 1.0  # ...at most this many sim seconds apart, so the counter stays close at speed
GRID_METER = "grid"
TASKS_STOP_S = 10.0  # the MQTT rigs disconnect within aiomqtt's 5 s timeout


class SimSite:
    def __init__(self, spec: SiteSpec) -> None:
        self.spec = spec
        self.clock = ScaledClock(spec.speed)
        self.plans: list[RigPlan] = plan_rigs(spec)
        self._index = {p.rig_id: p.index for p in self.plans}
        self.workers_n = spec.worker_count()
        tcp = [p for p in self.plans if p.protocol in TCP_PROTOCOLS]
        remote = tcp if self.workers_n > 1 else []
        remote_ids = {p.rig_id for p in remote}
        self._local_plans = [p for p in self.plans if p.rig_id not in remote_ids]
        self.fleet = RigFleet(self._local_plans, self.clock, spec.ambient_c)
        self.pool: WorkerPool | None = None
        if remote:
            self.pool = WorkerPool(spec, _split_ranges(remote, self.workers_n), self.clock)
        self._remote_ids = remote_ids
        self._nominal_w = sum(
            self.fleet.rigs[p.rig_id].model.nominal_power_w
            if p.rig_id in self.fleet.rigs
            else _nominal(p.model)
            for p in self.plans
        )
        self.containers = container_count(spec)
        rng = random.Random(spec.seed)
        self.meters: dict[str, MeterSim] = {}
        grid = MeterSim(
            GRID_METER,
            MeterRole.GRID,
            meter_map(spec.grid_meter_profile),
            1,
            "",
            spec.noise_fraction,
            rng,
            self.clock,
        )
        self.meters[grid.name] = grid
        if spec.feeder_meters:
            fmap = meter_map(spec.feeder_meter_profile)
            for c in range(self.containers):
                name = f"feeder-{container_name(c)}"
                self.meters[name] = MeterSim(
                    name,
                    MeterRole.FEEDER,
                    fmap,
                    c + 1,
                    container_name(c),
                    spec.noise_fraction,
                    rng,
                    self.clock,
                )
        self.gateways: list[ModbusGateway] = []
        self.plc_gateways: dict[int, ModbusGateway] = {}
        self.control = ControlServer(self.truth, self.inject, self.clear)
        self.mqtt: MqttRigs | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._remote_ports: dict[str, int] = {}
        self._started = False

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> SimSite:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        spec = self.spec
        self._started = True
        if self.pool is not None:
            await self.pool.start()
            for link in self.pool.links:
                self._remote_ports.update(link.ports)
        await self.fleet.start()
        # meters: the grid meter on its own gateway, feeders sharing the next one
        grid_gw = ModbusGateway(spec.meter_host, spec.meter_port, {1: self.meters[GRID_METER]})
        await grid_gw.start()
        self.gateways.append(grid_gw)
        self._place(self.meters[GRID_METER], grid_gw)
        feeders: dict[int, ModbusSimDevice] = {
            m.unit_id: m for m in self.meters.values() if m.role is MeterRole.FEEDER
        }
        if feeders:
            port = spec.meter_port + 1 if spec.meter_port else 0
            feeder_gw = ModbusGateway(spec.meter_host, port, feeders)
            await feeder_gw.start()
            self.gateways.append(feeder_gw)
            for m in self.meters.values():
                if m.role is MeterRole.FEEDER:
                    self._place(m, feeder_gw)
        await self._start_plcs()
        await self._start_mqtt()
        for meter in self.meters.values():
            meter.power_source = self._meter_power_source(meter)
        host, _, port_text = spec.control.rpartition(":")
        await self.control.start(host or "127.0.0.1", int(port_text or 0))
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="sim-meter-ticks"))
        for device, fault in spec.initial_faults:
            await self.inject(device, fault)

    async def _start_plcs(self) -> None:
        by_container: dict[int, dict[int, ModbusSimDevice]] = {}
        for plan in self._local_plans:
            if plan.protocol is RigProtocol.MODBUS:
                rig = self.fleet.rigs[plan.rig_id]
                by_container.setdefault(plan.container, {})[plan.unit_id] = PlcRig(
                    rig, rig_register_map(), self.clock
                )
        for container, devices in sorted(by_container.items()):
            gw = ModbusGateway(plc_host(self.spec, container), self.spec.plc_port, devices)
            await gw.start()
            self.plc_gateways[container] = gw

    async def _start_mqtt(self) -> None:
        rigs = [r for r in self.fleet.rigs.values() if r.plan.protocol is RigProtocol.MQTT]
        if not rigs:
            return
        if not self.spec.mqtt_url:
            raise ValueError("the site has MQTT rigs but SiteSpec.mqtt_url names no broker")
        self.mqtt = MqttRigs(self.spec.mqtt_url, self.spec.mqtt_prefix, rigs, self.clock)
        ready = asyncio.Event()
        task = asyncio.create_task(self.mqtt.run(ready), name="sim-mqtt")
        self._tasks.append(task)
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({task, waiter}, timeout=10.0, return_when="FIRST_COMPLETED")
        if waiter not in done:
            waiter.cancel()
            if task.done():
                task.result()  # raises the connection error
            raise TimeoutError(f"MQTT broker {self.spec.mqtt_url} did not accept the simulator")

    async def close(self) -> None:
        # Their errors are retrieved, not raised; a cancel of close() itself still is. A task
        # that never stops is named (TasksDidNotStop) once the servers below are closed.
        stuck: TasksDidNotStop | None = None
        try:
            await stop_tasks(self._tasks, grace_s=TASKS_STOP_S)
        except TasksDidNotStop as exc:
            stuck = exc
        self._tasks.clear()
        await self.control.close()
        for gw in [*self.gateways, *self.plc_gateways.values()]:
            await gw.close()
        await self.fleet.close()
        if self.pool is not None:
            await self.pool.close()
        if stuck is not None:
            raise stuck

    # ------------------------------------------------------------ physics aggregate

    def _meter_power_source(self, meter: MeterSim) -> _PowerSource:
        return _PowerSource(self, meter)

    def container_power_w(self) -> dict[int, float]:
        sums = dict(self.fleet.aggregate().power_w)
        if self.pool is not None:
            for link in self.pool.links:
                if link.aggregate is not None:
                    for c, w in link.aggregate.power_w.items():
                        sums[c] = sums.get(c, 0.0) + w
        return sums

    def aux_w(self, rig_power_w: float) -> float:
        s = self.spec
        return aux_power_w(
            rig_power_w, self._nominal_w, s.aux_base_w, s.aux_fraction, s.transformer_loss_fraction
        )

    async def _tick_loop(self) -> None:
        while True:
            now_s = self.clock.now_s()
            sums = self.container_power_w()
            rigs_w = sum(sums.values())
            for meter in self.meters.values():
                if meter.role is MeterRole.GRID:
                    meter.advance(now_s, rigs_w + self.aux_w(rigs_w))
                else:
                    meter.advance(now_s, sums.get(meter.unit_id - 1, 0.0))
            await asyncio.sleep(min(TICK_S, TICK_SIM_S / max(self.clock.speed, 1e-9)))

    # ------------------------------------------------------------ control surface

    async def truth(self, include_rigs: bool = True) -> dict[str, object]:
        """What really happens now. Without rigs, sums come from the per-container aggregates
        (exact in one process, at most 0.5 s old from worker processes) and hashrate is None."""
        now_s = self.clock.now_s()
        rigs: list[dict[str, object]] = []
        if include_rigs:
            rigs = self.fleet.truth()
            if self.pool is not None:
                rigs.extend(await self.pool.truth())
            rigs.sort(key=lambda r: self._index.get(str(r["id"]), 0))
            for r in rigs:
                if r["protocol"] == RigProtocol.MODBUS.value:
                    r["port"] = self.rig_endpoint(str(r["id"]))[1]
            by_container: dict[str, float] = {}
            for r in rigs:
                key = str(r["container"])
                by_container[key] = by_container.get(key, 0.0) + _f(r["power_w"])
            hashrate: float | None = round(sum(_f(r["hashrate_ths"]) for r in rigs), 3)
        else:
            by_container = {container_name(c): w for c, w in self.container_power_w().items()}
            hashrate = None
        rig_w = sum(by_container.values())
        aux = self.aux_w(rig_w)
        meters = []
        for m in self.meters.values():
            entry = m.truth()
            if m.role is MeterRole.GRID:
                entry["power_w"] = round(rig_w + aux, 1)
            else:
                entry["power_w"] = round(by_container.get(m.container, 0.0), 1)
            meters.append(entry)
        result: dict[str, object] = {
            "time_s": now_s,
            "speed": self.spec.speed,
            "site": {
                "name": self.spec.name,
                "power_w": round(rig_w + aux, 1),
                "rig_power_w": round(rig_w, 1),
                "aux_power_w": round(aux, 1),
                "hashrate_ths": hashrate,
                "rigs": len(self.plans),
                "containers": self.containers,
                "nominal_rig_power_w": self._nominal_w,
            },
            "meters": meters,
            "control": self.control.url,
        }
        if include_rigs:
            result["rigs"] = rigs
        return result

    async def inject(self, device: str, fault: str) -> None:
        meter = self.meters.get(device)
        if meter is not None:
            if fault not in METER_FAULTS:
                raise UnknownFault(f"unknown meter fault {fault!r}; known: {sorted(METER_FAULTS)}")
            meter.modbus_fault = fault
            return
        if device in self._remote_ids and self.pool is not None:
            link = self.pool.link_for(self._index[device])
            await self.pool.request(link, "inject", device=device, fault=fault)
            return
        if device not in self.fleet.rigs:
            raise UnknownDevice(f"no rig or meter {device!r} in this simulated site")
        await self.fleet.inject(device, fault)

    async def clear(self, device: str | None = None) -> None:
        if device is None:
            for m in self.meters.values():
                m.modbus_fault = ""
            await self.fleet.clear(None)
            if self.pool is not None:
                for link in self.pool.links:
                    await self.pool.request(link, "clear", device=None)
            return
        meter = self.meters.get(device)
        if meter is not None:
            meter.modbus_fault = ""
        elif device in self._remote_ids and self.pool is not None:
            link = self.pool.link_for(self._index[device])
            await self.pool.request(link, "clear", device=device)
        elif device in self.fleet.rigs:
            await self.fleet.clear(device)
        else:
            raise UnknownDevice(f"no rig or meter {device!r} in this simulated site")

    # ------------------------------------------------------------ endpoints

    @property
    def control_url(self) -> str:
        return self.control.url

    @property
    def nominal_w(self) -> float:
        """Every rig's nominal power: the load the written config's limits are sized from."""
        return self._nominal_w

    def rig_endpoint(self, rig_id: str) -> tuple[str, int]:
        """(host, port) where the rig answers: its cgminer API, or its container's PLC."""
        plan = self.plans[self._index[rig_id]]
        if plan.protocol is RigProtocol.MODBUS:
            return plan.host, self.plc_gateways[plan.container].port
        if plan.rig_id in self._remote_ports:
            return plan.host, self._remote_ports[plan.rig_id]
        if plan.rig_id in self.fleet.rigs:
            return plan.host, self.fleet.port_of(self.fleet.rigs[plan.rig_id])
        return plan.host, plan.port

    def meter_endpoint(self, name: str) -> tuple[str, int, int]:
        """(host, port, unit_id) of a meter's Modbus gateway."""
        m = self.meters[name]
        return m.host, m.port, m.unit_id

    def _place(self, meter: MeterSim, gw: ModbusGateway) -> None:
        meter.host, meter.port = gw.host, gw.port

    def write_config(self, path: str | Path, api_listen: str = "127.0.0.1:8080") -> SiteTokens:
        """Write the daemon's config for this site, its rig CSVs and PATH.tokens (0600)."""
        return write_site_config(self, Path(path), api_listen)


class _PowerSource:
    """Live power of one meter, computed at read time from the rig physics."""

    def __init__(self, site: SimSite, meter: MeterSim) -> None:
        self._site = site
        self._meter = meter

    def __call__(self) -> float:
        sums = self._site.container_power_w()
        if self._meter.role is MeterRole.GRID:
            rigs_w = sum(sums.values())
            return rigs_w + self._site.aux_w(rigs_w)
        return sums.get(self._meter.unit_id - 1, 0.0)


def _f(value: object) -> float:
    return float(value) if isinstance(value, int | float | str) else 0.0


def _nominal(model: str) -> float:
    return rig_model(model).nominal_power_w


def _split_ranges(plans: list[RigPlan], n: int) -> list[tuple[int, int]]:
    """Contiguous index ranges of TCP rigs, one per worker (TCP groups come first or last)."""
    indices = [p.index for p in plans]
    size = -(-len(indices) // n)
    ranges = []
    for k in range(0, len(indices), size):
        chunk = indices[k : k + size]
        ranges.append((chunk[0], chunk[-1] + 1))
    return ranges
