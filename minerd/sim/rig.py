"""One simulated rig: setpoints, LuxOS session, faults, and what its sensors read now."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from minerd.model import ControlMode, RigModel, RigState
from minerd.sim.physics import RampBank
from minerd.sim.spec import RigPlan

RIG_FAULTS = frozenset(
    {
        "offline",  # no listener: connection refused (the rig keeps drawing power)
        "hung",  # accepts, never answers
        # LuxOS: read commands hang (a miner process too busy to report), while sessions and
        # control commands (curtail, profileset) answer and act: unread, yet obeying.
        "reads_hang",
        "slow",  # answers after SLOW_REPLY_S of wall time
        "broken_json",  # trailing commas, glued objects, inf, truncated replies in turn
        "overheat",  # chip above its protection limit; firmware throttles to min power
        "fan_failure",  # fan1 stops; chips run hotter
        "dead_board",  # one hashboard gone: no chain rate, less power and hashrate
        "ignores_commands",  # answers success to curtail/profileset and does nothing
        "ignores_sleep",  # stock S21+ 2025 fw: answers M000 OK to sleep and keeps hashing
    }
)
SESSION_IDLE_S = 60.0  # LuxOS: a session ends after one minute without use
SESSION_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class RigView:
    """A rig's observable state at one instant (what its firmware would report)."""

    power_w: float
    hashrate_ths: float
    chip_temps_c: tuple[float, ...]  # per board
    pcb_temps_c: tuple[float, ...]
    fan_rpms: tuple[int, ...]
    boards_ok: int
    awake: bool
    state: RigState
    uptime_s: float


class RigSim:
    def __init__(
        self, plan: RigPlan, model: RigModel, bank: RampBank, slot: int, now_s: float
    ) -> None:
        self.plan = plan
        self.model = model
        self.bank = bank
        self.slot = slot  # index into the bank
        self.awake = True
        self.profile = plan.profile or nominal_profile(model)
        self.power_limit_w: float | None = None
        self.faults: set[str] = set()
        self.session: str | None = None
        self.session_used_s = 0.0
        self.atm_enabled = True  # LuxOS Advanced Thermal Management, as `atmset` left it
        self.started_s = now_s
        self.woke_s = now_s
        self.ambient_c = 25.0
        self.api_down_s = (0.0, 0.0)  # [from, until) the 4028 API is down (miner restart)

    @property
    def rig_id(self) -> str:
        return self.plan.rig_id

    # ------------------------------------------------------------ setpoints

    def effective_target_w(self) -> float:
        m = self.model
        if not self.awake:
            return m.sleep_power_w
        if self.power_limit_w is not None:
            base = self.power_limit_w
        else:
            prof = m.profile(self.profile) if self.profile else None
            base = prof.power_w if prof is not None else m.nominal_power_w
        if "overheat" in self.faults:
            base = min(base, m.min_power_w)
        if "dead_board" in self.faults and m.boards > 0:
            base = m.sleep_power_w + (base - m.sleep_power_w) * (m.boards - 1) / m.boards
        return base

    def retarget(self, now_s: float) -> None:
        target = self.effective_target_w()
        current = self.bank.power_w(self.slot, now_s)
        # The family's reaction times on this model (drivers/rigs [firmware.<family>]).
        reaction = self.model.reaction(self.plan.family)
        ramp = reaction.wake_time_s if target >= current else reaction.sleep_time_s
        self.bank.set_target(self.slot, now_s, target, ramp)

    def command_sleep(self, now_s: float) -> None:
        if "ignores_commands" in self.faults:
            return
        self.awake = False
        self.retarget(now_s)

    def command_wake(self, now_s: float) -> None:
        if "ignores_commands" in self.faults:
            return
        if not self.awake:
            self.woke_s = now_s
        self.awake = True
        self.retarget(now_s)

    def command_profile(self, name: str, now_s: float) -> None:
        if "ignores_commands" in self.faults:
            return
        self.profile = name
        self.power_limit_w = None
        self.retarget(now_s)

    def command_power_limit(self, power_w: float, now_s: float) -> None:
        if "ignores_commands" in self.faults:
            return
        m = self.model
        self.power_limit_w = min(m.max_power_w, max(m.min_power_w, power_w))
        self.retarget(now_s)

    def set_fault(self, fault: str, on: bool, now_s: float) -> None:
        if on:
            self.faults.add(fault)
        else:
            self.faults.discard(fault)
        self.retarget(now_s)

    # ------------------------------------------------------------ LuxOS session
    # As the firmware keeps it: one session at a time, ended by 60 s without use; every
    # privileged command that names it refreshes it. `session` discloses the active id.

    def active_session(self, now_s: float) -> str | None:
        """The id of the live session, forgetting one idle for SESSION_IDLE_S or more."""
        if self.session is not None and now_s - self.session_used_s >= SESSION_IDLE_S:
            self.session = None
        return self.session

    def session_valid(self, session: str, now_s: float) -> bool:
        """Whether `session` is the live one; a valid use refreshes it."""
        active = self.active_session(now_s)
        if active is None or not secrets.compare_digest(session, active):
            return False
        self.session_used_s = now_s
        return True

    def logon(self, now_s: float) -> str | None:
        """A new session id, or None while another session is active."""
        if self.active_session(now_s) is not None:
            return None
        self.session = new_session_id()
        self.session_used_s = now_s
        return self.session

    def logoff(self, session: str, now_s: float) -> bool:
        if not self.session_valid(session, now_s):
            return False
        self.session = None
        return True

    # ------------------------------------------------------------ sensors

    def view(self, now_s: float) -> RigView:
        m = self.model
        power = self.bank.power_w(self.slot, now_s)
        boards = max(1, m.boards)
        dead = 1 if "dead_board" in self.faults and boards > 1 else 0
        ok = boards - dead
        # hashrate of the healthy boards at their share of the power
        span = max(1.0, m.nominal_power_w - m.sleep_power_w)
        frac = max(0.0, min(1.5, (power - m.sleep_power_w) / span))
        full_equiv = m.sleep_power_w + (power - m.sleep_power_w) * boards / ok
        hashrate = m.hashrate_at(full_equiv) * ok / boards if frac > 0.02 else 0.0
        rise = max(5.0, m.chip_temp_derate_c - 8.0 - self.ambient_c)
        if "fan_failure" in self.faults:
            rise *= 1.5
        chip = self.ambient_c + rise * frac
        if "overheat" in self.faults:
            chip = m.chip_temp_max_c + 3.0
        pcb = self.ambient_c + 0.6 * (chip - self.ambient_c)
        chips = tuple(round(chip + 0.7 * b, 1) if b < ok else 0.0 for b in range(boards))
        pcbs = tuple(round(pcb + 0.5 * b, 1) if b < ok else 0.0 for b in range(boards))
        fan = int(m.fan_rpm_nominal * (0.3 + 0.7 * min(1.0, frac)))
        if "overheat" in self.faults:
            fan = m.fan_rpm_nominal
        fans = tuple(
            0 if (i == 0 and "fan_failure" in self.faults) else fan + 30 * i
            for i in range(max(1, m.fans))
        )
        if "offline" in self.faults or "hung" in self.faults:
            state = RigState.OFFLINE
        elif "overheat" in self.faults or "dead_board" in self.faults:
            state = RigState.FAULT
        elif hashrate > 0:
            state = RigState.HASHING
        else:
            state = RigState.SLEEPING
        return RigView(
            power_w=power,
            hashrate_ths=hashrate,
            chip_temps_c=chips,
            pcb_temps_c=pcbs,
            fan_rpms=fans,
            boards_ok=ok,
            awake=self.awake,
            state=state,
            uptime_s=max(0.0, now_s - self.woke_s),
        )

    def truth(self, now_s: float) -> dict[str, object]:
        v = self.view(now_s)
        p = self.plan
        return {
            "id": p.rig_id,
            "host": p.host,
            "port": p.port,
            "unit_id": p.unit_id,
            "protocol": p.protocol.value,
            "model": self.model.name,
            "container": p.container_name,
            "state": v.state.value,
            "awake": v.awake,
            "power_w": round(v.power_w, 1),
            "target_w": round(self.bank.target_w(self.slot), 1),
            "hashrate_ths": round(v.hashrate_ths, 3),
            "profile": self.profile,
            "power_limit_w": self.power_limit_w,
            "chip_temp_c": max(v.chip_temps_c),
            "fan_rpm_min": min(v.fan_rpms),
            "boards_ok": v.boards_ok,
            "boards_total": self.model.boards,
            "faults": sorted(self.faults),
        }


def new_session_id() -> str:
    """Eight letters and digits, like the firmware's ids (e.g. "yJN2nlj1")."""
    return "".join(secrets.choice(SESSION_ALPHABET) for _ in range(8))


def nominal_profile(model: RigModel) -> str | None:
    """The profile whose power is closest to nominal (LuxOS ships rigs on 'default')."""
    if ControlMode.PROFILES not in model.modes or not model.profiles:
        return None
    best = min(model.profiles, key=lambda p: abs(p.power_w - model.nominal_power_w))
    return best.name
