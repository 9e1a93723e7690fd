"""Turn cgminer API replies (summary, stats, LuxOS power/profileget) into a RigReading.

Vendors differ in field types (numbers as strings, "" for a dead chain, inf) so every
field goes through `_num`. The state rules, in order:
- fault: a chip at or above the model's protection limit, a configured fan at 0 rpm, or a
  hashboard without chips/rate while the rig hashes;
- hashing: hashrate > 0;
- sleeping ("asleep"): no hashrate and power near the model's sleep power (or unknown);
- unknown: no hashrate yet drawing power (booting, auto-tuning, stuck).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from minerd.devices.rig import estimate_power_w
from minerd.model import RigModel, RigReading, RigState
from minerd.transports.cgminer import CgminerReply

__all__ = ["StatsFields", "parse_reading", "parse_stats", "version_model_hint"]

# fanN, temp2_N (chip temperature), chain_acnN for N = 1..16: bmminer-style stats keys.
_NUMBERED_KEYS = tuple((f"fan{n}", f"temp2_{n}", f"chain_acn{n}") for n in range(1, 17))


def _num(value: object) -> float | None:
    """A finite number from a firmware field (int, float or numeric string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        f = float(value)
    elif isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def _first(reply: CgminerReply | None, section: str) -> Mapping[str, object]:
    if reply is None:
        return {}
    items = reply.get(section)
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0]
    return {}


class StatsFields:
    """What the `stats` reply says about temperatures, fans and hashboards."""

    __slots__ = ("boards_ok", "boards_total", "chip_temp_max_c", "fans")

    def __init__(self) -> None:
        self.chip_temp_max_c: float | None = None
        self.fans: list[int] = []  # fan1..fanN in order
        self.boards_total = 0
        self.boards_ok = 0


def parse_stats(reply: CgminerReply | None, hashing: bool) -> StatsFields:
    out = StatsFields()
    if reply is None:
        return out
    merged: dict[str, object] = {}
    items = reply.get("STATS")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                merged.update(item)
    # Probe the numbered keys directly: cheaper than matching every key of the reply.
    chips: list[float] = []
    fans: list[int] = []
    chains: list[int] = []
    for n, (fan_key, chip_key, acn_key) in enumerate(_NUMBERED_KEYS, start=1):
        rpm = _num(merged.get(fan_key))
        if rpm is not None:
            fans.append(int(rpm))
        t = _num(merged.get(chip_key))
        if t is not None and t > 0:
            chips.append(t)
        if acn_key in merged:
            chains.append(n)
    if chips:
        out.chip_temp_max_c = max(chips)
    else:
        out.chip_temp_max_c = _num(merged.get("temp_max")) or None
    out.fans = fans
    fan_num = _num(merged.get("fan_num"))
    if fan_num is not None and 0 < fan_num < len(out.fans):
        # fan_num counts the fans fitted; the other slots read 0 and mean nothing
        out.fans = sorted(out.fans, reverse=True)[: int(fan_num)]
    out.boards_total = len(chains)
    for n in chains:
        acn = _num(merged.get(f"chain_acn{n}")) or 0.0
        rate = _num(merged.get(f"chain_rate{n}")) or 0.0
        if acn > 0 and (rate > 0 or not hashing):
            out.boards_ok += 1
    return out


def _configured_fans(fans: list[int], model: RigModel) -> list[int]:
    """The fans the model has, fastest first: unfitted slots (0 rpm) drop out."""
    if model.fans > 0 and len(fans) > model.fans:
        return sorted(fans, reverse=True)[: model.fans]
    return fans


def parse_reading(
    rig_id: str,
    now_s: float,
    model: RigModel,
    summary: CgminerReply,
    stats: CgminerReply | None,
    power: CgminerReply | None = None,
    profile: CgminerReply | None = None,
) -> RigReading:
    s = _first(summary, "SUMMARY")
    mhs = _num(s.get("MHS 5s"))
    if mhs is None:
        mhs = _num(s.get("MHS 1m"))
    if mhs is None:
        mhs = _num(s.get("MHS av")) or 0.0
    hashrate_ths = max(0.0, mhs / 1e6)
    uptime_s = _num(s.get("Elapsed")) or 0.0

    watts = _num(_first(power, "POWER").get("Watts"))
    estimated = watts is None
    power_w = watts if watts is not None else estimate_power_w(model, hashrate_ths)

    hashing = hashrate_ths > 0.0
    st = parse_stats(stats, hashing)
    fans = _configured_fans(st.fans, model)
    fan_rpm_min = min(fans) if fans else None
    boards_total = st.boards_total or model.boards
    boards_ok = st.boards_ok if st.boards_total else (boards_total if hashing else 0)

    prof_name = _first(profile, "PROFILE").get("Profile")
    profile_name = prof_name if isinstance(prof_name, str) and prof_name else None
    prof = model.profile(profile_name) if profile_name else None
    power_limit_w = prof.power_w if prof is not None else None

    sleep_ceiling_w = model.sleep_power_w + 0.1 * (model.nominal_power_w - model.sleep_power_w)
    temp = st.chip_temp_max_c
    faults: list[str] = []
    if temp is not None and temp >= model.chip_temp_max_c:
        faults.append(f"overheat {temp:.0f}C")
    if hashing and fan_rpm_min == 0:
        stopped = sum(1 for f in fans if f == 0)
        faults.append(f"fan failure: {stopped} of {len(fans)} fans at 0 rpm")
    if hashing and st.boards_total and st.boards_ok < st.boards_total:
        faults.append(f"dead board: {st.boards_total - st.boards_ok} of {st.boards_total}")
    if faults:
        state, reason = RigState.FAULT, "; ".join(faults)
    elif hashing:
        state, reason = RigState.HASHING, ""
    elif estimated or power_w <= sleep_ceiling_w:
        state, reason = RigState.SLEEPING, "asleep"
    else:
        state, reason = RigState.UNKNOWN, f"no hashrate at {power_w:.0f} W"

    return RigReading(
        rig=rig_id,
        taken_at_s=now_s,
        state=state,
        reason=reason,
        hashrate_ths=hashrate_ths,
        power_w=power_w,
        power_estimated=estimated,
        chip_temp_max_c=temp,
        fan_rpm_min=fan_rpm_min,
        boards_ok=boards_ok,
        boards_total=boards_total,
        profile=profile_name,
        power_limit_w=power_limit_w,
        uptime_s=uptime_s,
    )


def version_model_hint(reply: CgminerReply) -> str:
    """A human hint of model and firmware from a `version` reply: "Antminer S19j Pro / LUXminer"."""
    v = _first(reply, "VERSION")
    model = v.get("Type") or v.get("Model") or ""
    firmware = ""
    for key in ("LUXminer", "BMMiner", "BOSminer", "CGMiner", "Miner"):
        if key in v:
            firmware = key if key != "Miner" else str(v[key])
            break
    parts = [str(p) for p in (model, firmware) if p]
    return " / ".join(parts)
