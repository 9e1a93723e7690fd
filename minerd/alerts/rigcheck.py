"""Per-rig conditions as one int mask: a few attribute reads per rig, no allocation."""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from minerd.alerts.config import AlertThresholds
from minerd.model import RigModel, RigState, RigStatus

OFFLINE, HASHRATE_LOW, CHIP_TEMP, FAN, BOARD, IGNORES = 1, 2, 4, 8, 16, 32

_RUNNING = (RigState.HASHING, RigState.FAULT)


class ModelLimits:
    """What a rig model should do, precomputed once per model for the hot loop."""

    __slots__ = ("chip_limit_c", "curve_h", "curve_p", "fan_min_rpm", "model")

    def __init__(self, model: RigModel, th: AlertThresholds) -> None:
        self.model = model
        self.curve_p = tuple(p.power_w for p in model.curve)
        self.curve_h = tuple(p.hashrate_ths for p in model.curve)
        self.chip_limit_c = (
            th.chip_temp_limit_c
            if th.chip_temp_limit_c is not None
            else model.chip_temp_max_c - th.chip_temp_margin_c
        )
        self.fan_min_rpm = model.fan_rpm_nominal * th.fan_min_ratio if model.fans > 0 else -1.0

    def expected_ths(self, power_w: float, profile: str | None) -> float:
        """Hashrate the profile (or the curve at this power) should give."""
        if profile is not None:
            for p in self.model.profiles:
                if p.name == profile:
                    return p.hashrate_ths
        pw, hs = self.curve_p, self.curve_h
        if not pw or power_w < pw[0]:
            return 0.0
        if power_w >= pw[-1]:
            return hs[-1]
        i = bisect.bisect_right(pw, power_w)
        frac = (power_w - pw[i - 1]) / (pw[i] - pw[i - 1])
        return hs[i - 1] + frac * (hs[i] - hs[i - 1])


def limits_by_model(models: Mapping[str, RigModel], th: AlertThresholds) -> dict[str, ModelLimits]:
    return {name: ModelLimits(m, th) for name, m in models.items()}


def rig_mask(
    st: RigStatus,
    lim: ModelLimits | None,
    th: AlertThresholds,
    not_reached: frozenset[str],
) -> int:
    """Bits of the rig rules whose condition holds for this rig now."""
    if st.maintenance:
        return 0
    m = IGNORES if (st.unresponsive or st.rig_id in not_reached) else 0
    rd = st.reading
    state = rd.state
    if not st.fresh or state is RigState.OFFLINE:
        return m | OFFLINE  # an offline rig's last values say nothing about now
    temp = rd.chip_temp_max_c
    if lim is None:
        return m
    if temp is not None and temp >= lim.chip_limit_c:
        m |= CHIP_TEMP
    if state in _RUNNING:
        fan = rd.fan_rpm_min
        if fan is not None and fan < lim.fan_min_rpm:
            m |= FAN
        if rd.boards_total > 0 and rd.boards_ok < rd.boards_total:
            m |= BOARD
        if state is RigState.HASHING and rd.uptime_s >= th.hashrate_warmup_s:
            expected = lim.expected_ths(rd.power_w, rd.profile)
            if expected > 0 and rd.hashrate_ths < th.hashrate_min_ratio * expected:
                m |= HASHRATE_LOW
    return m


def rig_measured(
    rule: str,
    st: RigStatus,
    lim: ModelLimits | None,
    th: AlertThresholds,
    now_s: float,
    held_s: float = 0.0,
) -> str:
    """The measured values behind a rig alert, for its description; held_s is how long the
    condition has held (the alert's pending time)."""
    rd = st.reading
    where = f"{st.rig_id} ({st.model}, {st.host}:{st.port}, container {st.container or '-'})"
    if rule == "RigOffline":
        why = rd.reason or rd.state.value
        # An offline reading is the last failed poll, seconds old: the rig has been silent
        # since the condition began (its last answer came before that).
        silent_s = max(held_s, now_s - rd.taken_at_s)
        return f"{where} has not answered for {silent_s:.0f} s (last state: {why})."
    if rule == "RigHashrateLow" and lim is not None:
        exp = lim.expected_ths(rd.power_w, rd.profile)
        pct = 100.0 * rd.hashrate_ths / exp if exp > 0 else 0.0
        basis = f"profile {rd.profile}" if rd.profile else f"{rd.power_w:.0f} W"
        return (
            f"{where} hashes {rd.hashrate_ths:.1f} TH/s, {pct:.0f} % of the "
            f"{exp:.1f} TH/s its model gives at {basis} (alert below "
            f"{100 * th.hashrate_min_ratio:.0f} %)."
        )
    if rule == "RigChipTempHigh" and lim is not None:
        return (
            f"{where} chip temperature {rd.chip_temp_max_c} C, limit {lim.chip_limit_c:.0f} C "
            f"(model trips at {lim.model.chip_temp_max_c:.0f} C)."
        )
    if rule == "RigFanFailure" and lim is not None:
        return (
            f"{where} slowest fan {rd.fan_rpm_min} rpm, nominal "
            f"{lim.model.fan_rpm_nominal} rpm (alert below {lim.fan_min_rpm:.0f} rpm)."
        )
    if rule == "RigBoardDead":
        return f"{where} has {rd.boards_ok} of {rd.boards_total} hashboards working."
    if rule == "RigIgnoresCommands":
        target = f"power limit {rd.power_limit_w:.0f} W" if rd.power_limit_w else "setpoint"
        return (
            f"{where} did not reach its last {target}: state {rd.state.value}, "
            f"drawing {rd.power_w:.0f} W."
        )
    return f"{where}: {rd.reason or rd.state.value}."
