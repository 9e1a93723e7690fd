"""Rigs on the cgminer API: LuxOS (read + curtail/profileset) and plain cgminer (read only).

Read: `summary+stats+power+profileget` joined where the firmware allows it, else one
connection per command (CgminerClient remembers). Control (LuxOS): one session per rig,
kept as the firmware intends by minerd.devices.luxos_session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from minerd.clock import Clock, SystemClock
from minerd.devices.luxos_session import SessionCache, SessionKeeper
from minerd.devices.rig import Rig, pick_profile
from minerd.devices.rig_cgminer import parse_reading
from minerd.errors import DeviceError
from minerd.model import ControlMode, RigAction, RigCommand, RigModel, RigProtocol, RigReading
from minerd.transports.cgminer import DEFAULT_PORT, CgminerClient

__all__ = ["CgminerRig", "LuxosRig", "SessionCache"]


class CgminerRig(Rig):
    """Any cgminer-API rig, read only: commands are refused locally."""

    REPORTS: tuple[str, ...] = ("summary", "stats")

    def __init__(
        self,
        rig_id: str,
        host: str,
        model: RigModel,
        port: int = DEFAULT_PORT,
        *,
        container: str = "",
        timeout_s: float = 3.0,
        connect_timeout_s: float = 1.0,
    ) -> None:
        super().__init__(rig_id, host, port, model, container)
        self.client = CgminerClient(
            host,
            port,
            device=rig_id,
            connect_timeout_s=connect_timeout_s,
            timeout_s=timeout_s,
        )

    @property
    def protocol(self) -> RigProtocol:
        return RigProtocol.CGMINER

    async def read(self, now_s: float) -> RigReading:
        res = await self.client.batch(self.REPORTS)
        summary = res.get("summary")  # raises what the rig said when summary failed
        return parse_reading(
            self.rig_id,
            now_s,
            self.model,
            summary,
            res.replies.get("stats"),
            res.replies.get("power"),
            res.replies.get("profileget"),
        )

    async def apply(self, cmd: RigCommand) -> None:
        raise self.rejected(f"{cmd.action.value}: driver 'cgminer' is read only")


class LuxosRig(CgminerRig):
    """A rig on LuxOS firmware: sleep/wake by curtail, power steps by profileset.

    Privileged commands go through one SessionKeeper (minerd.devices.luxos_session): the
    session is taken from the rig when one lives, reused while it lives, and a session
    problem is recovered within the same apply(), never raised.
    """

    REPORTS = ("summary", "stats", "power", "profileget")

    def __init__(
        self,
        rig_id: str,
        host: str,
        model: RigModel,
        port: int = DEFAULT_PORT,
        *,
        container: str = "",
        timeout_s: float = 3.0,
        connect_timeout_s: float = 1.0,
        password: str | None = None,
        sessions: SessionCache | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            rig_id,
            host,
            model,
            port,
            container=container,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.session = SessionKeeper(
            rig_id,
            self.endpoint,
            self.client.command,
            self._clock.monotonic_s,
            password=password,
            cache=sessions,
        )
        self._lock = asyncio.Lock()  # one session, one privileged command at a time

    @property
    def protocol(self) -> RigProtocol:
        return RigProtocol.LUXOS

    @property
    def logons(self) -> int:
        return self.session.logons

    @property
    def session_recoveries(self) -> Mapping[str, int]:
        """Recoveries by reason (another_session, expired, adopted) since start."""
        return {reason.value: n for reason, n in self.session.recoveries.items()}

    async def apply(self, cmd: RigCommand) -> None:
        action, parameter = self._translate(cmd)
        async with self._lock:
            await self.session.run(action, parameter)

    def _translate(self, cmd: RigCommand) -> tuple[str, str]:
        model = self.model
        if cmd.action is RigAction.SLEEP:
            return "curtail", "sleep"
        if cmd.action is RigAction.WAKE:
            return "curtail", "wakeup"
        if ControlMode.PROFILES not in model.modes or not model.profiles:
            raise self.rejected(f"{cmd.action.value}: model {model.name} has no power profiles")
        if cmd.action is RigAction.SET_PROFILE:
            if cmd.profile is None or model.profile(cmd.profile) is None:
                known = ", ".join(p.name for p in model.profiles)
                raise self.rejected(f"set_profile: unknown profile {cmd.profile!r} ({known})")
            return "profileset", cmd.profile
        if cmd.action is RigAction.SET_POWER:
            if cmd.power_w is None:
                raise self.rejected("set_power: no power_w given")
            return "profileset", pick_profile(model, cmd.power_w)
        raise self.rejected(f"unsupported action {cmd.action.value}")

    async def aclose(self) -> None:
        """End our session so that another tool (or a restarted minerd) can log on."""
        async with self._lock:
            # Unreachable: the rig ends the session itself within a minute.
            with contextlib.suppress(DeviceError):
                await self.session.close()
