"""Turn cgminer API replies (summary, stats, LuxOS power/profileget) into a RigReading.

Replies are read as real firmware sends them (reference: firmware-apis.md sections 1, 2.7,
5.1): hashrate under `GHS *` (stock Antminer, Vnish, LuxOS, Braiins bmminer) or `MHS *`
(BOSminer legacy API, Whatsminer btminer) keys, numbers or numeric strings; hashboards in
numbered slots of which only some are fitted (4 on S19, 16 on S9/S17, slots 6-8 on S9);
temperatures as numbers or "a-b-c-d" strings whose negatives print as "2--1-20-22".
The state rules, in order:
- fault: a chip at or above the model's protection limit, a configured fan at 0 rpm, or a
  fitted hashboard without chips/rate while the rig hashes;
- hashing: hashrate > 0;
- sleeping ("asleep"): no hashrate and power near the model's sleep power (or unknown), or
  stock firmware's sleep mode (`Mode` 254);
- unknown: no hashrate yet drawing power (booting, auto-tuning, stuck).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping

from minerd.devices.rig import estimate_power_w
from minerd.errors import ProfileError
from minerd.model import RigModel, RigReading, RigState
from minerd.profiles import list_rig_models, load_rig_model
from minerd.transports.cgminer import CgminerReply

__all__ = [
    "StatsFields",
    "hashrate_ths_of",
    "model_type_of",
    "normalise_model_type",
    "parse_reading",
    "parse_stats",
    "parse_temps",
    "profile_for_model_type",
    "stats_hashrate_ths",
    "version_model_hint",
]

log = logging.getLogger(__name__)

# Hashrate keys per unit, in TH/s per unit: firmware names the unit in the key.
_UNIT_THS = {"THS": 1.0, "GHS": 1e-3, "MHS": 1e-6, "KHS": 1e-9}
# Windows in order of preference: the freshest that the firmware sends.
_WINDOWS = ("5s", "1m", "av")
# `rate_unit` of chain_rateN / total_rateideal (absent on S9: GH).
_RATE_UNIT_THS = {"TH": 1.0, "GH": 1e-3, "MH": 1e-6, "KH": 1e-9, "H": 1e-12}
# A slot key: chain_acn3, temp2_3, temp_chip3, fan5, ...
_SLOT_KINDS = (
    "chain_acn",
    "chain_acs",
    "chain_rate",
    "temp_chip",
    "temp_pcb",
    "temp2_",
    "temp",
    "fan",
)
# Slot keys probed directly (chain_acn1..16, ...): cheaper than matching every key of a reply.
_MAX_SLOT = 16
_SLOT_KEYS = tuple(
    (kind, tuple((n, f"{kind}{n}") for n in range(1, _MAX_SLOT + 1))) for kind in _SLOT_KINDS
)
# One value of an "a-b-c-d" string: a '-' right after a separator is a minus sign.
_DASH_VALUE = re.compile(r"(?:^|-)(-?\d+(?:\.\d+)?)")
_SLEEP_MODE = 254  # stock S17/T17 `Mode` while asleep
_TEMP_SANE_C = (0.0, 150.0)  # outside: an empty slot ("0-0-0-0") or a broken sensor (-83)


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


def _merged(reply: CgminerReply | None, section: str) -> dict[str, object]:
    """All items of a section in one mapping: STATS[0] is a header on Antminer and the data
    on Whatsminer, so both are read."""
    merged: dict[str, object] = {}
    items = reply.get(section) if reply is not None else None
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                merged.update(item)
    return merged


def parse_temps(value: object) -> list[float]:
    """Sensor values of one temperature field: a number, or "a-b-c-d" ("2--1-20-22" is
    2, -1, 20, 22; "-" is none)."""
    if isinstance(value, str) and "-" in value.strip()[1:]:
        text = value.strip()
        if text[0] != "-" and "--" not in text:  # the common case, no negative value
            try:
                return [float(part) for part in text.split("-")]
            except ValueError:
                pass
        return [float(m) for m in _DASH_VALUE.findall(text)]
    n = _num(value)
    return [] if n is None else [n]


def hashrate_ths_of(fields: Mapping[str, object]) -> float | None:
    """Hashrate from `<unit>HS <window>` keys (5s, then 1m, then av), in TH/s."""
    for window in _WINDOWS:
        for unit, ths in _UNIT_THS.items():
            value = _num(fields.get(f"{unit} {window}"))
            if value is not None:
                return max(0.0, value * ths)
    return None


def stats_hashrate_ths(reply: CgminerReply | None) -> float:
    """Hashrate from `stats` when summary has none: its GHS keys, else the sum of
    chain_rateN in `rate_unit` (GH when absent, as on S9)."""
    merged = _merged(reply, "STATS")
    ths = hashrate_ths_of(merged)
    if ths is not None:
        return ths
    unit = str(merged.get("rate_unit", "GH")).upper().removesuffix("/S")
    unit_ths = _RATE_UNIT_THS.get(unit, 1e-3)
    rates = _slots(merged).get("chain_rate", {})
    return max(0.0, sum(_num(v) or 0.0 for v in rates.values()) * unit_ths)


class StatsFields:
    """What the `stats` reply says about temperatures, fans and hashboards."""

    __slots__ = (
        "boards_ok",
        "boards_total",
        "chip_temp_max_c",
        "fans",
        "model_type",
        "sleep_mode",
    )

    def __init__(self) -> None:
        self.chip_temp_max_c: float | None = None
        self.fans: list[int] = []  # fitted fans (fan_num of them), fastest first
        self.boards_total = 0  # 0: the reply says nothing about boards
        self.boards_ok = 0
        self.model_type = ""
        self.sleep_mode = False


def _slots(merged: Mapping[str, object]) -> dict[str, dict[int, object]]:
    """Per kind, the slots present in the reply: {"chain_acn": {1: 126, 2: 126, ...}}."""
    get = merged.get
    by_kind: dict[str, dict[int, object]] = {}
    for kind, keys in _SLOT_KEYS:
        found = {n: v for n, key in keys if (v := get(key)) is not None}
        if found:
            by_kind[kind] = found
    return by_kind


def _max_temp(*fields: Mapping[int, object]) -> float | None:
    lo, hi = _TEMP_SANE_C
    temps = [t for f in fields for v in f.values() for t in parse_temps(v) if lo < t < hi]
    return max(temps) if temps else None


def parse_stats(reply: CgminerReply | None, hashing: bool, boards_expected: int = 0) -> StatsFields:
    out = StatsFields()
    merged = _merged(reply, "STATS")
    if not merged:
        return out
    out.model_type = normalise_model_type(_first(reply, "STATS").get("Type"))
    slots = _slots(merged)
    # Chip sensors first (temp_chipN strings, temp2_N numbers); board sensors when a
    # firmware reports no chip values; the summary maximum last.
    out.chip_temp_max_c = _max_temp(slots.get("temp_chip", {}), slots.get("temp2_", {}))
    if out.chip_temp_max_c is None:
        out.chip_temp_max_c = _max_temp(slots.get("temp_pcb", {}), slots.get("temp", {}))
    if out.chip_temp_max_c is None:
        out.chip_temp_max_c = _max_temp({0: merged.get("temp_max")})

    fans = [int(r) for _, v in sorted(slots.get("fan", {}).items()) if (r := _num(v)) is not None]
    fan_num = int(_num(merged.get("fan_num")) or 0)
    fans.sort(reverse=True)
    # fan_num counts the fans fitted; the other slots read 0 and mean nothing
    out.fans = fans[:fan_num] if 0 < fan_num <= len(fans) else fans

    mode = _num(merged.get("Mode"))
    out.sleep_mode = mode is not None and int(mode) == _SLEEP_MODE

    acn, acs = slots.get("chain_acn", {}), slots.get("chain_acs", {})
    rate = slots.get("chain_rate", {})
    numbers = sorted(set(acn) | set(acs) | set(rate))
    if not numbers:
        return out
    fitted = [
        n
        for n in numbers
        if (_num(acn.get(n)) or 0) > 0
        or str(acs.get(n, "")).strip()
        or (_num(rate.get(n)) or 0) > 0
    ]
    hashing_boards = [
        n
        for n in fitted
        if (_num(acn.get(n)) or 0) > 0 and ((_num(rate.get(n)) or 0) > 0 or not hashing)
    ]
    miner_count = int(_num(merged.get("miner_count")) or 0)
    # A board is missing only against what should be there: the model's board count, or
    # miner_count when the firmware saw more boards than are now fitted.
    out.boards_total = max(len(fitted), miner_count, boards_expected)
    if not fitted and not hashing:
        # asleep (Mode 254): every slot reads zero although the boards are there
        out.boards_ok = out.boards_total
    else:
        out.boards_ok = len(hashing_boards)
    return out


def _configured_fans(fans: list[int], model: RigModel) -> list[int]:
    """The fans the model has, fastest first: unfitted slots (0 rpm) drop out."""
    if model.fans > 0 and len(fans) > model.fans:
        return sorted(fans, reverse=True)[: model.fans]
    return fans


def _summary_fans(s: Mapping[str, object]) -> list[int]:
    """Whatsminer reports its two fans in summary, not in stats."""
    out = [int(r) for k in ("Fan Speed In", "Fan Speed Out") if (r := _num(s.get(k))) is not None]
    return sorted(out, reverse=True)


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
    summary_ths = hashrate_ths_of(s)
    uptime_s = _num(s.get("Elapsed")) or 0.0

    # LuxOS `power`, else Whatsminer's summary `Power`; stock firmware reports none.
    watts = _num(_first(power, "POWER").get("Watts"))
    if watts is None:
        watts = _num(s.get("Power"))
    hashrate_ths = summary_ths if summary_ths is not None else stats_hashrate_ths(stats)
    hashing = hashrate_ths > 0.0
    st = parse_stats(stats, hashing, model.boards)
    if st.model_type:
        _check_model(rig_id, st.model_type, model)

    estimated = watts is None
    power_w = watts if watts is not None else estimate_power_w(model, hashrate_ths)

    fans = _configured_fans(st.fans or _summary_fans(s), model)
    fan_rpm_min = min(fans) if fans else None
    boards_total = st.boards_total or model.boards
    boards_ok = st.boards_ok if st.boards_total else (boards_total if hashing else 0)
    temp = st.chip_temp_max_c
    if temp is None:
        temp = _num(s.get("Chip Temp Max")) or _num(s.get("Temperature"))

    prof_name = _first(profile, "PROFILE").get("Profile")
    profile_name = prof_name if isinstance(prof_name, str) and prof_name else None
    prof = model.profile(profile_name) if profile_name else None
    power_limit_w = prof.power_w if prof is not None else None

    sleep_ceiling_w = model.sleep_power_w + 0.1 * (model.nominal_power_w - model.sleep_power_w)
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
    elif st.sleep_mode or estimated or power_w <= sleep_ceiling_w:
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


# ---------------------------------------------------------------- model strings

# Suffixes third-party firmware appends to the model ("Antminer S9 Hiveon").
_TYPE_SUFFIXES = (" hiveon",)
_warned: set[tuple[str, str]] = set()


def normalise_model_type(raw: object) -> str:
    """The model in a firmware `Type`: "Antminer S17+ (vnish 2.0.3)" -> "Antminer S17+",
    "Antminer S9\\nV1.3.58" -> "Antminer S9", "Bitmain Antminer S21" -> "Antminer S21"."""
    if not isinstance(raw, str):
        return ""
    text = raw.splitlines()[0] if raw.strip() else ""
    text = text.split(" (", 1)[0].strip()
    if text.lower().startswith("bitmain "):
        text = text[len("bitmain ") :].strip()
    for suffix in _TYPE_SUFFIXES:
        if text.lower().endswith(suffix):
            text = text[: -len(suffix)].strip()
    return text


def _model_key(text: str) -> str:
    return re.sub(r"\s+", " ", text).casefold()


def model_matches(model_type: str, model: RigModel) -> bool:
    """True when a normalised firmware Type names this rig model ("Antminer S19j Pro",
    "M50S" for "Whatsminer M50S")."""
    key = _model_key(model_type)
    full = _model_key(normalise_model_type(model.model))
    short = full.split(" ", 1)[-1]
    return key in (full, short) or key.split(".", 1)[0] == short


def profile_for_model_type(model_type: str) -> str | None:
    """The drivers/rigs profile whose model the firmware Type names, None when none does."""
    if not model_type:
        return None
    for name in list_rig_models():
        try:
            if model_matches(model_type, load_rig_model(name)):
                return name
        except ProfileError:
            continue  # a broken profile is reported where it is loaded, not here
    return None


def _check_model(rig_id: str, model_type: str, model: RigModel) -> None:
    """Warn once per rig and Type when the rig is not the model it is configured as."""
    if model_matches(model_type, model) or (rig_id, model_type) in _warned:
        return
    _warned.add((rig_id, model_type))
    found = profile_for_model_type(model_type)
    fits = f"profile {found} fits it" if found else "no profile in drivers/rigs fits it"
    log.warning(
        "rig %s reports model %r but is configured as %s (%s); it is read with that "
        "profile's limits, curve and board count; %s",
        rig_id,
        model_type,
        model.name,
        model.model,
        fits,
    )


def model_type_of(reply: CgminerReply) -> str:
    """The normalised model of a `version` (or `stats`) reply, "" when it names none."""
    v = _first(reply, "VERSION") or _first(reply, "STATS")
    return normalise_model_type(v.get("Type") or v.get("Model") or "")


def version_model_hint(reply: CgminerReply) -> str:
    """A human hint of model and firmware from a `version` reply: "Antminer S19j Pro / LUXminer"."""
    v = _first(reply, "VERSION")
    model = model_type_of(reply)
    firmware = ""
    raw = v.get("Type")
    if isinstance(raw, str) and " (" in raw:
        # third-party firmware names itself in the Type suffix: "Antminer S9 (vnish 3.8.6)"
        firmware = raw.split(" (", 1)[1].split(")", 1)[0].strip()
    for key in ("LUXminer", "BOSminer", "BMMiner", "CGMiner", "Cgminer", "Miner"):
        if firmware:
            break
        if key in v:
            firmware = key if key != "Miner" else str(v[key])
    parts = [str(p) for p in (model, firmware) if p]
    return " / ".join(parts)
