"""Model values to line protocol: the schema of docs/telemetry.md, built with string joins.

Timestamps are integer milliseconds (writers send `precision=ms`). Tags hold only bounded
identities (site, meter, role, rig, model, container, action, rule, severity); anything
per request (alert ids, quota ids, reasons) is a field.

Unknown is not zero: a value not read yet is left out of its point, never written as 0
(site power_w before every grid meter answered once; rig sums while a rig was never
polled; a never-polled rig's power and hashrate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from minerd.model import (
    Alert,
    ComplianceRecord,
    EffectiveLimit,
    FleetSnapshot,
    MeterStatus,
    RigCommand,
    RigState,
    RigStatus,
    SettlementRecord,
)
from minerd.sinks.events import EconomicsFigures, FleetTotals, fleet_totals
from minerd.sinks.lineproto import (
    bool_field,
    float_field,
    line,
    quote_string,
    series_key,
    str_field,
)

_STATE_FIELDS = tuple((s, f"rigs_{s.value}") for s in RigState)
_METER_FLOATS = (
    "power_w",
    "power_l1_w",
    "power_l2_w",
    "power_l3_w",
    "voltage_l1_v",
    "voltage_l2_v",
    "voltage_l3_v",
    "current_l1_a",
    "current_l2_a",
    "current_l3_a",
    "energy_import_kwh",
    "energy_export_kwh",
)
_RIG_STATE_STRINGS = {s: quote_string(s.value) for s in RigState}


def to_ms(t_s: float) -> int:
    return round(t_s * 1000.0)


def _join(fields: list[str | None]) -> str:
    """Fields without the missing ones (a NaN is left out, never written as 0)."""
    return ",".join(f for f in fields if f is not None)


class PointEncoder:
    """Encodes one site's telemetry. Caches the escaped series key of every rig and meter."""

    def __init__(self, site: str) -> None:
        self.site = site
        self._rig_keys: dict[tuple[str, str, str], str] = {}
        self._meter_keys: dict[tuple[str, str, str], str] = {}
        self._profiles: dict[str, str] = {}  # profile name -> ',profile="..."'
        self._fleet_hint = 0  # largest fleet seen: bounds the series-key cache

    def _series(self, measurement: str, tags: list[tuple[str, str]]) -> str:
        if self.site:
            tags.append(("site", self.site))
        return series_key(measurement, tags)

    # ------------------------------------------------------------ snapshot

    def site_line(
        self,
        snapshot: FleetSnapshot,
        limit: EffectiveLimit,
        budget_w: float,
        failsafe: bool,
        totals: FleetTotals | None = None,
    ) -> str:
        self._fleet_hint = max(self._fleet_hint, len(snapshot.rigs))
        t = totals if totals is not None else fleet_totals(snapshot.rigs)
        grid_read = snapshot.grid_read
        fields: list[str | None] = [
            float_field("power_w", snapshot.grid_import_w) if grid_read else None,
            float_field("limit_w", limit.limit_kw * 1000.0),
            float_field("budget_w", budget_w),
            float_field("rig_power_w", t.power_w) if t.all_read else None,
            float_field("hashrate_ths", t.hashrate_ths) if t.all_read else None,
            f"rigs_total={t.rigs}i",
        ]
        fields += [f"{name}={t.by_state[state]}i" for state, name in _STATE_FIELDS]
        fields.append(bool_field("failsafe", failsafe))
        fields.append(bool_field("grid_fresh", snapshot.grid_fresh))
        fields.append(str_field("limit_origin", limit.origin))
        fields.append(str_field("quota_id", limit.quota_id))
        series = self._series("site", [])
        return f"{series} {_join(fields)} {to_ms(snapshot.taken_at_s)}"

    def meter_lines(self, snapshot: FleetSnapshot) -> list[str]:
        ts = to_ms(snapshot.taken_at_s)
        out: list[str] = []
        for m in snapshot.meters:
            text = self.meter_line(m, ts)
            if text is not None:
                out.append(text)
        return out

    def meter_line(self, m: MeterStatus, ts_ms: int) -> str | None:
        key = (m.meter, m.role.value, m.container)
        series = self._meter_keys.get(key)
        if series is None:
            series = self._series(
                "meter", [("meter", m.meter), ("role", m.role.value), ("container", m.container)]
            )
            self._meter_keys[key] = series
        fields: list[str | None] = [bool_field("fresh", m.fresh), float_field("age_s", m.age_s)]
        reading = m.reading
        if reading is not None:
            fields += [float_field(name, getattr(reading, name)) for name in _METER_FLOATS]
        if m.error:
            fields.append(str_field("error", m.error))
        return line(series, fields, ts_ms)

    def rig_lines(
        self, rigs: Sequence[RigStatus], ts_ms: int, out: list[str] | None = None
    ) -> list[str]:
        """One line per rig, appended to `out` if given. The hot path at 50,000 rigs (about
        a microsecond a line), so it is written out by hand with cached series keys."""
        lines = [] if out is None else out
        append = lines.append
        keys = self._rig_keys
        self._fleet_hint = max(self._fleet_hint, len(rigs))
        if len(keys) > 2 * self._fleet_hint + 1024:
            keys.clear()  # rigs renamed or removed: do not grow forever
        ts = f" {ts_ms}"
        states = _RIG_STATE_STRINGS
        profiles = self._profiles
        isfinite = math.isfinite
        for r in rigs:
            k = (r.rig_id, r.model, r.container)
            series = keys.get(k)
            if series is None:
                series = self._series(
                    "rig", [("rig", r.rig_id), ("model", r.model), ("container", r.container)]
                )
                keys[k] = series
            rd = r.reading
            h, p = rd.hashrate_ths, rd.power_w
            if rd.taken_at_s == 0.0:  # never polled: its 0 W / 0 TH/s is a placeholder
                text = f"{series} state={states[rd.state]}"
            elif isfinite(h + p):  # NaN or inf would make the server refuse the whole batch
                text = f"{series} hashrate_ths={h!r},power_w={p!r},state={states[rd.state]}"
            else:
                text = f"{series} state={states[rd.state]}"
            text += ",fresh=true" if r.fresh else ",fresh=false"
            t = rd.chip_temp_max_c
            if t is not None and isfinite(t):
                text += f",chip_temp_max_c={t!r}"
            if rd.fan_rpm_min is not None:
                text += f",fan_rpm_min={rd.fan_rpm_min}i"
            if rd.profile is not None:
                q = profiles.get(rd.profile)
                if q is None:
                    if len(profiles) > 1024:
                        profiles.clear()
                    q = profiles[rd.profile] = f",profile={quote_string(rd.profile)}"
                text += q
            append(text + ts)
        return lines

    # ------------------------------------------------------------ events

    def command_lines(self, commands: Sequence[RigCommand], at_s: float) -> list[str]:
        """One `dispatch` point per command. The rig is a tag (bounded by the fleet) so two
        commands of one cycle do not overwrite each other."""
        ts = to_ms(at_s)
        out: list[str] = []
        for c in commands:
            series = self._series("dispatch", [("rig", c.rig_id), ("action", c.action.value)])
            fields = [
                "count=1i",
                str_field("profile", c.profile),
                float_field("power_w", c.power_w),
                str_field("reason", c.reason),
            ]
            text = line(series, fields, ts)
            if text is not None:
                out.append(text)
        return out

    def compliance_line(self, rec: ComplianceRecord) -> str:
        fields: list[str | None] = [
            float_field("interval_s", rec.interval_s),
            float_field("avg_import_kw", rec.avg_import_kw),
            float_field("limit_kw", rec.limit_kw),
            float_field("max_excess_kw", rec.max_excess_kw),
            float_field("seconds_over", rec.seconds_over),
            float_field("energy_over_kwh", rec.energy_over_kwh),
            f"samples={rec.samples}i",
            bool_field("compliant", rec.seconds_over <= 0.0),
        ]
        series = self._series("compliance", [])
        return f"{series} {_join(fields)} {to_ms(rec.interval_start_s)}"

    def settlement_line(self, rec: SettlementRecord) -> str:
        """Measurement `settlement`, one point per interval at its start; awarded and
        deviation fields only when the interval had an award."""
        fields: list[str | None] = [
            float_field("interval_s", rec.interval_s),
            float_field("imported_mwh", rec.imported_kwh / 1000.0),
            float_field("integrated_mwh", rec.integrated_kwh / 1000.0),
            float_field("peak_kw", rec.peak_kw),
            float_field("seconds_over", rec.seconds_over),
            float_field("covered_s", rec.covered_s),
            bool_field(
                "from_register",
                rec.register_kwh is not None and rec.imported_kwh == rec.register_kwh,
            ),
        ]
        if rec.awarded_kwh is not None:
            fields.append(float_field("awarded_mwh", rec.awarded_kwh / 1000.0))
            dev = rec.deviation_kwh
            fields.append(None if dev is None else float_field("deviation_mwh", dev / 1000.0))
            pct = rec.deviation_pct
            fields.append(None if pct is None else float_field("deviation_pct", pct))
        if rec.award_id is not None:
            fields.append(str_field("award_id", rec.award_id))
        series = self._series("settlement", [])
        return f"{series} {_join(fields)} {to_ms(rec.interval_start_s)}"

    def economics_line(self, econ: EconomicsFigures, at_s: float) -> str:
        """Measurement `economics`, one point per snapshot: the energy price, the hashprice
        and money per hour as the status page shows them; a rate not known is left out."""
        fields: list[str | None] = [
            float_field("energy_price_per_mwh", econ.energy_price_per_mwh),
            float_field("hashprice_usd_per_th_day", econ.hashprice_usd_per_th_day),
            float_field("revenue_per_h", econ.revenue_per_h),
            float_field("energy_cost_per_h", econ.energy_cost_per_h),
            float_field("margin_per_h", econ.margin_per_h),
            float_field("breakeven_j_per_th", econ.breakeven_j_per_th),
            bool_field("hashprice_fresh", econ.hashprice_fresh),
            str_field("state", econ.state),
            str_field("currency", econ.currency),
        ]
        series = self._series("economics", [])
        return f"{series} {_join(fields)} {to_ms(at_s)}"

    def alert_line(self, alert: Alert, at_s: float) -> str:
        series = self._series("alert", [("rule", alert.rule), ("severity", alert.severity.value)])
        labels = ",".join(f"{k}={v}" for k, v in alert.labels)
        if alert.ends_at_s is not None:
            state = "resolved"
        elif alert.acknowledged_by is not None:
            state = "acknowledged"
        else:
            state = "firing"
        fields = [
            str_field("alert_id", alert.alert_id),
            str_field("state", state),
            bool_field("active", alert.active),
            str_field("summary", alert.summary),
            str_field("labels", labels),
            str_field("acknowledged_by", alert.acknowledged_by),
        ]
        text = line(series, fields, to_ms(at_s))
        assert text is not None  # alert_id is always there
        return text
