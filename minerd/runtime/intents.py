"""What every rig was told, and whether it obeyed.

The IntentBook turns the planner's setpoints into the few commands that change something,
split into shedding (sent first, never rate-limited) and raising. It is restored from the
command journal at start, so a restart neither re-sends everything nor forgets a rig that
was put to sleep, and the last sleep/wake of every rig is restored from the journal too, so
min on/off times hold across a restart. Verification compares each later reading with the
intent: a rig that stays in the wrong state past its switch time plus a margin is marked
unresponsive, and the controller then counts it at nominal power and sheds others instead.
Sooner than that, a rig told to shed is "not yet seen to obey" until a reading shows it
moving (control.fleet.seen_to_change); if the grid meter says the site is over, those are
the rigs the controller stops counting on (unconfirmed()).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from minerd.control.fleet import seen_to_change, show_time_s
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
    profile_misses: int = 0  # readings since the command still at another profile
    # A shed in progress: the power it had when told (None: not a shed, or seen to obey).
    shed_from_w: float | None = None
    read_after_show: bool = False  # a reading from after its show time did not show it
    acked_at_s: float | None = None  # when the rig acknowledged the command


@dataclass(frozen=True)
class Dispatch:
    shed: tuple[RigCommand, ...]
    raise_: tuple[RigCommand, ...]
    held: tuple[str, ...] = ()  # rigs whose raise waits for outstanding shedding
    # What those raises would add: the plan counts them, the rigs do not draw it yet.
    held_rise_w: float = 0.0


class IntentBook:
    def __init__(self, models: Mapping[str, RigModel], verify_margin_s: float = 20.0) -> None:
        self.models = models  # rig_id -> model
        self.verify_margin_s = verify_margin_s
        self._intents: dict[str, Intent] = {}
        # Rigs whose intent no longer matches their unchanged setpoint (profile set before a
        # wake; a profile that did not take): the next cycle diffs them again.
        self._redo: set[str] = set()
        self._checked: dict[str, RigReading] = {}  # the last reading verified, per rig
        self._unseen: set[str] = set()  # rigs with a shed not yet seen taking effect
        self._switched: dict[str, float] = {}  # last sleep/wake per rig, from the journal
        # Sheds still landing: rig -> the time its sleep time is up (sheds_landing).
        self._landing: dict[str, float] = {}
        # Rigs whose shed a reading has just shown taking effect (take_landed).
        self._landed: set[str] = set()

    def take_redo(self) -> set[str]:
        redo, self._redo = self._redo, set()
        return redo

    def take_landed(self) -> set[str]:
        """Rigs a reading has shown taking their shed since the last call: they obey, so a
        rig the grid meter caught early (control cycle, _distrust) is trusted again now,
        not a settle time later; counted at nominal while asleep, it taught the loop a
        surplus that was not there (3 kW on 20 rigs, then 0.5 kW over the limit on the next
        raise, measured on the in-process plant)."""
        landed, self._landed = self._landed, set()
        return landed

    def get(self, rig_id: str) -> Intent | None:
        return self._intents.get(rig_id)

    def __len__(self) -> int:
        return len(self._intents)

    def restore(
        self,
        commands: Iterable[tuple[RigCommand, float]],
        switches: Mapping[str, float] | None = None,
    ) -> None:
        """Rebuild from the journal's latest intent per rig, (command, intent_at_s), and the
        time each rig was last told to sleep or wake, acknowledged or not (a command that
        may have landed counts: min on/off times err on the safe side)."""
        self._switched = {r: t for r, t in (switches or {}).items() if r in self.models}
        for cmd, at_s in commands:
            if cmd.rig_id not in self.models:
                continue
            model = self.models[cmd.rig_id]
            awake = cmd.action is not RigAction.SLEEP
            power_w = model.sleep_power_w if not awake else _told_power_w(cmd, model)
            switched = self._switched.get(cmd.rig_id, at_s)
            self._intents[cmd.rig_id] = Intent(awake, power_w, cmd.profile, at_s, switched)

    def since_switch_s(self, rig_id: str, now_s: float) -> float:
        it = self._intents.get(rig_id)
        at_s = self._switched_at(rig_id) if it is None else it.switched_at_s
        return max(0.0, now_s - at_s)

    def _switched_at(self, rig_id: str) -> float:
        """Last sleep/wake of a rig with no intent: from the journal, else long ago."""
        return self._switched.get(rig_id, -math.inf)

    def diff(
        self,
        setpoints: Sequence[RigSetpoint],
        statuses: Mapping[str, RigStatus],
        now_s: float,
        allow_raise: bool = True,
        wakes_with_sheds: bool = False,
    ) -> Dispatch:
        """Commands for the setpoints that differ from what each rig was last told.

        With allow_raise=False only shedding commands are made; the raising ones are left
        out (and their intents untouched), listed in Dispatch.held for a later cycle.
        Sheds go first: while one is in this diff or still landing (sheds_landing, called
        before), raises are held too. With wakes_with_sheds (a raised limit followed wave
        by wave), a wake that cannot draw before every such shed has fallen (its wake time
        ends after their sleep times) goes with them."""
        shed: list[RigCommand] = []
        raise_: list[RigCommand] = []
        held: list[str] = []
        held_rise_w = 0.0
        fall_by_s: float | None = None  # sheds first: when the last of them has fallen
        if allow_raise:
            fall_by_s = self._sheds_fall_by_s(setpoints, statuses, now_s)
            allow_raise = fall_by_s is None
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
                # A wake paid for by lowering others need not wait a sleep time for them:
                # it draws only once they have fallen. Without that, every wave of wakes
                # in a raised limit waits for its sheds with the power already dropped.
                # Only in such waves: in a steady block a swap held back is often planned
                # away, and one sent costs the woken rig's wake time of hashing.
                wakes_after = (
                    wakes_with_sheds
                    and fall_by_s is not None
                    and cmd.action is RigAction.WAKE
                    and now_s + model.wake_time_s >= fall_by_s
                )
                if not wakes_after:
                    held.append(sp.rig_id)
                    held_rise_w += max(0.0, sp.power_w - cur_power_w)
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
                self._unseen.discard(sp.rig_id)
                since = it.switched_at_s if it is not None else self._switched_at(sp.rig_id)
                self._intents[sp.rig_id] = Intent(
                    False, model.sleep_power_w, cmd.profile, now_s, since
                )
                continue
            is_shed = sp.power_w < cur_power_w
            (shed if is_shed else raise_).append(cmd)
            if cur_awake != sp.awake:
                switched = now_s
            elif it is not None:
                switched = it.switched_at_s
            else:
                switched = self._switched.get(sp.rig_id, now_s)
            new = Intent(sp.awake, sp.power_w, sp.profile, now_s, switched)
            if it is not None and cmd.action is RigAction.SET_PROFILE:
                new.profile_misses = it.profile_misses  # a re-send: the misses add up
            r = st.reading
            from_w = r.power_w if st.fresh and r.power_w > 0 else cur_power_w
            if it is not None and r.taken_at_s < it.sent_at_s and cur_power_w > from_w:
                # The reading predates the last command, a raise: the rig may draw that by
                # now. Tracked from the reading, a shed from there looked like none at all.
                from_w = cur_power_w
            if is_shed:
                self._landing[sp.rig_id] = now_s + model.sleep_time_s
            else:
                self._landing.pop(sp.rig_id, None)
            if is_shed and from_w > sp.power_w:
                # From what it draws now (its reading), else from what it was told. A rig
                # already drawing no more than its new setpoint (told to wake at a lower
                # profile, still ramping) has nothing to show: never "not seen to obey".
                new.shed_from_w = from_w
                self._unseen.add(sp.rig_id)
            else:
                self._unseen.discard(sp.rig_id)
            self._intents[sp.rig_id] = new
        return Dispatch(tuple(shed), tuple(raise_), tuple(held), held_rise_w)

    def _sheds_fall_by_s(
        self, setpoints: Sequence[RigSetpoint], statuses: Mapping[str, RigStatus], now_s: float
    ) -> float | None:
        """When every shed in these setpoints and every one still landing has fallen (each
        within its rig's sleep time); None: no shed, raises may go."""
        fall_by_s = max((u for u in self._landing.values() if u > now_s), default=None)
        for sp in setpoints:
            st = statuses.get(sp.rig_id)
            if st is None or st.maintenance:
                continue
            model = self.models[sp.rig_id]
            _, cur_power_w, _ = self._believed(self._intents.get(sp.rig_id), st, model)
            if sp.power_w < cur_power_w:
                until_s = now_s + model.sleep_time_s
                fall_by_s = until_s if fall_by_s is None else max(fall_by_s, until_s)
        return fall_by_s

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

    def sheds_landing(self, now_s: float, status_of: Callable[[str], RigStatus]) -> bool:
        """Whether a shed sent within its rig's sleep time has not yet been read at its
        setpoint. Raises wait for them: a reshuffle (one rig down, others up) would
        otherwise draw the raises before the shed has fallen, over the limit for a few
        seconds. Bounded by the sleep time, so a rig that ignores it delays nothing longer."""
        landing = self._landing
        for rig_id, until_s in list(landing.items()):
            it = self._intents.get(rig_id)
            if now_s >= until_s or it is None:
                del landing[rig_id]
                continue
            r = status_of(rig_id).reading
            if r.taken_at_s > it.sent_at_s and (
                r.power_w <= it.power_w * (1.0 + POWER_DEADBAND) + 1.0
                or (not it.awake and r.state is RigState.SLEEPING)
            ):
                del landing[rig_id]
        return bool(landing)

    def forget(self, rig_id: str) -> None:
        """Drop an intent so the next cycle re-sends (used to retry unresponsive rigs)."""
        it = self._intents.pop(rig_id, None)
        if it is not None:
            self._switched[rig_id] = it.switched_at_s  # min on/off still hold
        self._unseen.discard(rig_id)

    def retry(self, rig_id: str, reading: RigReading, now_s: float) -> RigCommand | None:
        """The command that puts a rig where it was last told, sent again to a rig counted
        unresponsive (it stays counted at nominal until a reading shows it obeys, so its
        planned power is never handed to others on a guess). None: no intent to repeat."""
        it = self._intents.get(rig_id)
        if it is None:
            return None
        model = self.models[rig_id]
        asleep = reading.state in (RigState.SLEEPING, RigState.OFFLINE)
        reason = "retry: counted at nominal until it obeys"
        if not it.awake:
            cmd = RigCommand(rig_id, RigAction.SLEEP, reason=reason)
        elif asleep or reading.state is RigState.UNKNOWN:
            cmd = RigCommand(
                rig_id, RigAction.WAKE, profile=it.profile, power_w=it.power_w, reason=reason
            )
        elif it.profile is not None and ControlMode.PROFILES in model.modes:
            cmd = RigCommand(rig_id, RigAction.SET_PROFILE, profile=it.profile, reason=reason)
        elif ControlMode.POWER_TARGET in model.modes:
            cmd = RigCommand(rig_id, RigAction.SET_POWER, power_w=it.power_w, reason=reason)
        else:
            cmd = RigCommand(rig_id, RigAction.WAKE, reason=reason)
        # profile_misses stay: it is judged to obey once a reading shows the profile too.
        it.sent_at_s = now_s
        it.acked_at_s = None
        self._checked.pop(rig_id, None)
        return cmd

    def sleep_outside_plan(self, rig_id: str, now_s: float, reason: str) -> RigCommand:
        """A sleep the planner did not order (control.overload: the site over its limit with
        only unresponsive rigs left). The intent becomes asleep, so verification judges the
        rig by it and the planner wakes it only through a wake command once it is seen
        asleep and trusted again; raises wait for it to land like any shed."""
        model = self.models[rig_id]
        it = self._intents.get(rig_id)
        if it is None:
            switched = now_s
            profile = None
        else:
            switched = now_s if it.awake else it.switched_at_s
            profile = it.profile
        self._intents[rig_id] = Intent(False, model.sleep_power_w, profile, now_s, switched)
        self._landing[rig_id] = now_s + model.sleep_time_s
        self._unseen.discard(rig_id)  # counted at nominal already: nothing to distrust
        self._checked.pop(rig_id, None)
        return RigCommand(rig_id, RigAction.SLEEP, reason=reason)

    def acknowledged(self, rig_id: str, at_s: float) -> float | None:
        """The rig answered the command: a shed should show from now on (not from when it
        was queued: a busy executor is no disobedience). Returns, for a shed, how soon a
        reading should show it (read it then); None otherwise."""
        it = self._intents.get(rig_id)
        if it is None or it.acked_at_s is not None:
            return None
        it.acked_at_s = at_s
        return show_time_s(self.models[rig_id]) if it.shed_from_w is not None else None

    def unconfirmed(self, meter_at_s: float) -> tuple[list[str], list[str]]:
        """Rigs told to shed and not yet seen to: (read since and still unchanged, not read
        since). Only those whose change the grid meter reading taken at meter_at_s could
        already show: a command newer than that is not in the measured excess yet."""
        caught: list[str] = []
        unread: list[str] = []
        for rig_id in self._unseen:
            it = self._intents.get(rig_id)
            if it is None or it.shed_from_w is None or it.acked_at_s is None:
                continue
            if it.acked_at_s + show_time_s(self.models[rig_id]) > meter_at_s:
                continue
            (caught if it.read_after_show else unread).append(rig_id)
        return caught, unread

    def observe_sheds(self, status_of: Callable[[str], RigStatus]) -> None:
        """Judge the latest readings of rigs with a shed not yet seen (before planning)."""
        for rig_id in list(self._unseen):
            it = self._intents.get(rig_id)
            st = status_of(rig_id)
            if it is not None and st.fresh:
                self._observe_shed(it, st, self.models[rig_id])

    def _observe_shed(self, it: Intent, st: RigStatus, model: RigModel) -> None:
        """Has a shed been seen taking effect? Judged on every reading newer than the command."""
        r = st.reading
        if it.shed_from_w is None or r.taken_at_s <= it.sent_at_s:
            return
        if seen_to_change(it.shed_from_w, it.power_w, r, told_to_sleep=not it.awake):
            it.shed_from_w = None
            it.read_after_show = False
            self._unseen.discard(st.rig_id)
            self._landed.add(st.rig_id)
        elif it.acked_at_s is not None and r.taken_at_s >= it.acked_at_s + show_time_s(model):
            it.read_after_show = True

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
            if it.shed_from_w is not None:
                self._observe_shed(it, st, model)
            self._follow_profile(it, st, model)
            settle_s = (
                model.wake_time_s if it.awake else model.sleep_time_s
            ) + self.verify_margin_s
            if st.reading.taken_at_s < it.sent_at_s + settle_s:
                continue
            checked[st.rig_id] = st.reading
            state = st.reading.state
            obeys = (state is RigState.HASHING) if it.awake else (state is RigState.SLEEPING)
            if obeys and it.profile_misses >= 2:
                obeys = False  # hashing, but at a profile it was told twice to leave
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
        if r.profile is not None and r.profile == it.profile:
            it.profile_misses = 0
        if not it.awake or it.profile is None or r.profile is None or r.profile == it.profile:
            return
        if r.state is not RigState.HASHING or r.taken_at_s <= it.sent_at_s:
            return
        running = model.profile(r.profile)
        if running is None:
            return
        # Told again and still at the old profile: it ignores profile commands. Sending the
        # same command every reading would keep the site "moving" (the loop then never
        # learns from the meter); verification marks it unresponsive instead.
        it.profile_misses += 1
        if it.profile_misses > 2:
            return
        it.profile = r.profile
        it.power_w = running.power_w
        self._redo.add(st.rig_id)


def _told_power_w(cmd: RigCommand, model: RigModel) -> float:
    """The power an awake rig was told to draw: the command's, else its profile's, else its
    nominal. A profile command carries no power: counting it at nominal after a restart
    made raising a rig to a higher (but sub-nominal) profile look like a shed, sent before
    the loop had measured the site."""
    if cmd.power_w:
        return cmd.power_w
    profile = model.profile(cmd.profile) if cmd.profile is not None else None
    return profile.power_w if profile is not None else model.nominal_power_w


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
