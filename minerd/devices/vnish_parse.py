"""Read Vnish REST replies (firmware-apis.md section 4; fixtures tests/fixtures/firmware/vnish-web).

Pure functions: power from `summary.miner.power_consumption` (W; `power_usage` is the
deprecated efficiency figure, never watts), hashrate `hr_realtime` in the unit `GET /info`
names (`hr_measure`), presets from `GET /autotune/presets` as a plain array or wrapped in
`{"presets": [...]}`, the running preset from `/perf-summary` or `/settings`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Preset",
    "choose_preset",
    "current_preset",
    "hashrate_ths",
    "miner_state",
    "parse_presets",
    "power_w",
]

# hr_measure -> TH/s per unit ("N/A": the firmware does not know; no hashrate then)
_HR_UNIT_THS = {"GH/s": 1e-3, "MH/s": 1e-6, "TH/s": 1.0}


@dataclass(frozen=True)
class Preset:
    """An autotune preset: its name is its power in watts ("3068"); "disabled" has none."""

    name: str
    watts: float | None
    tuned: bool


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        f = float(value)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _miner(summary: object) -> dict[str, object]:
    miner = summary.get("miner") if isinstance(summary, dict) else None
    return miner if isinstance(miner, dict) else {}


def power_w(summary: object) -> float | None:
    """The rig's power in W, None when the miner section is null or lacks it."""
    watts = _number(_miner(summary).get("power_consumption"))
    return watts if watts is not None and watts >= 0 else None


def hashrate_ths(summary: object, hr_measure: str) -> float | None:
    unit = _HR_UNIT_THS.get(hr_measure.strip())
    value = _number(_miner(summary).get("hr_realtime"))
    if unit is None or value is None:
        return None
    return max(0.0, value * unit)


def miner_state(summary: object) -> str:
    """`miner.miner_status.miner_state` ("mining", "stopped", ...), "" when absent."""
    status = _miner(summary).get("miner_status")
    state = status.get("miner_state") if isinstance(status, dict) else None
    return state if isinstance(state, str) else ""


def parse_presets(reply: object) -> list[Preset]:
    """Presets in the rig's order; a plain array or {"presets": [...]} (builds differ)."""
    items = reply.get("presets") if isinstance(reply, dict) else reply
    out: list[Preset] = []
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        name = item["name"]
        out.append(Preset(name, _number(name), item.get("status") == "tuned"))
    return out


def choose_preset(presets: Sequence[Preset], power_w: float) -> Preset | None:
    """The highest tuned preset at or below power_w, else the lowest tuned one (as low as the
    rig goes); None when the rig has no tuned preset in watts. Untuned presets are never
    chosen: selecting one starts an autotune run instead of a power step."""
    tuned = sorted((p for p in presets if p.tuned and p.watts is not None), key=_watts)
    if not tuned:
        return None
    fitting = [p for p in tuned if _watts(p) <= power_w + 1e-6]
    return fitting[-1] if fitting else tuned[0]


def _watts(p: Preset) -> float:
    return p.watts if p.watts is not None else 0.0


def current_preset(reply: object) -> str | None:
    """The running preset's name from `/perf-summary` (current_preset.name) or `/settings`
    (miner.overclock.preset); None when neither is there."""
    if not isinstance(reply, dict):
        return None
    current = reply.get("current_preset")
    if isinstance(current, dict) and isinstance(current.get("name"), str):
        return str(current["name"])
    overclock = _miner(reply).get("overclock")
    if isinstance(overclock, dict) and isinstance(overclock.get("preset"), str):
        return str(overclock["preset"])
    return None
