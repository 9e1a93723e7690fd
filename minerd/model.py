"""Frozen value types shared by every layer. Units are in the names.

Times are unix seconds (UTC, float) from the injected clock unless a name says otherwise.
This module imports nothing of minerd: it is the vocabulary the layers speak.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from enum import StrEnum

# ---------------------------------------------------------------- enums


class RigState(StrEnum):
    HASHING = "hashing"
    SLEEPING = "sleeping"
    OFFLINE = "offline"
    FAULT = "fault"
    UNKNOWN = "unknown"


class MeterRole(StrEnum):
    GRID = "grid"
    FEEDER = "feeder"
    AUX = "aux"


class ControlMode(StrEnum):
    SLEEP_WAKE = "sleep_wake"
    PROFILES = "profiles"
    POWER_TARGET = "power_target"


class RigProtocol(StrEnum):
    """How minerd talks to a rig (the driver flavour of a rig group)."""

    LUXOS = "luxos"  # cgminer JSON API on 4028 with LuxOS curtail/profileset
    CGMINER = "cgminer"  # cgminer JSON API, read only
    STOCK = "stock"  # Bitmain stock: cgminer 4028 read, HTTP CGI (digest auth) control
    VNISH = "vnish"  # Vnish/AnthillOS: cgminer 4028 read, REST /api/v1 (bearer) control
    WHATSMINER = "whatsminer"  # MicroBT btminer: API v2 on 4028, API v3 on 4433
    BRAIINS = "braiins"  # Braiins OS+: gRPC bos.v1 on 50051, legacy bmminer API on 4028
    MODBUS = "modbus"  # rig behind a container PLC, register map
    MQTT = "mqtt"  # JSON telemetry and commands over a broker


class RegisterType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"

    @property
    def register_count(self) -> int:
        return {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}.get(self.value, 4)

    @property
    def struct_format(self) -> str:
        """struct format of the value as big-endian bytes (word and byte order applied after)."""
        return _STRUCT_FORMATS[self.value]


_STRUCT_FORMATS = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
    "uint64": ">Q",
    "float32": ">f",
}


class ByteOrder(StrEnum):
    BIG = "big"
    LITTLE = "little"


class WordOrder(StrEnum):
    HIGH_FIRST = "high_first"
    LOW_FIRST = "low_first"


class QuotaSource(StrEnum):
    API = "api"
    MQTT = "mqtt"
    SCHEDULE = "schedule"
    CONFIG = "config"
    IEC104 = "iec104"  # a setpoint from the dispatcher's SCADA (IEC 60870-5-104)
    OPENADR = "openadr"  # an OpenADR 2.0b event from a VTN
    FILE = "file"  # a file dropped in the awards inbox folder
    REGION = "region"  # the regional coordinator's share of a regional energy award


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class RigAction(StrEnum):
    SLEEP = "sleep"
    WAKE = "wake"
    SET_PROFILE = "set_profile"
    SET_POWER = "set_power"


# ---------------------------------------------------------------- device profiles


@dataclass(frozen=True)
class PowerProfile:
    """A discrete power step a rig offers (LuxOS profileset, Antminer low-power mode)."""

    name: str
    power_w: float
    hashrate_ths: float


@dataclass(frozen=True)
class CurvePoint:
    power_w: float
    hashrate_ths: float


@dataclass(frozen=True)
class FirmwareReaction:
    """How one firmware family behaves on one rig model (a `[firmware.<family>]` table).

    The planner asks `RigModel.reaction(family)`: a cut is met first by the rigs that obey
    fastest, and a slow rig is counted at its power until it is seen to have changed.
    """

    family: RigProtocol
    sleep_time_s: float  # command sent until the rig draws sleep power
    wake_time_s: float  # command sent until the rig hashes at its target again
    command_timeout_s: float  # how long a command may take to be answered
    modes: frozenset[ControlMode]  # what this family can do on this model
    power_steps_w: tuple[float, ...] = ()  # discrete power presets (Vnish), ascending
    power_change_s: float = 0.0  # a power target/limit change until it holds


@dataclass(frozen=True)
class RigModel:
    """A rig model as described by drivers/rigs/<vendor>-<model>.toml."""

    name: str  # profile id, the file stem: "bitmain-s19jpro"
    vendor: str
    model: str
    nominal_power_w: float
    nominal_hashrate_ths: float
    sleep_power_w: float
    min_power_w: float
    max_power_w: float
    modes: frozenset[ControlMode]
    profiles: tuple[PowerProfile, ...]  # ascending power
    curve: tuple[CurvePoint, ...]  # ascending power, hashrate versus power
    wake_time_s: float
    sleep_time_s: float
    chip_temp_derate_c: float  # above this the planner lowers the rig's power
    chip_temp_max_c: float  # firmware protection trips here
    boards: int
    fans: int
    fan_rpm_nominal: int
    # Per firmware family; a family without a table falls back to the top-level times.
    firmware: tuple[FirmwareReaction, ...] = ()

    def reaction(self, family: RigProtocol) -> FirmwareReaction:
        """This model's reaction times and modes under `family` (defaults: top-level keys)."""
        for r in self.firmware:
            if r.family is family:
                return r
        return FirmwareReaction(
            family=family,
            sleep_time_s=self.sleep_time_s,
            wake_time_s=self.wake_time_s,
            command_timeout_s=max(self.sleep_time_s, self.wake_time_s, 5.0),
            modes=frozenset() if family is RigProtocol.CGMINER else self.modes,
        )

    def for_family(self, family: RigProtocol) -> RigModel:
        """This model as `family` drives it: its sleep/wake times and modes replace the
        top-level (LuxOS) ones, so the planner and verification need no family switch."""
        for r in self.firmware:
            if r.family is family:
                return replace(
                    self, sleep_time_s=r.sleep_time_s, wake_time_s=r.wake_time_s, modes=r.modes
                )
        if family is RigProtocol.CGMINER:  # read only: the planner must not count on it
            return replace(self, modes=frozenset())
        return self

    def hashrate_at(self, power_w: float) -> float:
        """Hashrate the curve gives at power_w (linear between points, 0 below the first)."""
        pts = self.curve
        if not pts or power_w < pts[0].power_w:
            return 0.0
        if power_w >= pts[-1].power_w:
            return pts[-1].hashrate_ths
        powers = [p.power_w for p in pts]
        i = bisect.bisect_right(powers, power_w)
        lo, hi = pts[i - 1], pts[i]
        frac = (power_w - lo.power_w) / (hi.power_w - lo.power_w)
        return lo.hashrate_ths + frac * (hi.hashrate_ths - lo.hashrate_ths)

    def profile(self, name: str) -> PowerProfile | None:
        for p in self.profiles:
            if p.name == name:
                return p
        return None


@dataclass(frozen=True)
class RegisterPoint:
    """One quantity in a Modbus register map."""

    name: str  # canonical quantity: power_w, voltage_l1_v, energy_import_kwh...
    address: int  # wire address, 0-based
    type: RegisterType
    scale: float  # raw * scale gives `unit`
    unit: str  # unit of the scaled value: W, kW, V, A, Wh, kWh, C, rpm, THs, "" ...
    writable: bool = False
    min_value: float | None = None
    max_value: float | None = None

    @property
    def register_count(self) -> int:
        return self.type.register_count


@dataclass(frozen=True)
class RegisterMap:
    """A Modbus device profile: drivers/meters/*.toml or a rig PLC map."""

    name: str
    vendor: str
    model: str
    function_code: int  # 3 holding or 4 input registers
    byte_order: ByteOrder
    word_order: WordOrder
    points: tuple[RegisterPoint, ...]

    def point(self, name: str) -> RegisterPoint | None:
        for p in self.points:
            if p.name == name:
                return p
        return None


# ---------------------------------------------------------------- readings


@dataclass(frozen=True)
class MeterReading:
    """One meter read, converted to W, V, A and kWh. None means "this meter has no such point"."""

    meter: str
    taken_at_s: float
    power_w: float
    power_l1_w: float | None = None
    power_l2_w: float | None = None
    power_l3_w: float | None = None
    voltage_l1_v: float | None = None
    voltage_l2_v: float | None = None
    voltage_l3_v: float | None = None
    current_l1_a: float | None = None
    current_l2_a: float | None = None
    current_l3_a: float | None = None
    energy_import_kwh: float | None = None
    energy_export_kwh: float | None = None
    # The read took this long: the meter sampled its values somewhere within taken_at_s
    # plus or minus half of it (the energy pace counts the register on the safe side).
    read_window_s: float = 0.0


@dataclass(frozen=True)
class RigReading:
    rig: str
    taken_at_s: float
    state: RigState
    reason: str  # why this state: "", "asleep", "offline: connection refused", "overheat 96C"...
    hashrate_ths: float = 0.0
    power_w: float = 0.0
    power_estimated: bool = False  # true when the rig does not report power
    chip_temp_max_c: float | None = None
    fan_rpm_min: int | None = None
    boards_ok: int = 0
    boards_total: int = 0
    profile: str | None = None
    power_limit_w: float | None = None
    uptime_s: float = 0.0


# ---------------------------------------------------------------- fleet snapshot


@dataclass(frozen=True)
class RigStatus:
    """One rig as the controller sees it in a snapshot."""

    rig_id: str
    model: str  # RigModel.name
    container: str
    host: str
    port: int
    protocol: RigProtocol
    reading: RigReading  # its age is snapshot.taken_at_s - reading.taken_at_s
    fresh: bool  # the reading is younger than the rig's stale age
    maintenance: bool = False  # pinned by an operator: not dispatched
    unresponsive: bool = False  # did not reach its last setpoint: counted at nominal


@dataclass(frozen=True)
class MeterStatus:
    meter: str
    role: MeterRole
    container: str
    reading: MeterReading | None  # None only before the first successful read
    fresh: bool
    age_s: float
    error: str = ""  # reason of the last failure, "" when the last read worked


@dataclass(frozen=True)
class FleetSnapshot:
    """One consistent image of the site at taken_at_s; the controller's only input."""

    taken_at_s: float
    rigs: tuple[RigStatus, ...]
    meters: tuple[MeterStatus, ...]

    @property
    def grid_meters(self) -> tuple[MeterStatus, ...]:
        return tuple(m for m in self.meters if m.role is MeterRole.GRID)

    @property
    def grid_fresh(self) -> bool:
        grid = self.grid_meters
        return bool(grid) and all(m.fresh and m.reading is not None for m in grid)

    @property
    def grid_read(self) -> bool:
        """Every grid meter has answered once since start: before that the import is
        unknown, not 0."""
        grid = self.grid_meters
        return bool(grid) and all(m.reading is not None for m in grid)

    @property
    def grid_import_w(self) -> float:
        return sum(m.reading.power_w for m in self.grid_meters if m.reading is not None)

    @property
    def rig_power_w(self) -> float:
        return sum(r.reading.power_w for r in self.rigs)

    @property
    def hashrate_ths(self) -> float:
        return sum(r.reading.hashrate_ths for r in self.rigs)

    def counts_by_state(self) -> dict[RigState, int]:
        counts = dict.fromkeys(RigState, 0)
        for r in self.rigs:
            counts[r.reading.state] += 1
        return counts


# ---------------------------------------------------------------- control


@dataclass(frozen=True)
class RigSetpoint:
    """What one rig should do, and why."""

    rig_id: str
    awake: bool
    power_w: float  # planned draw: sleep power when asleep
    profile: str | None = None  # for PROFILES rigs
    reason: str = ""


@dataclass(frozen=True)
class RigCommand:
    """One command the executor sends to one rig."""

    rig_id: str
    action: RigAction
    profile: str | None = None
    power_w: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Quota:
    quota_id: str
    limit_kw: float
    start_s: float
    end_s: float | None
    source: QuotaSource
    issued_at_s: float
    issued_by: str
    reference: str | None = None
    withdrawn_at_s: float | None = None

    def covers(self, t_s: float) -> bool:
        if self.withdrawn_at_s is not None and self.withdrawn_at_s <= t_s:
            return False
        return self.start_s <= t_s and (self.end_s is None or t_s < self.end_s)


@dataclass(frozen=True)
class EnergyAward:
    """Energy bought for one settlement interval (day-ahead market): the site should import
    this much in [start_s, end_s), no more, and not much less (it is paid in advance)."""

    award_id: str
    start_s: float  # interval start, epoch seconds (intervals follow the site's timezone)
    end_s: float
    energy_kwh: float
    source: QuotaSource
    issued_at_s: float
    issued_by: str
    reference: str | None = None
    withdrawn_at_s: float | None = None

    @property
    def interval_s(self) -> float:
        return self.end_s - self.start_s

    def covers(self, t_s: float) -> bool:
        if self.withdrawn_at_s is not None and self.withdrawn_at_s <= t_s:
            return False
        return self.start_s <= t_s < self.end_s


@dataclass(frozen=True)
class SettlementRecord:
    """One settlement interval closed: energy awarded against energy imported, the peak,
    and the time spent over a power limit (the hourly settlement report, issue 15)."""

    interval_start_s: float
    interval_s: float
    imported_kwh: float  # as settled: the meter register's delta when it is believed
    integrated_kwh: float  # integral of the grid meter's power readings
    register_kwh: float | None  # the energy register's delta; None: no register
    peak_kw: float
    seconds_over: float  # above the power limit in force (quota, cap, contract, fail-safe)
    covered_s: float  # seconds with fresh grid-meter data
    samples: int
    awarded_kwh: float | None = None  # None: no award for this interval
    award_id: str | None = None
    note: str = ""  # why the register was not believed, gaps, ...

    @property
    def interval_end_s(self) -> float:
        return self.interval_start_s + self.interval_s

    @property
    def deviation_kwh(self) -> float | None:
        """Imported minus awarded (positive: over the award)."""
        return None if self.awarded_kwh is None else self.imported_kwh - self.awarded_kwh

    @property
    def deviation_pct(self) -> float | None:
        dev = self.deviation_kwh
        if dev is None or self.awarded_kwh is None or self.awarded_kwh <= 0.0:
            return None
        return 100.0 * dev / self.awarded_kwh


@dataclass(frozen=True)
class EffectiveLimit:
    limit_kw: float
    origin: str  # "quota", "operator-cap", "contracted", "failsafe"
    quota_id: str | None = None
    # Who sent the quota (origin "quota"); a label, not part of what the limit is.
    source: QuotaSource | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ShedClass:
    """What one model under one firmware family can shed (control.shed_capacity)."""

    family: RigProtocol
    model: str  # RigModel.name
    rigs: int  # hashing rigs minerd may command now
    power_w: float  # what those rigs draw now
    shed_w: tuple[float, ...]  # rig power they can shed within each horizon


@dataclass(frozen=True)
class ShedCapacity:
    """Power the site can shed within each horizon (a grid authority's "whom to cut").

    Figures are site import (what the grid meter sees): rig power times site_factor
    (1 + the loop's aux_fraction: cooling follows IT load)."""

    horizons_s: tuple[float, ...]  # ascending: 5 s, 60 s, 600 s by default
    site_factor: float
    classes: tuple[ShedClass, ...]  # by family, then model

    @property
    def rig_w(self) -> tuple[float, ...]:
        return tuple(sum(c.shed_w[i] for c in self.classes) for i in range(len(self.horizons_s)))

    @property
    def site_kw(self) -> tuple[float, ...]:
        return tuple(w * self.site_factor / 1000.0 for w in self.rig_w)

    def within_kw(self, horizon_s: float) -> float:
        """Site import kW sheddable within horizon_s (0 for a horizon not computed)."""
        for h, kw in zip(self.horizons_s, self.site_kw, strict=True):
            if h == horizon_s:
                return kw
        return 0.0

    def family_site_kw(self) -> dict[RigProtocol, tuple[float, ...]]:
        out: dict[RigProtocol, list[float]] = {}
        for c in self.classes:
            acc = out.setdefault(c.family, [0.0] * len(self.horizons_s))
            for i, w in enumerate(c.shed_w):
                acc[i] += w * self.site_factor / 1000.0
        return {f: tuple(v) for f, v in out.items()}


@dataclass(frozen=True)
class ComplianceRecord:
    interval_start_s: float
    interval_s: float
    avg_import_kw: float
    limit_kw: float  # the lowest limit in force during the interval
    max_excess_kw: float
    seconds_over: float
    energy_over_kwh: float
    samples: int
    # Why the interval drew under 97 % of its limit (control.utilization's reasons: "margin",
    # "fleet could not", "rigs unresponsive", "min-off hold", ...); "" when it did not.
    under_reason: str = ""

    @property
    def utilization(self) -> float:
        """Mean import / limit over the interval (0 with no limit known)."""
        if not self.limit_kw > 0.0 or self.limit_kw == float("inf"):
            return 0.0
        return self.avg_import_kw / self.limit_kw


# ---------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Alert:
    alert_id: str
    rule: str
    severity: Severity
    labels: tuple[tuple[str, str], ...]
    summary: str
    description: str
    starts_at_s: float
    ends_at_s: float | None = None
    acknowledged_by: str | None = None
    acknowledged_at_s: float | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())

    @property
    def active(self) -> bool:
        return self.ends_at_s is None
