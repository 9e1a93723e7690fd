"""The alert rules minerd evaluates: name, scope, severity, and what a technician should do.

Rig, meter and site rules each own one bit of their subject's condition mask, so that the
engine compares one int per rig per evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from minerd.model import Severity


class Scope(StrEnum):
    RIG = "rig"
    CONTAINER = "container"  # many rigs of one container with the same rig fault
    METER = "meter"
    SITE = "site"


@dataclass(frozen=True)
class RuleSpec:
    name: str
    scope: Scope
    severity: Severity
    bit: int  # condition bit within its scope (0 for container rules)
    action: str  # what to do, appended to every description
    group: str | None = None  # rig rule: the container rule that replaces many of it
    rig_rule: str | None = None  # container rule: the rig rule it groups


_W, _C = Severity.WARNING, Severity.CRITICAL

RIG_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "RigOffline",
        Scope.RIG,
        _W,
        1,
        "Check the rig's power and network link (PDU breaker, switch port, cable); "
        "power-cycle it if it answers neither ping nor its API.",
        group="ContainerRigsOffline",
    ),
    RuleSpec(
        "RigHashrateLow",
        Scope.RIG,
        _W,
        2,
        "Check pool connection, hashboard temperatures and the rig's log; reboot it and "
        "open a repair ticket if the hashrate stays low.",
        group="ContainerHashrateLow",
    ),
    RuleSpec(
        "RigChipTempHigh",
        Scope.RIG,
        _C,
        4,
        "Check airflow or coolant at this rig (filters, fans, coolant flow and inlet "
        "temperature); lower its power or sleep it until the cause is fixed.",
        group="ContainerChipTempHigh",
    ),
    RuleSpec(
        "RigFanFailure",
        Scope.RIG,
        _C,
        8,
        "Replace the failed fan; the rig overheats or trips without it.",
        group="ContainerFanFailure",
    ),
    RuleSpec(
        "RigBoardDead",
        Scope.RIG,
        _W,
        16,
        "Reseat the hashboard's data and power cables and reboot; if the board stays "
        "missing, swap it and send it to repair.",
        group="ContainerBoardsDead",
    ),
    RuleSpec(
        "RigIgnoresCommands",
        Scope.RIG,
        _W,
        32,
        "The controller counts this rig at nominal power and sheds others instead. Check "
        "the rig's firmware API (password, curtail support) and reboot it.",
        group="ContainerRigsIgnoreCommands",
    ),
)

CONTAINER_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "ContainerRigsOffline",
        Scope.CONTAINER,
        _C,
        0,
        "Many rigs at once means a shared cause: check the container's feeder breaker, "
        "PDUs, network switch and uplink before visiting single rigs.",
        rig_rule="RigOffline",
    ),
    RuleSpec(
        "ContainerHashrateLow",
        Scope.CONTAINER,
        _W,
        0,
        "Many rigs at once: check the pool and the container's uplink, then cooling.",
        rig_rule="RigHashrateLow",
    ),
    RuleSpec(
        "ContainerChipTempHigh",
        Scope.CONTAINER,
        _C,
        0,
        "Many rigs at once: the container's cooling is failing (dry cooler, pumps, "
        "exhaust fans, inlet air). Lower the container's power until it is fixed.",
        rig_rule="RigChipTempHigh",
    ),
    RuleSpec(
        "ContainerFanFailure",
        Scope.CONTAINER,
        _C,
        0,
        "Many rigs report stopped fans: check the fan supply and the firmware's fan "
        "control before replacing fans one by one.",
        rig_rule="RigFanFailure",
    ),
    RuleSpec(
        "ContainerBoardsDead",
        Scope.CONTAINER,
        _W,
        0,
        "Many rigs lost boards at once: check supply voltage and PSU health in the container.",
        rig_rule="RigBoardDead",
    ),
    RuleSpec(
        "ContainerRigsIgnoreCommands",
        Scope.CONTAINER,
        _W,
        0,
        "Many rigs ignore commands: check the container's network path to minerd and "
        "the firmware version rolled out; the controller sheds other rigs meanwhile.",
        rig_rule="RigIgnoresCommands",
    ),
)

METER_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "MeterOffline",
        Scope.METER,
        _C,
        1,
        "Reads fail: check the meter's supply, the Modbus gateway and its cabling. A grid "
        "meter offline makes the controller shed to the fail-safe limit.",
    ),
    RuleSpec(
        "MeterStale",
        Scope.METER,
        _C,
        2,
        "Reads are too old although none failed: the poller is overloaded or the link is "
        "slow. Check minerd's poll errors and the gateway's load.",
    ),
    RuleSpec(
        "MeterFrozen",
        Scope.METER,
        _C,
        4,
        "The meter answers with the same values every time: its gateway or the meter's "
        "measuring part is hung. Power-cycle the gateway, then the meter.",
    ),
    RuleSpec(
        "MeterVoltageOutOfRange",
        Scope.METER,
        _W,
        8,
        "Check the supply with the grid operator and the transformer tap; rigs' PSUs "
        "trip outside their input range.",
    ),
    RuleSpec(
        "MeterPhaseImbalance",
        Scope.METER,
        _W,
        16,
        "Load is unevenly spread over the phases: look for rigs offline on one phase or "
        "a tripped single-phase breaker, and rebalance the PDUs.",
    ),
)

SITE_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "QuotaBreach",
        Scope.SITE,
        _C,
        1,
        "The site imports more than its limit. Check that the controller is shedding "
        "(rigs ignoring commands, stale meters); sleep rigs by hand if it does not.",
    ),
    RuleSpec(
        "FailsafeEngaged",
        Scope.SITE,
        _C,
        2,
        "The controller holds the site at the fail-safe limit. Fix the cause named here "
        "(usually the grid meter) to restore full power.",
    ),
    RuleSpec(
        "SpoolFilling",
        Scope.SITE,
        _W,
        4,
        "Telemetry is being spooled on disk because the time-series database does not take "
        "it. Restore the database or its network path before the spool is full and drops.",
    ),
    RuleSpec(
        "TsdbUnreachable",
        Scope.SITE,
        _W,
        8,
        "Writes to the time-series database fail: check its service, disk and credentials.",
    ),
    RuleSpec(
        "StorageFailing",
        Scope.SITE,
        _C,
        16,
        "minerd's database refuses writes (disk full or read-only): control goes on in "
        "memory, but new quotas are refused (HTTP 503) and a restart would lose recent "
        "state. Free space on the disk holding storage.path (df -h) or remount it "
        "read-write; minerd catches up by itself.",
    ),
    RuleSpec(
        "AuthFailures",
        Scope.SITE,
        _W,
        32,
        "Someone presents wrong API tokens. Find the client by its address: a script with "
        "an old token, or a guesser to block at the firewall. Valid tokens are never "
        "refused, so the grid authority's check-ins go on.",
    ),
    RuleSpec(
        "ClockStepped",
        Scope.SITE,
        _W,
        64,
        "The system clock jumped; minerd keeps site time (quotas in force stay in force). "
        "Check time sync (chronyc tracking / timedatectl): if the wall clock is wrong, fix "
        "its source and the alert clears; if it is right now, restart minerd to take it.",
    ),
    RuleSpec(
        "AwardShortfall",
        Scope.SITE,
        _W,
        128,
        "Prepaid energy was left unused although no power limit held the site back. Check "
        "why the fleet drew less than the pace asked: rigs offline, faulted or in "
        "maintenance, or a fleet too small for the award (GET /api/v1/site: energy, "
        "rigs_by_state); bring rigs back or bid less for the coming intervals.",
    ),
    RuleSpec(
        "AwardOverrun",
        Scope.SITE,
        _W,
        256,
        "The site ended slightly over its award (within tolerance): the excess is settled "
        "at the balancing price. If it recurs, compare the grid meter's register with the "
        "settlement meter and check the rigs that ignore commands.",
    ),
    RuleSpec(
        "AwardOverrunCritical",
        Scope.SITE,
        _C,
        512,
        "The site imported more than its award plus tolerance: the excess is settled at the "
        "balancing price and may be penalised. Check that the pace was in force (limit "
        "origin award), rigs that ignore commands and the grid meter's energy register; "
        "compare GET /api/v1/settlement with the market operator's figures.",
    ),
    RuleSpec(
        "EnergyRegisterFault",
        Scope.SITE,
        _W,
        1024,
        "The grid meter's energy register went backwards, jumped or disagrees with its "
        "power: the pace counts integrated power for this interval instead. Check the meter "
        "(replaced or reset, register rollover, word order or scale in its driver profile) "
        "and its gateway, and the settlement report's energy_source.",
    ),
)

ALL_RULES: tuple[RuleSpec, ...] = RIG_RULES + CONTAINER_RULES + METER_RULES + SITE_RULES
RULES_BY_NAME: dict[str, RuleSpec] = {r.name: r for r in ALL_RULES}
