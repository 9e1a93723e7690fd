"""Vnish (AnthillOS): hashrate, boards and fans over the cgminer API on 4028; power and the
running autotune preset from the REST API `/api/v1` on `web_port`; commands over REST with a
token from `POST /unlock` (reference: firmware-apis.md section 4, gotcha 8.9).

- sleep: `POST /mining/pause`; wake: `POST /mining/resume`.
- power: an autotune preset named by its watts, `POST /settings
  {"miner":{"overclock":{"preset":"<name>"}}}`. The reply is `{reboot_required: false,
  restart_required: false}` even when the preset did not take, so apply() only sends and the
  next read verifies from `/perf-summary` `current_preset`. The preset is the highest tuned
  one at or below the wanted power (the rig's own list, `GET /autotune/presets`, plain or
  wrapped; the profile's `power_steps_w` when the rig cannot list them).
- The planner names LuxOS-style model profiles ("-1", "default"); a profile maps to the
  preset of its watts, and a running preset is reported as the model profile of the same
  watts, so that the planner's follow-up compares like with like.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from minerd.devices.rig import Rig
from minerd.devices.rig_cgminer import parse_reading
from minerd.devices.rig_family import FamilyRig
from minerd.devices.target import RigTarget
from minerd.devices.vnish_parse import (
    Preset,
    choose_preset,
    current_preset,
    parse_presets,
    power_w,
)
from minerd.errors import DeviceError
from minerd.model import RigAction, RigCommand, RigProtocol, RigReading
from minerd.transports.vnish_web import VnishWebClient

__all__ = ["VnishRig", "build"]

log = logging.getLogger(__name__)

PRESETS_TTL_S = 600.0  # presets change only when someone tunes the rig: re-list this often
PRESET_REREAD_S = 60.0  # the running preset is re-read this often, and after every command


class VnishRig(FamilyRig):
    """A Vnish rig: cgminer-API reads plus REST power/preset; REST commands."""

    FAMILY = RigProtocol.VNISH
    REPORTS = ("summary", "stats")

    def __init__(self, target: RigTarget) -> None:
        super().__init__(target)
        self.web = VnishWebClient(
            target.host,
            target.web_port,
            device=target.rig_id,
            password=target.password,
            timeout_s=target.timeout_s,
            clock=self.clock,
        )
        self._lock = asyncio.Lock()  # one command at a time per rig
        self._presets: tuple[float, list[Preset]] | None = None  # (listed at, presets)
        self._web_failing = False  # the REST API failed on the last read (logged once)
        # The running preset as last read: (read at, name). Only a command (ours or someone
        # else's) changes it, so a poll re-reads it after ours and once a minute.
        self._preset_seen: tuple[float, str | None] | None = None

    # ------------------------------------------------------------ read

    async def read(self, now_s: float) -> RigReading:
        web = asyncio.create_task(self._web_state())
        try:
            res = await self.client.batch(self.REPORTS)
            summary = res.get("summary")
        except BaseException:
            web.cancel()
            with contextlib.suppress(asyncio.CancelledError, DeviceError):
                await web
            raise
        watts, preset = await web
        profile_name, limit_w = self._as_profile(preset)
        reading = parse_reading(
            self.rig_id,
            now_s,
            self.model,
            summary,
            res.replies.get("stats"),
            {"POWER": [{"Watts": watts}]} if watts is not None else None,
            {"PROFILE": [{"Profile": profile_name}]} if profile_name else None,
        )
        if limit_w is not None and reading.power_limit_w != limit_w:
            reading = replace(reading, power_limit_w=limit_w)
        return reading

    async def _web_state(self) -> tuple[float | None, str | None]:
        """(power W, running preset) from the REST API; (None, None) when it fails: the
        reading then estimates power from hashrate, as for a rig that reports none."""
        now = self.clock.monotonic_s()
        seen = self._preset_seen
        fresh = seen is not None and now - seen[0] < PRESET_REREAD_S
        limit_s = self.side_read_limit_s
        try:
            if fresh and seen is not None:
                summary, preset = await self.web.get("summary", timeout_s=limit_s), seen[1]
            else:
                summary, perf = await asyncio.gather(
                    self.web.get("summary", timeout_s=limit_s),
                    self.web.get("perf-summary", timeout_s=limit_s),
                )
                preset = current_preset(perf)
                self._preset_seen = (now, preset)
        except DeviceError as exc:
            level = logging.DEBUG if self._web_failing else logging.WARNING
            log.log(level, "rig %s: REST read failed, power estimated: %s", self.rig_id, exc)
            self._web_failing = True
            return None, None
        if self._web_failing:
            log.info("rig %s: REST API answers again", self.rig_id)
            self._web_failing = False
        return power_w(summary), preset

    def _as_profile(self, preset: str | None) -> tuple[str | None, float | None]:
        """(profile name for the reading, the preset's watts): the model profile of the same
        watts when there is one, else the preset's own name."""
        if preset is None:
            return None, None
        try:
            watts = float(preset)
        except ValueError:
            return preset, None  # "disabled": stock clocks, no power step
        for prof in self.model.profiles:
            if abs(prof.power_w - watts) < 0.5:
                return prof.name, watts
        return preset, watts

    # ------------------------------------------------------------ commands

    async def apply(self, cmd: RigCommand) -> None:
        timeout_s = self.reaction.command_timeout_s
        self._preset_seen = None  # the next read looks again
        async with self._lock:
            if cmd.action is RigAction.SLEEP:
                await self.web.post("mining/pause", timeout_s=timeout_s)
            elif cmd.action is RigAction.WAKE:
                await self.web.post("mining/resume", timeout_s=timeout_s)
            elif cmd.action in (RigAction.SET_POWER, RigAction.SET_PROFILE):
                preset = await self._preset_for(self._wanted_w(cmd), timeout_s)
                body = {"miner": {"overclock": {"preset": preset.name}}}
                # The answer says nothing about success (8.9): the next read verifies.
                await self.web.post("settings", body, timeout_s=timeout_s)
            else:
                raise self.rejected(f"unsupported action {cmd.action.value}")

    def _wanted_w(self, cmd: RigCommand) -> float:
        if cmd.action is RigAction.SET_POWER:
            if cmd.power_w is None:
                raise self.rejected("set_power: no power_w given")
            return cmd.power_w
        name = cmd.profile or ""
        prof = self.model.profile(name)
        if prof is not None:
            return prof.power_w
        try:
            return float(name)  # a preset name: its watts
        except ValueError:
            known = ", ".join(p.name for p in self.model.profiles)
            raise self.rejected(f"set_profile: unknown profile {name!r} ({known})") from None

    async def _preset_for(self, wanted_w: float, timeout_s: float) -> Preset:
        presets = await self._rig_presets(timeout_s)
        chosen = choose_preset(presets, wanted_w)
        if chosen is None:
            # The rig listed none tuned (or could not list): the operator's steps.
            steps = [Preset(f"{w:g}", w, True) for w in self.reaction.power_steps_w]
            chosen = choose_preset(steps, wanted_w)
        if chosen is None:
            raise self.rejected(
                f"set_power {wanted_w:.0f} W: no tuned autotune preset on the rig and no "
                "power_steps_w in the profile"
            )
        return chosen

    async def _rig_presets(self, timeout_s: float) -> list[Preset]:
        now = self.clock.monotonic_s()
        if self._presets is not None and now - self._presets[0] < PRESETS_TTL_S:
            return self._presets[1]
        try:
            presets = parse_presets(
                await self.web.get("autotune/presets", auth=True, timeout_s=timeout_s)
            )
        except DeviceError as exc:
            if not self.reaction.power_steps_w:
                raise
            log.warning("rig %s: cannot list presets, using power_steps_w: %s", self.rig_id, exc)
            return []
        self._presets = (now, presets)
        return presets

    async def aclose(self) -> None:
        await self.web.aclose()


def build(target: RigTarget) -> Rig:
    return VnishRig(target)
