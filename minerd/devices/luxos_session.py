"""One LuxOS session per rig, kept the way the firmware intends.

LuxOS allows one session at a time and ends it after 60 s without use; every privileged
command that names it starts the 60 s again. A second `logon` while a session lives is
refused with Code 402 "Another session is active", and `session` (no session needed)
discloses the live id. So:

- a session used less than REUSE_S ago is used straight away (it cannot have lapsed);
- an older one, or one whose age is unknown (inherited from a previous process), is first
  checked with `session`: the live id is used (ours, or another tool's that we share), and
  only when there is none do we log on. Logging on over our own live session was the cause
  of the 402s in issue 12;
- a 402 on logon is answered by taking the id that `session` names;
- a privileged command refused while `session` shows another id, or none, is retried with the
  live or a new session in the same call. A refusal while our session is still the live one
  is the rig refusing the command itself, and is raised.

Every contradiction between what we believed and what the rig said is a recovery, counted
by reason and logged once per rig at WARNING (then DEBUG). A lapse we saw coming (idle 60 s
or more by our clock) is routine and not counted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol

from minerd.errors import CommandRejected, StorageError
from minerd.repeated_log import clear, warn_once

log = logging.getLogger("minerd.devices.luxos")

SESSION_IDLE_S = 60.0  # the firmware ends a session after this long without use
REUSE_S = 50.0  # used without asking while idle less than this: margin for latency and skew
CODE_ANOTHER_SESSION = 402
ATTEMPTS = 3  # sends of one privileged command, recoveries in between
STORE_KEY = "luxos-session-store"


class Recovery(StrEnum):
    ANOTHER_SESSION = "another_session"  # logon answered 402; took the live id instead
    EXPIRED = "expired"  # the rig ended our session before we expected; took a new one
    ADOPTED = "adopted"  # `session` named an id we did not hold (another tool, a predecessor)


class SessionCache(Protocol):
    """Where LuxOS session ids outlive the process, so a restarted daemon can take its
    predecessor's session instead of waiting out the rig's minute. put() may raise
    StorageError; the keeper then goes on in memory."""

    def get(self, rig_id: str) -> str | None: ...

    def put(self, rig_id: str, session: str | None) -> None: ...


Send = Callable[[str, str | None], Awaitable[dict[str, object]]]


def another_session(exc: CommandRejected) -> bool:
    return exc.code == CODE_ANOTHER_SESSION or "another session" in exc.message.lower()


class SessionKeeper:
    """The session of one rig. Not safe for concurrent run() calls: the caller serialises."""

    def __init__(
        self,
        rig_id: str,
        endpoint: str,
        send: Send,
        now_s: Callable[[], float],
        *,
        password: str | None = None,
        cache: SessionCache | None = None,
    ) -> None:
        self.rig_id = rig_id
        self.endpoint = endpoint
        self._send = send
        self._now_s = now_s
        self._password = password
        self._cache = cache
        self.sid: str | None = cache.get(rig_id) if cache is not None else None
        self.used_s: float | None = None  # our clock at the last use; None: age unknown
        self.logons = 0
        self.recoveries: dict[Recovery, int] = dict.fromkeys(Recovery, 0)

    # ------------------------------------------------------------ commands

    async def run(self, command: str, argument: str) -> dict[str, object]:
        """Send one privileged command (`<sid>,<argument>`); session trouble is recovered
        here and never raised. Transport errors and the rig refusing the command are."""
        sid = await self._acquire()
        for _ in range(ATTEMPTS - 1):
            try:
                return self._used(sid, await self._send(command, f"{sid},{argument}"))
            except CommandRejected as exc:
                sid = await self._after_rejection(sid, exc)
        return self._used(sid, await self._send(command, f"{sid},{argument}"))

    async def close(self) -> None:
        """Log off, so another tool (or our successor) can log on at once. Callers suppress
        transport errors: an unreachable rig ends the session itself within a minute."""
        sid, used_s = self.sid, self.used_s
        self._forget()
        if sid is None:
            return
        self._persist(None)
        if used_s is not None and self._now_s() - used_s >= SESSION_IDLE_S:
            return  # already over on the rig
        with contextlib.suppress(CommandRejected):  # lapsed or taken over: nothing to end
            await self._send("logoff", sid)

    # ------------------------------------------------------------ states

    async def _acquire(self) -> str:
        sid, used_s = self.sid, self.used_s
        if sid is not None and used_s is not None and self._now_s() - used_s < REUSE_S:
            return sid
        active = await self._active()
        if active is None:  # the rig cannot say: try what we have, else log on
            return sid if sid is not None else await self._logon()
        if active:
            if active != sid:
                self._recovered(Recovery.ADOPTED, "took the session the rig named")
            return self._take(active)
        if sid is not None and used_s is not None and self._now_s() - used_s < SESSION_IDLE_S:
            self._recovered(Recovery.EXPIRED, "the rig ended our session early")
        elif sid is not None:
            log.debug("LuxOS session lapsed; logging on", extra={"rig": self.rig_id})
        self._forget()
        return await self._logon()

    async def _after_rejection(self, used: str, exc: CommandRejected) -> str:
        active = await self._active()
        if active is None:
            if "session" not in exc.message.lower():
                raise exc
            self._forget()
            self._recovered(Recovery.EXPIRED, f"rig refused our session: {exc.message}")
            return await self._logon()
        if active == used:
            raise exc  # our session is live: the rig refused the command itself
        if active:
            self._recovered(Recovery.ADOPTED, "rig refused our session; took the one it named")
            return self._take(active)
        self._forget()
        self._recovered(Recovery.EXPIRED, f"rig refused our session: {exc.message}")
        return await self._logon()

    async def _logon(self) -> str:
        for _ in range(2):
            try:
                reply = await self._send("logon", self._password)
            except CommandRejected as exc:
                if not another_session(exc):
                    raise
                active = await self._active()
                if active:
                    self._recovered(Recovery.ANOTHER_SESSION, "logon refused; took the live one")
                    return self._take(active)
                continue  # it lapsed between the two calls: log on again
            self.logons += 1
            sid = _session_id(reply)
            if not sid:
                raise self._rejected("logon: reply has no SESSION[0].SessionID")
            return self._take(sid)
        raise self._rejected("logon: another session is active and the rig does not name it")

    async def _active(self) -> str | None:
        """The rig's live session id, "" when there is none, None when it cannot say."""
        try:
            reply = await self._send("session", None)
        except CommandRejected:
            return None
        return _session_id(reply)

    # ------------------------------------------------------------ bookkeeping

    def _take(self, sid: str) -> str:
        if sid != self.sid:
            self.sid = sid
            self.used_s = None
            self._persist(sid)
        return sid

    def _used(self, sid: str, reply: dict[str, object]) -> dict[str, object]:
        self.sid = sid
        self.used_s = self._now_s()
        return reply

    def _forget(self) -> None:
        self.sid = None
        self.used_s = None

    def _persist(self, sid: str | None) -> None:
        if self._cache is None:
            return
        try:
            self._cache.put(self.rig_id, sid)
        except StorageError as exc:
            warn_once(
                log,
                STORE_KEY,
                "cannot store LuxOS session ids; keeping them in memory",
                extra={"rig": self.rig_id, "error": str(exc)},
            )
        else:
            clear(log, STORE_KEY, "LuxOS session ids are stored again")

    def _recovered(self, reason: Recovery, detail: str) -> None:
        # Session ids stay out of the log: whoever holds one may command the rig.
        self.recoveries[reason] += 1
        warn_once(
            log,
            f"luxos-session:{self.rig_id}",
            "LuxOS session recovered",
            extra={"rig": self.rig_id, "reason": reason.value, "detail": detail},
        )

    def _rejected(self, message: str) -> CommandRejected:
        return CommandRejected(self.rig_id, self.endpoint, message)


def _session_id(reply: dict[str, object]) -> str | None:
    sessions = reply.get("SESSION")
    first = sessions[0] if isinstance(sessions, list) and sessions else None
    sid = first.get("SessionID") if isinstance(first, dict) else None
    return sid if isinstance(sid, str) else None
