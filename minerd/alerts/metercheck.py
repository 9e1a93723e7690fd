"""Meter conditions: offline, stale, frozen (same values for N reads), voltage, imbalance."""

from __future__ import annotations

from minerd.alerts.config import AlertThresholds
from minerd.model import MeterReading, MeterStatus

OFFLINE, STALE, FROZEN, VOLTAGE, IMBALANCE = 1, 2, 4, 8, 16


def _values(r: MeterReading) -> tuple[float | None, ...]:
    return (
        r.power_w,
        r.power_l1_w,
        r.power_l2_w,
        r.power_l3_w,
        r.voltage_l1_v,
        r.voltage_l2_v,
        r.voltage_l3_v,
        r.current_l1_a,
        r.current_l2_a,
        r.current_l3_a,
        r.energy_import_kwh,
        r.energy_export_kwh,
    )


def _voltages(r: MeterReading) -> list[float]:
    return [v for v in (r.voltage_l1_v, r.voltage_l2_v, r.voltage_l3_v) if v is not None]


def _currents(r: MeterReading) -> list[float]:
    return [a for a in (r.current_l1_a, r.current_l2_a, r.current_l3_a) if a is not None]


class MeterTracker:
    """Remembers one meter's last read to count identical successive reads."""

    __slots__ = ("last_taken_s", "last_values", "same_reads")

    def __init__(self) -> None:
        self.last_taken_s: float | None = None
        self.last_values: tuple[float | None, ...] = ()
        self.same_reads = 1  # reads in a row with identical values, this one included

    def observe(self, r: MeterReading) -> None:
        if r.taken_at_s == self.last_taken_s:
            return  # the same read seen again in the next snapshot: not a new poll
        values = _values(r)
        self.same_reads = self.same_reads + 1 if values == self.last_values else 1
        self.last_values, self.last_taken_s = values, r.taken_at_s


# FleetState marks a meter that repeats every value as not fresh with this error: it
# answers, so it is frozen, not offline.
FROZEN_ERROR_PREFIX = "frozen:"


def _frozen_by_fleet(ms: MeterStatus) -> bool:
    return ms.reading is not None and ms.error.startswith(FROZEN_ERROR_PREFIX)


def meter_mask(ms: MeterStatus, tr: MeterTracker, th: AlertThresholds) -> int:
    r = ms.reading
    if r is None or not ms.fresh:
        if _frozen_by_fleet(ms):
            return FROZEN
        return OFFLINE if ms.error else STALE
    tr.observe(r)
    m = FROZEN if tr.same_reads >= th.meter_frozen_polls else 0
    if any(v < th.voltage_min_v or v > th.voltage_max_v for v in _voltages(r)):
        m |= VOLTAGE
    amps = _currents(r)
    if len(amps) == 3:
        mean = sum(amps) / 3
        if mean >= th.phase_imbalance_min_a and (max(amps) - min(amps)) / mean > (
            th.phase_imbalance_ratio
        ):
            m |= IMBALANCE
    return m


def meter_measured(rule: str, ms: MeterStatus, tr: MeterTracker, th: AlertThresholds) -> str:
    in_container = f", container {ms.container}" if ms.container else ""
    where = f"Meter {ms.meter} ({ms.role.value}{in_container})"
    r = ms.reading
    if rule == "MeterOffline":
        return f"{where}: reads fail for {ms.age_s:.0f} s: {ms.error}."
    if rule == "MeterStale":
        return f"{where}: last good read is {ms.age_s:.0f} s old."
    if r is None:
        return f"{where}: no reading."
    if rule == "MeterFrozen" and _frozen_by_fleet(ms):
        return (
            f"{where}: answers with identical values, last change {ms.age_s:.0f} s ago "
            f"(power {r.power_w:.0f} W)."
        )
    if rule == "MeterFrozen":
        return (
            f"{where}: {tr.same_reads} reads in a row with identical values "
            f"(power {r.power_w:.0f} W)."
        )
    if rule == "MeterVoltageOutOfRange":
        vs = ", ".join(f"{v:.1f}" for v in _voltages(r))
        return (
            f"{where}: phase voltages {vs} V, allowed {th.voltage_min_v:.0f}-"
            f"{th.voltage_max_v:.0f} V."
        )
    if rule == "MeterPhaseImbalance":
        amps = _currents(r)
        mean = sum(amps) / len(amps) if amps else 0.0
        ratio = (max(amps) - min(amps)) / mean if mean > 0 else 0.0
        cur = ", ".join(f"{a:.1f}" for a in amps)
        return (
            f"{where}: phase currents {cur} A, imbalance {100 * ratio:.0f} % "
            f"(alert above {100 * th.phase_imbalance_ratio:.0f} %)."
        )
    return f"{where}."
