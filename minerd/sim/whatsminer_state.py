"""What a simulated Whatsminer keeps beside RigSim, shared by its API v2 (on 4028) and API v3
(on the family port): v2 tokens, the v3 salt, the power-limit base and percent, and the rig
actions both APIs take on it (firmware-apis.md section 5)."""

from __future__ import annotations

import secrets
import string
import weakref
from dataclasses import dataclass, field

from minerd.sim.family_base import SIM_LOGINS
from minerd.sim.rig import RigSim
from minerd.transports.whatsminer import V2Token

__all__ = [
    "FW_VERSION",
    "MAX_TOKENS",
    "Reply",
    "WhatsminerState",
    "base_w",
    "mac",
    "new_salt",
    "password",
    "set_limit",
    "set_percent",
    "state",
]

Reply = dict[str, object]
FW_VERSION = "20250214.16.Rel"  # a 2025 build: API v3 on 4433 beside v2 on 4028
MAX_TOKENS = 32  # per client IP on the rig; one sim rig keeps one pool (doc section 2)
_SALT_CHARS = string.ascii_letters + string.digits


def password() -> str:
    return SIM_LOGINS["whatsminer"][1]


def new_salt() -> str:
    return "".join(secrets.choice(_SALT_CHARS) for _ in range(8))


@dataclass
class WhatsminerState:
    """What the firmware keeps per rig beside RigSim: tokens, v3 salt, power-limit base."""

    tokens: list[V2Token] = field(default_factory=list)
    v3_salt: str = field(default_factory=new_salt)
    limit_w: float | None = None  # adjust_power_limit / set.miner.power_limit (persistent)
    percent: int = 100


_STATES: weakref.WeakKeyDictionary[RigSim, WhatsminerState] = weakref.WeakKeyDictionary()


def state(rig: RigSim) -> WhatsminerState:
    st = _STATES.get(rig)
    if st is None:
        st = _STATES[rig] = WhatsminerState()
    return st


def base_w(rig: RigSim) -> float:
    st = state(rig)
    return st.limit_w if st.limit_w is not None else rig.model.nominal_power_w


def set_percent(rig: RigSim, percent: int, now_s: float) -> None:
    if "ignores_commands" in rig.faults:
        return  # answers OK, changes nothing (RigSim's own guard covers the power)
    state(rig).percent = percent
    rig.command_power_limit(base_w(rig) * percent / 100.0, now_s)


def set_limit(rig: RigSim, power_w: float, now_s: float) -> None:
    # The firmware reboots to apply a new limit (doc 5.1); the sim only retargets at the
    # family's ramp (the reboot is not simulated: minerd never sends this for control).
    if "ignores_commands" in rig.faults:
        return
    state(rig).limit_w = power_w
    state(rig).percent = 100
    rig.command_power_limit(power_w, now_s)


def mac(rig: RigSim) -> str:
    n = rig.plan.index
    return f"C4:11:04:{(n >> 16) & 0xFF:02X}:{(n >> 8) & 0xFF:02X}:{n & 0xFF:02X}"
