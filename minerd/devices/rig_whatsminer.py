"""MicroBT Whatsminer (btminer): reads API v2 on 4028, commands over API v3 or v2.

Read: `summary` (MH/s, `Power` in W, `Power Limit`) and `devs` (one entry per hashboard: a
dead board reads `Status "Dead"` or zero MH/s while the others hash) on 4028.
Control, chosen per rig: API v3 on `api_port` (4433) when the rig answers there, else the v2
privileged API on 4028 (token + AES; minerd.transports.whatsminer).
- sleep/wake: v3 `set.miner.service stop|start`, v2 `power_off` (respbefore) / `power_on`:
  seconds, the fastest way to shed;
- set_power: v3 `set.miner.power_percent`, v2 `set_power_pct` (temporary, no reboot), as a
  percent of the model's nominal power. `adjust_power_limit` / `set.miner.power_limit` reboot
  the miner for minutes (firmware-apis.md 5.1), so minerd never sends them for control.
apply() only sends; the next read verifies. Reference: firmware-apis.md sections 5 and 8.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Mapping

from minerd.devices.rig import Rig
from minerd.devices.rig_cgminer import hashrate_ths_of, parse_reading
from minerd.devices.rig_family import FamilyRig
from minerd.devices.target import RigTarget
from minerd.errors import CommandRejected, DeviceError
from minerd.model import (
    ControlMode,
    RigAction,
    RigCommand,
    RigModel,
    RigProtocol,
    RigReading,
    RigState,
)
from minerd.transports.cgminer import CgminerReply
from minerd.transports.whatsminer import V2Client, V3Client

__all__ = ["WhatsminerRig", "build", "parse_boards", "power_percent"]

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "super"  # API v3 account (firmware default; pyasic sends the same)


def parse_boards(devs: CgminerReply | None) -> tuple[int, int]:
    """(boards fitted, boards hashing) from btminer `devs`; (0, 0) when it says nothing."""
    entries = devs.get("DEVS") if devs is not None else None
    if not isinstance(entries, list):
        return 0, 0
    boards = [e for e in entries if isinstance(e, Mapping)]
    ok = 0
    for board in boards:
        rate = hashrate_ths_of(board) or 0.0
        if board.get("Status", "Alive") == "Alive" and rate > 0.0:
            ok += 1
    return len(boards), ok


def power_percent(model: RigModel, power_w: float) -> int:
    """The set_power_pct percent for power_w: of nominal power, never under the model's floor."""
    nominal = model.nominal_power_w
    floor = math.ceil(100.0 * model.min_power_w / nominal) if nominal > 0 else 0
    pct = math.floor(100.0 * power_w / nominal) if nominal > 0 else 100
    return max(floor, min(100, pct))


def whatsminer_reading(
    rig_id: str,
    now_s: float,
    model: RigModel,
    summary: CgminerReply,
    devs: CgminerReply | None,
) -> RigReading:
    """summary as the cgminer parser reads it, boards and power limit from btminer's keys."""
    reading = parse_reading(rig_id, now_s, model, summary, None)
    section = summary.get("SUMMARY")
    head = section[0] if isinstance(section, list) and section else {}
    limit = head.get("Power Limit") if isinstance(head, Mapping) else None
    limit_w = float(limit) if isinstance(limit, int | float) and limit > 0 else None
    total, ok = parse_boards(devs)
    if not total:
        return dataclasses.replace(reading, power_limit_w=limit_w)
    hashing = reading.hashrate_ths > 0.0
    state, reason = reading.state, reading.reason
    if hashing and ok < total:
        dead = f"dead board: {total - ok} of {total}"
        state = RigState.FAULT
        reason = f"{reason}; {dead}" if reading.state is RigState.FAULT else dead
    return dataclasses.replace(
        reading,
        state=state,
        reason=reason,
        boards_total=total,
        boards_ok=ok if hashing else 0,
        power_limit_w=limit_w,
    )


class WhatsminerRig(FamilyRig):
    """A Whatsminer: reads summary+devs on 4028; sleep/wake and power percent over v3 or v2."""

    FAMILY = RigProtocol.WHATSMINER
    REPORTS = ("summary", "devs")

    def __init__(self, target: RigTarget) -> None:
        super().__init__(target)
        self.command_timeout_s = self.reaction.command_timeout_s
        password = target.password or ""
        self.v2 = V2Client(
            target.rig_id,
            target.host,
            target.port,
            password,
            self.clock.monotonic_s,
            self.command_timeout_s,
        )
        self.v3 = V3Client(
            target.rig_id,
            target.host,
            target.api_port,
            password,
            target.username or DEFAULT_ACCOUNT,
            self.clock.now_s,
            self.command_timeout_s,
        )
        self.api: str | None = None  # "v3" or "v2" once the rig showed which it answers
        self._lock = asyncio.Lock()  # one token / salt renewal at a time

    async def read(self, now_s: float) -> RigReading:
        res = await self.client.batch(self.REPORTS)
        summary = res.get("summary")
        return whatsminer_reading(self.rig_id, now_s, self.model, summary, res.replies.get("devs"))

    async def apply(self, cmd: RigCommand) -> None:
        if not self.target.password:
            raise self.rejected(
                f"{cmd.action.value}: no admin password configured (password_file or password_env)"
            )
        async with self._lock:
            api = await self._choose_api()
            try:
                await self._send(api, cmd)
            except DeviceError:
                # v3 may have gone (firmware change) or come back: probe again next time
                self.api = None
                raise

    async def _choose_api(self) -> str:
        if self.api is None:
            try:
                # a read's time limit: a filtered port must not eat the command's own time
                await self.v3.salt(timeout_s=self.target.timeout_s)
            except DeviceError as exc:
                # closed, filtered, another service or refused: whatever stops v3 must not
                # stop every command (a shed above all); the v2 API on 4028 is tried
                log.info("rig %s: API v3 not usable, commands over API v2: %s", self.rig_id, exc)
                self.api = "v2"
            else:
                self.api = "v3"
        return self.api

    async def _send(self, api: str, cmd: RigCommand) -> None:
        action = cmd.action
        if action is RigAction.SLEEP:
            if api == "v3":
                await self._v3_set("set.miner.service", "stop")
            else:
                await self.v2.command("power_off", respbefore="true")
            return
        if action is RigAction.WAKE:
            if api == "v3":
                await self._v3_set("set.miner.service", "start")
            else:
                await self.v2.command("power_on")
            return
        if action is RigAction.SET_POWER:
            if ControlMode.POWER_TARGET not in self.model.modes:
                raise self.rejected(f"set_power: model {self.model.name} has no power target")
            if cmd.power_w is None:
                raise self.rejected("set_power: no power_w given")
            pct = power_percent(self.model, cmd.power_w)
            if api == "v3":
                await self._v3_set("set.miner.power_percent", pct)
            else:
                await self.v2.command("set_power_pct", percent=str(pct))
            return
        raise self.rejected(f"{action.value}: not supported by driver 'whatsminer'")

    async def _v3_set(self, cmd: str, param: object) -> None:
        try:
            await self.v3.request(cmd, param)
        except CommandRejected:
            # a stale salt (the rig rebooted) is the usual cause: once more with a fresh one
            await self.v3.request(cmd, param)


def build(target: RigTarget) -> Rig:
    return WhatsminerRig(target)
