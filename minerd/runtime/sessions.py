"""LuxOS session ids kept in SQLite, so a restarted daemon can still command its rigs.

LuxOS allows one session per rig and refuses other logons while it lives (a minute idle):
a daemon restarted after a crash must reuse its predecessor's sessions, or it cannot shed
load for that minute. Each new session is written through at once, without waiting for
the disk (WAL keeps it across a process crash, which is what matters here), so even a
50,000-rig cut costs only some 20 us per logon.
"""

from __future__ import annotations

from minerd.storage import StateStore

PREFIX = "luxos.session."


class StoredSessions:
    def __init__(self, state: StateStore) -> None:
        self._state = state
        self._sessions: dict[str, str] = {
            key.removeprefix(PREFIX): value
            for key, value in state.with_prefix(PREFIX).items()
            if isinstance(value, str)
        }

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, rig_id: str) -> str | None:
        return self._sessions.get(rig_id)

    def put(self, rig_id: str, session: str | None) -> None:
        if session is None:
            if self._sessions.pop(rig_id, None) is None:
                return
        elif self._sessions.get(rig_id) == session:
            return
        else:
            self._sessions[rig_id] = session
        self._state.set_many({PREFIX + rig_id: session}, durable=False)
