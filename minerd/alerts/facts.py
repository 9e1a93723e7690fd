"""Site facts the alert rules need beside the fleet snapshot; the composition root fills them."""

from __future__ import annotations

from dataclasses import dataclass

from minerd.alerts.awardcheck import SettledInterval


@dataclass(frozen=True)
class SiteFacts:
    """What the control loop and the sinks know at the time of a snapshot.

    effective_limit_kw: the import limit in force (quota, operator cap, contracted or fail-safe).
    failsafe_engaged: the controller shed to the fail-safe limit (grid meter stale, ...).
    failsafe_reason: why, for the alert text ("grid meter stale").
    spool_fill_ratio: telemetry spool points / spool_max_points, 0..1.
    tsdb_reachable: the last write to the time-series database worked.
    commanded_not_reached: rigs that did not reach their last setpoint in time.
    storage_problem: which database writes fail and why ("" while storage works).
    auth_failures: wrong API tokens within the last minute, all addresses.
    auth_failure_sources: the addresses that sent most of them, with their counts.
    clock_stepped: the system clock is further from site time than a slew explains.
    clock_offset_s: wall minus site time, seconds.
    settled: the last settlement interval closed (None: none since start, or awards off).
    energy_register_faults: grid-meter energy register faults the pace judged since start.
    energy_register_fault: why the register is not believed in the interval in progress.
    """

    effective_limit_kw: float
    failsafe_engaged: bool = False
    failsafe_reason: str = ""
    spool_fill_ratio: float = 0.0
    tsdb_reachable: bool = True
    commanded_not_reached: frozenset[str] = frozenset()
    storage_problem: str = ""
    auth_failures: int = 0
    auth_failure_sources: tuple[tuple[str, int], ...] = ()
    clock_stepped: bool = False
    clock_offset_s: float = 0.0
    settled: SettledInterval | None = None
    energy_register_faults: int = 0
    energy_register_fault: str = ""
