"""Request and response bodies of the HTTP API (and the MQTT quota input)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
)

from minerd.api.schemas_awards import AwardNowOut, EnergyOut
from minerd.api.schemas_economics import EconomicsOut
from minerd.api.times import IsoTime, opt_dt, to_dt
from minerd.model import Alert, EffectiveLimit, Quota, QuotaSource, RigState

# 10 GW: far above any site, low enough to catch a unit mistake (W sent as kW).
MAX_LIMIT_KW = 10_000_000.0


def _plus_zero(limit_kw: float) -> float:
    return limit_kw + 0.0  # -0.0 passes ge=0; store and answer it as 0.0


# Strict: a JSON number, not "450" or true; integers are fine.
LimitKw = Annotated[
    float,
    Field(ge=0, le=MAX_LIMIT_KW, allow_inf_nan=False, strict=True),
    AfterValidator(_plus_zero),
]
Reference = Annotated[str, Field(min_length=1, max_length=200)]


def finite(x: float | None) -> float | None:
    """JSON has no infinity: an unknown or unbounded quantity is null."""
    return x if x is not None and math.isfinite(x) else None


def _after_start(end: datetime | None, info: ValidationInfo) -> datetime | None:
    # A field validator (not a model one) so that the error names "end".
    start = info.data.get("start")
    if end is not None and isinstance(start, datetime) and end <= start:
        raise ValueError("end must be after start")
    return end


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- quotas in


class QuotaRequest(Request):
    """A limit from the grid authority. Without start it applies at once; without end it
    holds until withdrawn or replaced."""

    limit_kw: LimitKw
    start: IsoTime | None = None
    end: IsoTime | None = None
    reference: Reference | None = None

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        return _after_start(end, info)


class ScheduleBlock(Request):
    limit_kw: LimitKw
    start: IsoTime
    end: IsoTime
    reference: Reference | None = None

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        return _after_start(end, info)


class ScheduleRequest(Request):
    """A day-ahead schedule: blocks that replace the scheduled blocks they overlap."""

    blocks: Annotated[list[ScheduleBlock], Field(min_length=1, max_length=5000)]


class OperatorCapRequest(Request):
    cap_kw: LimitKw | None


class MaintenanceRequest(Request):
    note: Annotated[str, Field(max_length=500)] = ""


# ---------------------------------------------------------------- quotas out


class QuotaOut(BaseModel):
    id: str
    limit_kw: float
    start: datetime
    end: datetime | None
    source: QuotaSource
    issued_at: datetime
    issued_by: str
    reference: str | None
    withdrawn_at: datetime | None
    effective_at: datetime  # when it takes (or took) effect: max(start, issued_at)

    @classmethod
    def of(cls, q: Quota) -> QuotaOut:
        return cls(
            id=q.quota_id,
            limit_kw=q.limit_kw,
            start=to_dt(q.start_s),
            end=opt_dt(q.end_s),
            source=q.source,
            issued_at=to_dt(q.issued_at_s),
            issued_by=q.issued_by,
            reference=q.reference,
            withdrawn_at=opt_dt(q.withdrawn_at_s),
            effective_at=to_dt(max(q.start_s, q.issued_at_s)),
        )


class LimitOut(BaseModel):
    limit_kw: float
    origin: str  # "quota", "operator-cap", "contracted", "failsafe"
    quota_id: str | None

    @classmethod
    def of(cls, lim: EffectiveLimit) -> LimitOut:
        return cls(limit_kw=lim.limit_kw, origin=lim.origin, quota_id=lim.quota_id)


class TimelineStep(BaseModel):
    start: datetime
    end: datetime
    limit_kw: float
    origin: str
    quota_id: str | None


class QuotaList(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    quotas: list[QuotaOut]
    timeline: list[TimelineStep]


class ScheduleOut(BaseModel):
    added: list[QuotaOut]
    withdrawn: list[str]
    notes: list[str] = []  # e.g. blocks above the contracted limit, which caps them


# ---------------------------------------------------------------- site, rigs, meters


class FailsafeOut(BaseModel):
    active: bool
    reason: str


class ShedClassOut(BaseModel):
    family: str  # firmware family (luxos, stock, vnish, whatsminer, braiins, modbus, mqtt)
    model: str  # rig profile id
    rigs: int  # hashing rigs of this class minerd may command now
    power_kw: float  # what they draw now (rig power)
    within_5s_kw: float  # site import kW they can shed within 5 s of a command
    within_60s_kw: float
    within_600s_kw: float


class ShedCapacityOut(BaseModel):
    """Site import kW that can be shed within 5 s, 60 s and 10 minutes of a command (what
    the grid meter would see: rig power times site_factor, aux load following rig load)."""

    within_5s_kw: float
    within_60s_kw: float
    within_600s_kw: float
    site_factor: float  # site import kW per rig kW shed (1 + aux_fraction)
    classes: list[ShedClassOut]  # by firmware family and model


class SiteOut(BaseModel):
    site: str
    taken_at: datetime
    timezone: str  # the site's IANA time zone ([site] timezone), for showing local times
    started_at: datetime | None  # when the daemon started (null if not known)
    role: str  # the role of the token that asked (grid, operator, viewer)
    grid_import_kw: float | None  # null until the grid meter has been read
    grid_fresh: bool
    limit: LimitOut  # what the controller holds the site to (origin "failsafe" while it applies)
    in_force: LimitOut  # what the quota, operator cap or contract sets now, before the fail-safe
    # Who sent the quota in force (api, mqtt, schedule, iec104, openadr); null: no quota.
    quota_source: QuotaSource | None = None
    contracted_limit_kw: float
    failsafe_limit_kw: float
    operator_cap_kw: float | None
    rig_budget_kw: float
    planned_power_kw: float
    rig_power_kw: float
    commandable_power_kw: float  # drawn now by rigs minerd can command (read-only ones not)
    commandable_share: float  # commandable share of the fleet's nominal power, 0..1
    hashrate_ths: float
    rigs_by_state: dict[RigState, int]
    rigs_total: int
    failsafe: FailsafeOut
    cycle: int
    # The settlement interval in progress: mean import / limit so far (null before data),
    # and why it is under 97 % ("" when it is not): margin, fleet could not, min-off hold...
    interval_utilization: float | None = None
    interval_under_reason: str = ""
    economics: EconomicsOut | None = None  # price-aware dispatch; null when [economics] is off
    shed_capacity: ShedCapacityOut | None = None  # null before the first control cycle
    # The energy award of the settlement interval in progress; null when awards are not run.
    award: AwardNowOut | None = None
    # The award in force as the controller paces it (its count, target and the meter's
    # register); null when no award is in force.
    energy: EnergyOut | None = None


class HistoryPointOut(BaseModel):
    at: datetime
    grid_import_kw: float | None
    limit_kw: float | None
    rig_budget_kw: float | None
    hashrate_ths: float | None


class SiteHistoryOut(BaseModel):
    points: list[HistoryPointOut]


class RigOut(BaseModel):
    id: str
    model: str
    container: str
    host: str
    port: int
    protocol: str
    state: RigState
    reason: str
    fresh: bool
    maintenance: bool
    unresponsive: bool
    power_w: float | None
    power_estimated: bool
    hashrate_ths: float | None
    chip_temp_max_c: float | None
    fan_rpm_min: int | None
    boards_ok: int
    boards_total: int
    profile: str | None
    power_limit_w: float | None
    read_at: datetime | None  # null before the first read
    age_s: float | None


class RigPage(BaseModel):
    total: int  # rigs matching the filter
    offset: int
    limit: int
    next_cursor: str | None  # pass as ?cursor= for the next page; null on the last page
    rigs: list[RigOut]


class MaintenanceOut(BaseModel):
    rig_id: str
    maintenance: bool
    by: str | None
    since: datetime | None
    note: str


class RigDetail(RigOut):
    maintenance_by: str | None
    maintenance_since: datetime | None


class MeterOut(BaseModel):
    name: str
    role: str
    container: str
    endpoint: str
    fresh: bool
    age_s: float | None
    error: str
    power_kw: float | None
    power_l1_kw: float | None
    power_l2_kw: float | None
    power_l3_kw: float | None
    voltage_l1_v: float | None
    voltage_l2_v: float | None
    voltage_l3_v: float | None
    energy_import_kwh: float | None
    read_at: datetime | None


class MeterList(BaseModel):
    meters: list[MeterOut]


# ---------------------------------------------------------------- compliance, audit, cap


class ComplianceOut(BaseModel):
    interval_start: datetime
    interval_end: datetime
    interval_s: float
    avg_import_kw: float
    limit_kw: float
    max_excess_kw: float
    seconds_over: float
    energy_over_kwh: float
    samples: int
    compliant: bool
    utilization: float  # mean import / limit
    under_reason: str  # why under 97 % of the limit ("" when not): margin, fleet could not...


class ComplianceSummary(BaseModel):
    intervals: int
    intervals_over: int
    energy_over_kwh: float
    max_excess_kw: float
    mean_utilization: float  # over the records, weighted by their limit
    intervals_under_target: int  # under 97 % of the limit


class ComplianceReport(BaseModel):
    site: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    interval_s: float
    summary: ComplianceSummary
    records: list[ComplianceOut]


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: JsonValue


class AuditList(BaseModel):
    entries: list[AuditOut]


class OperatorCapOut(BaseModel):
    cap_kw: float | None
    set_by: str
    set_at: datetime


# ---------------------------------------------------------------- alerts


class AlertOut(BaseModel):
    id: str
    rule: str
    severity: str
    labels: dict[str, str]
    summary: str
    description: str
    starts_at: datetime
    ends_at: datetime | None
    active: bool
    acknowledged_by: str | None
    acknowledged_at: datetime | None

    @classmethod
    def of(cls, a: Alert) -> AlertOut:
        return cls(
            id=a.alert_id,
            rule=a.rule,
            severity=a.severity.value,
            labels=dict(a.labels),
            summary=a.summary,
            description=a.description,
            starts_at=to_dt(a.starts_at_s),
            ends_at=opt_dt(a.ends_at_s),
            active=a.active,
            acknowledged_by=a.acknowledged_by,
            acknowledged_at=opt_dt(a.acknowledged_at_s),
        )


class AlertList(BaseModel):
    enabled: bool  # false when alerting is not configured in this daemon
    active: list[AlertOut]
    history: list[AlertOut]


# ---------------------------------------------------------------- health


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    reasons: list[str]
