"""What a simulated site looks like: rig groups, containers, meters, addresses.

A SiteSpec is pure data; plan_rigs() turns it into one RigPlan per rig with its id, loopback
address and container, the same way on every worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minerd.model import RigProtocol

# Every rig firmware family answers the cgminer API on its own 4028 listener.
TCP_PROTOCOLS = (
    RigProtocol.LUXOS,
    RigProtocol.CGMINER,
    RigProtocol.STOCK,
    RigProtocol.VNISH,
    RigProtocol.WHATSMINER,
    RigProtocol.BRAIINS,
)


@dataclass(frozen=True)
class RigGroupSpec:
    """`count` rigs of one model spoken to over one protocol."""

    model: str  # RigModel.name, a drivers/rigs/*.toml stem
    count: int
    protocol: RigProtocol = RigProtocol.LUXOS
    profile: str | None = None  # starting LuxOS profile; None: the model's nominal one


@dataclass(frozen=True)
class SiteSpec:
    groups: tuple[RigGroupSpec, ...]
    name: str = "sim-site"
    rigs_per_container: int = 250
    speed: float = 1.0
    base_octet: int = 1  # container c's rigs live on 127.<base_octet + c>.x.y
    rig_port: int = 4028  # 0: an ephemeral port per rig (the config then lists each port)
    meter_host: str = "127.0.0.1"
    meter_port: int = 0  # 0: ephemeral; the grid meter gateway, feeders on the next server
    grid_meter_profile: str = "janitza-umg604"
    feeder_meter_profile: str = "eastron-sdm630"
    feeder_meters: bool = True
    plc_port: int = 0  # Modbus rigs: one PLC server per container on 127.<b+c>.255.1
    mqtt_url: str | None = None  # broker for MQTT rigs: mqtt://host:port
    mqtt_prefix: str = "rigs"
    control: str = "127.0.0.1:0"  # HTTP control endpoint (GET /truth, POST/DELETE /faults)
    workers: int = 0  # processes serving TCP rigs; 0 picks by size, 1 runs in-process
    # Extra per-rig servers of some families (minerd.sim.family_servers); 0: ephemeral.
    web_port: int = 8080  # stock CGI and Vnish REST (80 on a real rig)
    whatsminer_api_port: int = 4433  # Whatsminer API v3
    grpc_port: int = 50051  # Braiins OS+ gRPC
    ambient_c: float = 25.0
    aux_base_w: float = 5_000.0  # offices, lighting, network: always on
    aux_fraction: float = 0.06  # cooling, as a fraction of rig load
    transformer_loss_fraction: float = 0.015  # copper losses at nominal load (quadratic)
    noise_fraction: float = 0.002  # meter noise, relative standard deviation
    seed: int = 1
    initial_faults: tuple[tuple[str, str], ...] = field(default=())  # (device, fault)

    @property
    def rig_count(self) -> int:
        return sum(g.count for g in self.groups)

    def worker_count(self) -> int:
        if self.workers > 0:
            return self.workers
        tcp = sum(g.count for g in self.groups if g.protocol in TCP_PROTOCOLS)
        # a rig costs one listening socket; keep each process far under 20,000 open files
        return 1 if tcp <= 4_000 else max(2, -(-tcp // 12_000))


@dataclass(frozen=True)
class RigPlan:
    index: int
    rig_id: str
    model: str
    protocol: RigProtocol
    container: int
    host: str
    port: int
    unit_id: int  # Modbus unit id behind the container PLC (1-based), 0 otherwise
    profile: str | None
    family_port: int = 0  # the family's extra server (web, API v3, gRPC); 0: ephemeral or none

    @property
    def family(self) -> RigProtocol:
        """The firmware the rig runs (its reply layouts, reaction times, extra servers)."""
        return self.protocol

    @property
    def container_name(self) -> str:
        return container_name(self.container)


def container_name(container: int) -> str:
    return f"c{container + 1:03d}"


def plc_host(spec: SiteSpec, container: int) -> str:
    return f"127.{spec.base_octet + container}.255.1"


def plan_rigs(spec: SiteSpec) -> list[RigPlan]:
    plans: list[RigPlan] = []
    index = 0
    plc_units: dict[int, int] = {}
    for group in spec.groups:
        for _ in range(group.count):
            container, slot = divmod(index, spec.rigs_per_container)
            second = spec.base_octet + container
            if second > 254 or slot >= 250 * 254:
                raise ValueError(f"rig {index}: no loopback address left (container {container})")
            host = f"127.{second}.{slot // 250}.{slot % 250 + 1}"
            port = spec.rig_port
            unit_id = 0
            if group.protocol is RigProtocol.MODBUS:
                unit_id = plc_units.get(container, 0) + 1
                if unit_id > 247:
                    raise ValueError(f"container {container}: more than 247 Modbus rigs")
                plc_units[container] = unit_id
                host, port = plc_host(spec, container), spec.plc_port
            elif group.protocol is RigProtocol.MQTT:
                port = 0
            plans.append(
                RigPlan(
                    index=index,
                    rig_id=f"{container_name(container)}-r{slot + 1:03d}",
                    model=group.model,
                    protocol=group.protocol,
                    container=container,
                    host=host,
                    port=port,
                    unit_id=unit_id,
                    profile=group.profile,
                    family_port=family_port(spec, group.protocol),
                )
            )
            index += 1
    return plans


def family_port(spec: SiteSpec, family: RigProtocol) -> int:
    """Where a family's extra server listens on each rig's own address (0: ephemeral/none)."""
    return {
        RigProtocol.STOCK: spec.web_port,
        RigProtocol.VNISH: spec.web_port,
        RigProtocol.WHATSMINER: spec.whatsminer_api_port,
        RigProtocol.BRAIINS: spec.grpc_port,
    }.get(family, 0)


def container_count(spec: SiteSpec) -> int:
    return -(-spec.rig_count // spec.rigs_per_container) if spec.rig_count else 0
