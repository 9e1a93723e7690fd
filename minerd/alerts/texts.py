"""Short summaries (one line for a pager) per rule; the measured values go in descriptions."""

from __future__ import annotations

from minerd.alerts.facts import SiteFacts
from minerd.model import FleetSnapshot

PHRASES: dict[str, str] = {
    "RigOffline": "offline",
    "RigHashrateLow": "hashrate low",
    "RigChipTempHigh": "chip temperature high",
    "RigFanFailure": "fan failure",
    "RigBoardDead": "hashboard dead",
    "RigIgnoresCommands": "ignores commands",
    "MeterOffline": "offline",
    "MeterStale": "readings stale",
    "MeterFrozen": "values frozen",
    "MeterVoltageOutOfRange": "voltage out of range",
    "MeterPhaseImbalance": "phase imbalance",
}

GROUP_PHRASES: dict[str, str] = {
    "ContainerRigsOffline": "offline",
    "ContainerHashrateLow": "with low hashrate",
    "ContainerChipTempHigh": "over chip temperature limit",
    "ContainerFanFailure": "with failed fans",
    "ContainerBoardsDead": "with dead hashboards",
    "ContainerRigsIgnoreCommands": "ignoring commands",
}


def rig_summary(rule: str, rig_id: str) -> str:
    return f"Rig {rig_id} {PHRASES.get(rule, rule)}"


def container_summary(rule: str, container: str, count: int, total: int) -> str:
    return f"{count} of {total} rigs {GROUP_PHRASES.get(rule, rule)} in container {container}"


def meter_summary(rule: str, meter: str, role: str) -> str:
    return f"{role.capitalize()} meter {meter} {PHRASES.get(rule, rule)}"


def site_texts(
    rule: str, site: str, snap: FleetSnapshot, facts: SiteFacts, held_s: float
) -> tuple[str, str]:
    """(summary, measured values) of a site rule."""
    if rule == "QuotaBreach":
        imp_kw = snap.grid_import_w / 1000.0
        over = imp_kw - facts.effective_limit_kw
        return (
            f"Site {site} imports {imp_kw:.0f} kW over its {facts.effective_limit_kw:.0f} kW limit",
            f"Grid import {imp_kw:.1f} kW, limit {facts.effective_limit_kw:.1f} kW, "
            f"excess {over:.1f} kW, for {held_s:.0f} s. Rigs drawing "
            f"{snap.rig_power_w / 1000.0:.1f} kW.",
        )
    if rule == "FailsafeEngaged":
        why = facts.failsafe_reason or "no reason given"
        return (
            f"Site {site} held at the fail-safe limit",
            f"Fail-safe engaged ({why}); limit {facts.effective_limit_kw:.1f} kW.",
        )
    if rule == "SpoolFilling":
        return (
            f"Site {site} telemetry spool {100 * facts.spool_fill_ratio:.0f} % full",
            f"Spool fill {100 * facts.spool_fill_ratio:.1f} % of its capacity.",
        )
    if rule == "TsdbUnreachable":
        return (
            f"Site {site} time-series database unreachable",
            f"Writes have failed for at least {held_s:.0f} s; telemetry goes to the spool.",
        )
    if rule == "StorageFailing":
        return (
            f"Site {site} database refuses writes",
            f"{facts.storage_problem or 'writes failed'}; for {held_s:.0f} s. Control goes "
            "on in memory; new quotas are refused until writes work again.",
        )
    if rule == "AuthFailures":
        sources = ", ".join(f"{a} ({n})" for a, n in facts.auth_failure_sources) or "unknown"
        return (
            f"Site {site}: {facts.auth_failures} wrong API tokens in a minute",
            f"{facts.auth_failures} requests with a wrong token in the last 60 s, from "
            f"{sources}. Valid tokens are still admitted; wrong ones are slowed, then "
            "answered 429, per address.",
        )
    if rule == "ClockStepped":
        return (
            f"Site {site}: system clock stepped {facts.clock_offset_s:+.0f} s",
            f"The wall clock is {facts.clock_offset_s:+.1f} s from minerd's site time. Quotas "
            "are timed on site time, which did not jump.",
        )
    if rule in ("AwardShortfall", "AwardOverrun", "AwardOverrunCritical"):
        return _award_texts(rule, site, facts)
    if rule == "EnergyRegisterFault":
        why = facts.energy_register_fault or "the interval it was seen in has closed"
        return (
            f"Site {site}: grid meter energy register not believed",
            f"Energy register fault: {why}; {facts.energy_register_faults} fault(s) judged "
            "since minerd started. The award's pace counts integrated power instead.",
        )
    return (f"Site {site}: {rule}", "")


def _award_texts(rule: str, site: str, facts: SiteFacts) -> tuple[str, str]:
    s = facts.settled
    pct = None if s is None else s.share_pct
    if s is None or pct is None or s.awarded_kwh is None:
        return (f"Site {site}: {rule}", "")
    dev_kwh = s.imported_kwh - s.awarded_kwh
    numbers = (
        f"Interval {s.label} (award {s.award_id or 'unnamed'}): imported "
        f"{s.imported_kwh / 1000.0:.3f} of {s.awarded_kwh / 1000.0:.3f} MWh ({pct:.2f} %, "
        f"{dev_kwh:+.1f} kWh)."
    )
    if rule == "AwardShortfall":
        return (
            f"Site {site} imported {pct:.2f} % of its award for {s.label}",
            f"{numbers} No power limit held the site below the award's pace.",
        )
    return (
        f"Site {site} imported {pct:.2f} % of its award for {s.label}",
        f"{numbers} Over the award by {dev_kwh:.1f} kWh.",
    )
