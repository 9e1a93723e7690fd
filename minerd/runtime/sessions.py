"""LuxOS session ids kept in SQLite, so a restarted daemon can still command its rigs; and
the fleet's session recoveries, summed for /metrics.

LuxOS allows one session per rig and refuses other logons while it lives (a minute idle):
a daemon restarted after a crash takes its predecessor's sessions, or it would first have to
learn them from every rig. Each new session is written through at once, without waiting for
the disk (WAL keeps it across a process crash, which is what matters here), so even a
50,000-rig cut costs only some 20 us per logon. A failed write never costs a command:
put() keeps the session in memory and writes it once the disk takes writes again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from minerd.devices.luxos_session import Recovery
from minerd.devices.rig_luxos import LuxosRig
from minerd.errors import StorageError
from minerd.storage import StateStore

log = logging.getLogger("minerd.sessions")

PREFIX = "luxos.session."


class StoredSessions:
    def __init__(self, state: StateStore) -> None:
        self._state = state
        self._sessions: dict[str, str] = {
            key.removeprefix(PREFIX): value
            for key, value in state.with_prefix(PREFIX).items()
            if isinstance(value, str)
        }
        self._unsaved: set[str] = set()  # rigs whose session the disk has not taken yet

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, rig_id: str) -> str | None:
        return self._sessions.get(rig_id)

    def put(self, rig_id: str, session: str | None) -> None:
        """Never raises: on a disk that refuses the write (full, read-only) the session
        lives in memory, storage health counts the failure, and sessions changed meanwhile
        are written with the next write that works."""
        if self._sessions.get(rig_id) == session and rig_id not in self._unsaved:
            return
        if session is None:
            self._sessions.pop(rig_id, None)
        else:
            self._sessions[rig_id] = session
        # Only this one while the disk fails (a cut logs on to thousands of rigs); the
        # others waiting follow once a write works again.
        try:
            self._state.set_many({PREFIX + rig_id: session}, durable=False)
            self._unsaved.discard(rig_id)
            if self._unsaved:
                waiting = {PREFIX + r: self._sessions.get(r) for r in self._unsaved}
                self._state.set_many(waiting, durable=False)
                self._unsaved.clear()
        except StorageError as exc:
            self._unsaved.add(rig_id)
            log.debug("LuxOS sessions kept in memory (%d unsaved): %s", len(self._unsaved), exc)

    @property
    def unsaved(self) -> int:
        """Sessions changed while the disk refused writes, not written yet."""
        return len(self._unsaved)


def session_recoveries(rigs: Iterable[object]) -> dict[str, int]:
    """LuxOS session recoveries by reason over the fleet; every reason present (0 if none).

    Summed when /metrics is scraped, not every cycle."""
    totals = {reason.value: 0 for reason in Recovery}
    for rig in rigs:
        if isinstance(rig, LuxosRig):
            for reason, n in rig.session_recoveries.items():
                totals[reason] += n
    return totals
