"""What every rig was told, and whether it obeyed.

The IntentBook turns the planner's setpoints into the few commands that change something,
split into shedding (sent first, never rate-limited) and raising. It is restored from the
command journal at start, so a restart neither re-sends everything nor forgets a rig that
was put to sleep. Verification compares each later reading with the intent: a rig that
stays in the wrong state past its switch time plus a margin is marked unresponsive, and the
controller then counts it at nominal power and sheds others instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from minerd.model import (
    ControlMode,
    RigAction,
    RigCommand,
    RigModel,
    RigReading,
    RigSetpoint,
    RigState,
    RigStatus,
)

# A power target within this fraction of the last one is not worth a command.
POWER_DEADBAND = 0.02


@dataclass
class Intent:
    awake: bool
    power_w: float
    profile: str | None
    sent_at_s: float
    switched_at_s: float  # last sleep/wake change, for min on/off times
    mismatches: int = 0


@dataclass(frozen=True)
class Dispatch:
    shed: tuple[RigCommand, ...]
    raise_: tuple[RigCommand, ...]
    held: tuple[str, ...] = ()  # rigs whose raise waits for outstanding shedding


class IntentBook:
    def __init__(self, models: Mapping[str, RigModel], verify_margin_s: float = 20.0) -> None:
        self.models = models  # rig_id -> model
        self.verify_margin_s = verify_margin_s
        self._intents: dict[str, Intent] = {}
        # Rigs whose intent no longer matches their unchanged setpoint (profile set before a
        # wake; a profile that did not take): the next cycle diffs them again.
        self._redo: set[str] = set()
        self._checked: dict[str, RigReading] = {}  # the last reading verified, per rig

    def take_redo(self) -> set[str]:
        redo, self._redo = self._redo, set()
        return redo

    def get(self, rig_id: str) -> Intent | None:
        return self._intents.get(rig_id)

    def __len__(self) -> int:
        return len(self._intents)

    def restore(self, commands: Iterable[tuple[RigCommand, float]]) -> None:
        """Rebuild from the journal's latest intent per rig: (command, intent_at_s)."""
        for cmd, at_s in commands:
            if cmd.rig_id not in self.models:
                continue
            model = self.models[cmd.rig_id]
            awake = cmd.action is not RigAction.SLEEP
            power_w = model.sleep_power_w if not awake else (cmd.power_w or model.nominal_power_w)
            self._intents[cmd.rig_id] = Intent(awake, power_w, cmd.profile, at_s, at_s)

    def since_switch_s(self, rig_id: str, now_s: float) -> float:
        it = self._intents.get(rig_id)
        return float("inf") if it is None else max(0.0, now_s - it.switched_at_s)

    def diff(
        self,
        setpoints: Sequence[RigSetpoint],
        statuses: Mapping[str, RigStatus],
        now_s: float,
        allow_raise: bool = True,
    ) -> Dispatch:
        """Commands for the setpoints that differ from what each rig was last told.

        With allow_raise=False only shedding commands are made; the raising ones are left
        out (and their intents untouched), listed in Dispatch.held for a later cycle."""
        shed: list[RigCommand] = []
        raise_: list[RigCommand] = []
        held: list[str] = []
        for sp in setpoints:
            st = statuses.get(sp.rig_id)
            if st is None or st.maintenance:
                continue
            model = self.models[sp.rig_id]
            it = self._intents.get(sp.rig_id)
            cur_awake, cur_power_w, cur_profile = self._believed(it, st, model)
            cmd = _command_for(sp, model, cur_awake, cur_power_w, cur_profile)
            if cmd is None:
                continue
            if not allow_raise and sp.power_w >= cur_power_w:
                held.append(sp.rig_id)
                continue
            running = cur_profile if cur_profile is not None else st.reading.profile
            if cmd.action is RigAction.WAKE and cmd.profile not in (None, running):
                # A LuxOS rig wakes at the profile it slept with, whatever the wake command
                # says: set the profile while it sleeps, wake it next cycle, so it never
                # ramps to its old (higher) profile first.
                raise_.append(
                    RigCommand(
                        sp.rig_id, RigAction.SET_PROFILE, profile=cmd.profile, reason=sp.reason
                    )
                )
                self._redo.add(sp.rig_id)
                since = it.switched_at_s if it is not None else -math.inf
                self._intents[sp.rig_id] = Intent(
                    False, model.sleep_power_w, cmd.profile, now_s, since
                )
                continue
            (shed if sp.power_w < cur_power_w else raise_).append(cmd)
            switched = it.switched_at_s if it is not None and cur_awake == sp.awake else now_s
            self._intents[sp.rig_id] = Intent(sp.awake, sp.power_w, sp.profile, now_s, switched)
        return Dispatch(tuple(shed), tuple(raise_), tuple(held))

    @staticmethod
    def _believed(
        it: Intent | None, st: RigStatus, model: RigModel
    ) -> tuple[bool, float, str | None]:
        """What the rig is doing as far as we know: our intent, else its reading."""
        if it is not None:
            return it.awake, it.power_w, it.profile
        r = st.reading
        if r.state is RigState.SLEEPING:
            return False, model.sleep_power_w, None
        power_w = r.power_w if r.power_w > 0 else model.nominal_power_w
        return True, power_w, r.profile

    def forget(self, rig_id: str) -> None:
        """Drop an intent so the next cycle re-sends (used to retry unresponsive rigs)."""
        self._intents.pop(rig_id, None)

    def verify(self, statuses: Iterable[RigStatus], now_s: float) -> tuple[set[str], set[str]]:
        """(rigs that now disobey, rigs that obey again), from readings newer than the intent."""
        bad: set[str] = set()
        good: set[str] = set()
        checked = self._checked
        for st in statuses:
            # Each reading is judged once: "two mismatches" means two readings, not two
            # control cycles that happened to look at the same one.
            if checked.get(st.rig_id) is st.reading:
                continue
            it = self._intents.get(st.rig_id)
            if it is None or not st.fresh:
                continue
            model = self.models[st.rig_id]
            self._follow_profile(it, st, model)
            settle_s = (
                model.wake_time_s if it.awake else model.sleep_time_s
            ) + self.verify_margin_s
            if st.reading.taken_at_s < it.sent_at_s + settle_s:
                continue
            checked[st.rig_id] = st.reading
            state = st.reading.state
            obeys = (state is RigState.HASHING) if it.awake else (state is RigState.SLEEPING)
            if state is RigState.FAULT:
                obeys = not it.awake or obeys  # a faulted rig cannot hash; not disobedience
            if obeys:
                if it.mismatches:
                    it.mismatches = 0
                    good.add(st.rig_id)
                elif st.unresponsive:
                    good.add(st.rig_id)
            else:
                it.mismatches += 1
                if it.mismatches >= 2:
                    bad.add(st.rig_id)
        return bad, good

    def _follow_profile(self, it: Intent, st: RigStatus, model: RigModel) -> None:
        """Believe a fresh reading's profile over the intent's, so a profile that did not
        take (LuxOS wakes a rig at its old profile; a lost profileset) is sent again by the
        next diff, as a shed when the rig runs above its setpoint."""
        r = st.reading
        if not it.awake or it.profile is None or r.profile is None or r.profile == it.profile:
            return
        if r.state is not RigState.HASHING or r.taken_at_s <= it.sent_at_s:
            return
        running = model.profile(r.profile)
        if running is None:
            return
        it.profile = r.profile
        it.power_w = running.power_w
        self._redo.add(st.rig_id)


def _command_for(
    sp: RigSetpoint, model: RigModel, awake: bool, power_w: float, profile: str | None
) -> RigCommand | None:
    if not sp.awake:
        if not awake:
            return None
        return RigCommand(sp.rig_id, RigAction.SLEEP, reason=sp.reason)
    if not awake:
        return RigCommand(
            sp.rig_id, RigAction.WAKE, profile=sp.profile, power_w=sp.power_w, reason=sp.reason
        )
    if sp.profile is not None and ControlMode.PROFILES in model.modes:
        if sp.profile != profile:
            return RigCommand(
                sp.rig_id, RigAction.SET_PROFILE, profile=sp.profile, reason=sp.reason
            )
        return None
    if ControlMode.POWER_TARGET in model.modes and abs(sp.power_w - power_w) > (
        POWER_DEADBAND * max(power_w, 1.0)
    ):
        return RigCommand(sp.rig_id, RigAction.SET_POWER, power_w=sp.power_w, reason=sp.reason)
    return None
