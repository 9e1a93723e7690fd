"""Braiins OS+: hashrate and boards from the legacy bmminer API on 4028 (MHS keys), power and
power target from gRPC `bos.v1` on `grpc_port` (50051); control over gRPC with a token from
AuthenticationService/Login. Reference: firmware-apis.md sections 6 and 8 (gotcha 8).

sleep = ActionsService/PauseMining, wake = ResumeMining, power = PerformanceService/
SetPowerTarget (SAVE_AND_APPLY). Quick ramping is set once per login so a pause or resume
ramps in the profile's sleep/wake time. apply() only sends; the next read verifies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from minerd.devices.rig import Rig, pick_profile
from minerd.devices.rig_family import FamilyRig
from minerd.devices.target import RigTarget
from minerd.errors import CommandRejected, DeviceError, ProtocolError
from minerd.model import ControlMode, RigAction, RigCommand, RigProtocol, RigReading
from minerd.transports.bos_grpc import BosClient
from minerd.transports.bos_messages import (
    ActionResponse,
    Empty,
    MinerStats,
    PowerTargetMode,
    QuickRamping,
    SaveAction,
    SetPowerTargetRequest,
    SetQuickRampingRequest,
    method,
)
from minerd.transports.protowire import WireError

__all__ = ["BraiinsRig", "build"]

log = logging.getLogger(__name__)

PAUSE = method("ActionsService", "PauseMining")
RESUME = method("ActionsService", "ResumeMining")
SET_POWER_TARGET = method("PerformanceService", "SetPowerTarget")
SET_QUICK_RAMPING = method("PerformanceService", "SetQuickRamping")
ACTIVE_MODE = method("PerformanceService", "GetActivePerformanceMode")
MINER_STATS = method("MinerService", "GetMinerStats")
DEFAULT_USERNAME = "root"


class BraiinsRig(FamilyRig):
    """A Braiins OS+ rig: 4028 reads joined with gRPC power; gRPC commands."""

    FAMILY = RigProtocol.BRAIINS

    def __init__(self, target: RigTarget) -> None:
        super().__init__(target)
        reaction = self.reaction
        self.command_timeout_s = reaction.command_timeout_s
        self.quick_ramping = QuickRamping(
            up_s=max(1, round(reaction.wake_time_s)), down_s=max(1, round(reaction.sleep_time_s))
        )
        self.grpc = BosClient(
            target.rig_id,
            target.host,
            target.grpc_port,
            username=target.username or DEFAULT_USERNAME,
            password=target.password,
            timeout_s=max(target.timeout_s, reaction.command_timeout_s),
            monotonic_s=self.clock.monotonic_s,
        )
        self._ramping_login = -1  # the login whose session already has quick ramping set
        self._lock = asyncio.Lock()  # one command at a time per rig
        self._grpc_problem = ""  # the kind of the last gRPC read failure, logged once

    @property
    def grpc_endpoint(self) -> str:
        return self.grpc.endpoint

    async def read(self, now_s: float) -> RigReading:
        grpc_part = asyncio.create_task(self._read_grpc())  # both at once: one poll's time
        try:
            reading = await super().read(now_s)
        except BaseException:
            grpc_part.cancel()
            raise
        got = await grpc_part
        if isinstance(got, DeviceError):
            # 4028 answered, gRPC did not: keep the reading, power estimated from hashrate.
            # Warn when the problem starts or changes kind (offline, timeout, refused...), not
            # on every poll of a broken rig: the detail text varies while the rig stays down
            # ("connection reset", then "connection refused").
            level = logging.DEBUG if got.reason == self._grpc_problem else logging.WARNING
            log.log(level, "%s: power not read over gRPC: %s", self.rig_id, got)
            self._grpc_problem = got.reason
            return reading
        self._grpc_problem = ""
        stats, limit_w = got
        return dataclasses.replace(
            reading,
            power_w=float(stats.power_w),
            power_estimated=False,
            power_limit_w=float(limit_w) if limit_w is not None else None,
        )

    async def _read_grpc(self) -> tuple[MinerStats, int | None] | DeviceError:
        try:
            limit_s = self.side_read_limit_s
            stats_raw, mode_raw = await asyncio.gather(
                self.grpc.call(MINER_STATS, b"", timeout_s=limit_s),
                self.grpc.call(ACTIVE_MODE, b"", timeout_s=limit_s),
            )
        except DeviceError as e:
            return e
        try:
            stats = MinerStats.decode(stats_raw)
            mode = PowerTargetMode.decode_performance_mode(mode_raw)
        except WireError as e:
            return ProtocolError(self.rig_id, self.grpc.endpoint, f"gRPC reply: {e}")
        return stats, (mode.watt if mode is not None else None)

    async def apply(self, cmd: RigCommand) -> None:
        path, request = self._translate(cmd)
        async with self._lock:
            await self._ensure_quick_ramping()
            reply = await self.grpc.call(path, request)
        self._note_reply(cmd, path, reply)

    def _translate(self, cmd: RigCommand) -> tuple[str, bytes]:
        if cmd.action is RigAction.SLEEP:
            return PAUSE, Empty().encode()
        if cmd.action is RigAction.WAKE:
            return RESUME, Empty().encode()
        model = self.model
        if cmd.action is RigAction.SET_POWER:
            if cmd.power_w is None:
                raise self.grpc_rejected("set_power: no power_w given")
            power_w = cmd.power_w
        elif cmd.action is RigAction.SET_PROFILE:
            prof = model.profile(cmd.profile) if cmd.profile is not None else None
            if prof is None:
                raise self.grpc_rejected(f"set_profile: unknown profile {cmd.profile!r}")
            power_w = prof.power_w
        else:
            raise self.grpc_rejected(f"unsupported action {cmd.action.value}")
        if ControlMode.POWER_TARGET not in model.modes:
            if ControlMode.PROFILES in model.modes and model.profiles:
                name = pick_profile(model, power_w)
                power_w = next(p.power_w for p in model.profiles if p.name == name)
            else:
                raise self.grpc_rejected(f"{cmd.action.value}: {model.name} has no power target")
        watt = round(min(model.max_power_w, max(model.min_power_w, power_w)))
        return SET_POWER_TARGET, SetPowerTargetRequest(SaveAction.SAVE_AND_APPLY, watt).encode()

    async def _ensure_quick_ramping(self) -> None:
        # Once per login: the ramp times persist (SAVE_AND_APPLY), a new token may mean the
        # rig was reset. Firmware without quick ramping still pauses, only slower; so its
        # failure never fails the command (a shed above all), and it waits at most a read's
        # time limit, leaving the command its own.
        await self.grpc.login()  # a refused login fails the command here, saying so
        if self._ramping_login == self.grpc.logins:
            return
        r = self.quick_ramping
        request = SetQuickRampingRequest(SaveAction.SAVE_AND_APPLY, r.up_s, r.down_s)
        try:
            await self.grpc.call(
                SET_QUICK_RAMPING, request.encode(), timeout_s=self.target.timeout_s
            )
        except CommandRejected as e:
            log.warning("%s: quick ramping not set (firmware refused it): %s", self.rig_id, e)
        except DeviceError as e:
            log.warning(
                "%s: quick ramping not set, tried with the next command: %s", self.rig_id, e
            )
            return
        self._ramping_login = self.grpc.logins

    def _note_reply(self, cmd: RigCommand, path: str, reply: bytes) -> None:
        try:
            if path == SET_POWER_TARGET:
                got = PowerTargetMode.decode(reply).watt
                log.info("%s: power target now %d W (%s)", self.rig_id, got, cmd.reason)
            else:
                already = ActionResponse.decode(reply).already
                if already:
                    log.info("%s: %s: already there", self.rig_id, cmd.action.value)
        except WireError as e:
            raise ProtocolError(self.rig_id, self.grpc.endpoint, f"{path}: {e}") from e

    def grpc_rejected(self, message: str) -> CommandRejected:
        return CommandRejected(self.rig_id, self.grpc.endpoint, message)

    async def aclose(self) -> None:
        await self.grpc.aclose()


def build(target: RigTarget) -> Rig:
    return BraiinsRig(target)
