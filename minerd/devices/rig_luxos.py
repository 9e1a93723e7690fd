"""Rigs on the cgminer API: LuxOS (read + curtail/profileset) and plain cgminer (read only).

Read: `summary+stats+power+profileget` joined where the firmware allows it, else one
connection per command (CgminerClient remembers). Control (LuxOS): one session per rig,
taken with `logon`, reused while fresh, and taken again when the rig says it is invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

from minerd.devices.rig import Rig, pick_profile
from minerd.devices.rig_cgminer import parse_reading
from minerd.errors import CommandRejected, DeviceError
from minerd.model import ControlMode, RigAction, RigCommand, RigModel, RigProtocol, RigReading
from minerd.transports.cgminer import DEFAULT_PORT, CgminerClient, CgminerReply

__all__ = ["CgminerRig", "LuxosRig"]

# LuxOS ends a session after 60 s idle; take a new one a little before that.
SESSION_REUSE_S = 50.0


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


class SessionCache(Protocol):
    """Where LuxOS session ids outlive the process.

    LuxOS allows one session per rig and keeps it for a minute of idleness: a daemon that
    restarts after a crash must reuse its predecessor's session, or the rig refuses every
    logon (and so every sleep command) for up to a minute.
    """

    def get(self, rig_id: str) -> str | None: ...

    def put(self, rig_id: str, session: str | None) -> None: ...


class LuxosRig(CgminerRig):
    """A rig on LuxOS firmware: sleep/wake by curtail, power steps by profileset."""

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
        self._password = password
        self._sessions = sessions
        self._session: str | None = sessions.get(rig_id) if sessions is not None else None
        self._session_used = 0.0  # time.monotonic() of the last use
        self._lock = asyncio.Lock()  # one session, one privileged command at a time
        self.logons = 0

    @property
    def protocol(self) -> RigProtocol:
        return RigProtocol.LUXOS

    async def apply(self, cmd: RigCommand) -> None:
        action, parameter = self._translate(cmd)
        async with self._lock:
            session = await self._ensure_session()
            try:
                await self._privileged(action, session, parameter)
            except CommandRejected as exc:
                if "session" not in exc.message.lower():
                    raise
                # Expired or taken over: one fresh logon, one retry.
                self._session = None
                session = await self._ensure_session()
                await self._privileged(action, session, parameter)

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

    async def _privileged(self, action: str, session: str, parameter: str) -> CgminerReply:
        reply = await self.client.command(action, f"{session},{parameter}")
        self._session_used = time.monotonic()
        return reply

    async def _ensure_session(self) -> str:
        if self._session is not None and (
            self._session_used == 0.0  # inherited from a previous process: try it once
            or time.monotonic() - self._session_used < SESSION_REUSE_S
        ):
            return self._session
        reply = await self.client.command("logon", self._password)
        self.logons += 1
        sessions = reply.get("SESSION")
        first = sessions[0] if isinstance(sessions, list) and sessions else None
        sid = first.get("SessionID") if isinstance(first, dict) else None
        if not isinstance(sid, str) or not sid:
            raise self.rejected("logon: reply has no SESSION[0].SessionID")
        self._session = sid
        self._session_used = time.monotonic()
        if self._sessions is not None:
            self._sessions.put(self.rig_id, sid)
        return sid

    async def aclose(self) -> None:
        """End our session so that another tool (or a restarted minerd) can log on."""
        async with self._lock:
            session, self._session = self._session, None
            if session is None:
                return
            if self._sessions is not None:
                self._sessions.put(self.rig_id, None)
            # Expired or unreachable: nothing left to end.
            with contextlib.suppress(DeviceError):
                await self.client.command("logoff", session)
