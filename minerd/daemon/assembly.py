"""Build the site's devices from validated settings (part of the composition root).

Each rig group becomes one driver instance per rig; each meter endpoint gets one Modbus hub
shared by every unit behind it, because a gateway serves one request at a time.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from minerd.clock import Clock, system_clock
from minerd.devices.inventory import InventoryRow, read_inventory_csv, rows_for_hosts
from minerd.devices.meter import Meter
from minerd.devices.registry import BUILDERS, build_rig
from minerd.devices.rig import Rig
from minerd.devices.rig_luxos import SessionCache
from minerd.devices.rig_modbus import ModbusRig
from minerd.devices.rig_mqtt import MqttRig, MqttRigHub
from minerd.devices.target import RigTarget
from minerd.model import MeterRole, RigModel, RigProtocol
from minerd.profiles import load_meter_map, load_rig_model, load_rig_register_map
from minerd.runtime.devices import MeterInfo, RigInfo
from minerd.settings import Settings
from minerd.settings.models import RigGroupSettings
from minerd.transports.modbus_pool import ModbusHubPool
from minerd.transports.mqtt import MqttSession


@dataclass
class SiteDevices:
    rig_infos: list[RigInfo] = field(default_factory=list)
    rigs: list[Rig] = field(default_factory=list)
    models: dict[str, RigModel] = field(default_factory=dict)  # rig_id -> model
    meter_infos: list[MeterInfo] = field(default_factory=list)
    meters: list[Meter] = field(default_factory=list)
    hubs: ModbusHubPool = field(default_factory=ModbusHubPool)
    mqtt_rigs: MqttSession | None = None
    mqtt_rig_hubs: list[MqttRigHub] = field(default_factory=list)

    async def aclose(self) -> None:
        for rig in self.rigs:
            with contextlib.suppress(Exception):
                await rig.aclose()
        await self.hubs.close()


def rig_stale_after_s(group: RigGroupSettings) -> float:
    # Three missed polls (plus the read timeout) before a reading stops counting as fresh.
    return 3 * group.interval_s + group.timeout_s


def _rows(group: RigGroupSettings) -> list[InventoryRow]:
    if group.csv is not None:
        return read_inventory_csv(group.csv, group.port, group.container)
    return rows_for_hosts(group.hosts, group.port, group.container)


def build_devices(
    settings: Settings, sessions: SessionCache | None = None, clock: Clock | None = None
) -> SiteDevices:
    """Every meter and rig of the site; LuxOS sessions survive restarts through `sessions`
    and age on `clock` (the daemon's injected clock)."""
    out = SiteDevices()
    for m in settings.meters:
        hub = out.hubs.hub(m.endpoint)
        out.meters.append(
            Meter(m.name, load_meter_map(m.profile), hub, m.unit_id, timeout_s=m.timeout_s)
        )
        out.meter_infos.append(
            MeterInfo(
                name=m.name,
                role=MeterRole(m.role),
                container=m.container,
                endpoint=f"{m.endpoint} unit {m.unit_id}",
                interval_s=m.interval_s,
                timeout_s=m.timeout_s,
                stale_after_s=m.stale_after_s,
            )
        )
    for group in settings.rigs:
        _add_group(out, settings, group, sessions, clock)
    return out


def _mqtt_hub(
    out: SiteDevices, settings: Settings, group: RigGroupSettings, clock: Clock | None
) -> MqttRigHub:
    if out.mqtt_rigs is None:
        out.mqtt_rigs = MqttSession.from_url(
            settings.mqtt.url,
            name="mqtt-rigs",
            username=settings.mqtt.username or None,
            password=settings.mqtt.password_value,
        )
    for hub in out.mqtt_rig_hubs:
        if hub.prefix == group.topic_prefix.rstrip("/"):
            return hub
    hub = MqttRigHub(
        out.mqtt_rigs,
        group.topic_prefix,
        stale_after_s=rig_stale_after_s(group),
        clock=clock or system_clock,
    )
    out.mqtt_rig_hubs.append(hub)
    return hub


def _target(
    group: RigGroupSettings,
    row: InventoryRow,
    model: RigModel,
    sessions: SessionCache | None,
    clock: Clock | None,
) -> RigTarget:
    return RigTarget(
        rig_id=row.id,
        host=row.host,
        port=row.port,
        model=model,
        container=row.container,
        timeout_s=group.timeout_s,
        username=group.username_value,
        password=group.password_value,
        web_port=group.web_port,
        api_port=group.api_port,
        grpc_port=group.grpc_port,
        clock=clock,
        sessions=sessions,
    )


def _add_group(
    out: SiteDevices,
    settings: Settings,
    group: RigGroupSettings,
    sessions: SessionCache | None,
    clock: Clock | None = None,
) -> None:
    protocol = RigProtocol(group.driver)
    # The family's reaction times and modes ([firmware.<family>]) are what the planner sees.
    model = load_rig_model(group.profile).for_family(protocol)
    rows = _rows(group)
    if protocol is RigProtocol.MODBUS and len(rows) == 1:
        # A rig behind a PLC shares the PLC's address with its neighbours: name it by group.
        rows = [InventoryRow(group.name, rows[0].host, rows[0].port, rows[0].container)]
    for row in rows:
        rig: Rig
        if protocol in BUILDERS:
            rig = build_rig(protocol, _target(group, row, model, sessions, clock))
        elif protocol is RigProtocol.MODBUS:
            hub = out.hubs.hub(f"tcp://{row.host}:{row.port}")
            rig = ModbusRig(
                row.id,
                hub,
                group.unit_id,
                model,
                container=row.container,
                register_map=load_rig_register_map(group.register_map),
                timeout_s=group.timeout_s,
            )
        else:
            rig = MqttRig(
                row.id,
                _mqtt_hub(out, settings, group, clock),
                model,
                container=row.container,
                timeout_s=group.timeout_s,
            )
        out.rigs.append(rig)
        out.models[row.id] = model
        out.rig_infos.append(
            RigInfo(
                rig_id=row.id,
                model=model.name,
                container=row.container,
                host=row.host,
                port=row.port,
                protocol=protocol,
                interval_s=group.interval_s,
                timeout_s=group.timeout_s,
                stale_after_s=rig_stale_after_s(group),
            )
        )
