"""LuxOS session ids kept in SQLite, so a restarted daemon can still command its rigs; and
the fleet's session recoveries, summed for /metrics.

LuxOS allows one session per rig and refuses other logons while it lives (a minute idle):
a daemon restarted after a crash takes its predecessor's sessions, or it would first have to
learn them from every rig. Each new session is written through at once, without waiting for
the disk (WAL keeps it across a process crash, which is what matters here), so even a
50,000-rig cut costs only some 20 us per logon. A failed write raises StorageError; the
driver then goes on in memory (see minerd.devices.luxos_session).
"""

from __future__ import annotations

from collections.abc import Iterable

from minerd.devices.luxos_session import Recovery
from minerd.devices.rig_luxos import LuxosRig
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
        if self._sessions.get(rig_id) == session:
            return
        # Written first: after a failed write the next put tries again.
        self._state.set_many({PREFIX + rig_id: session}, durable=False)
        if session is None:
            self._sessions.pop(rig_id, None)
        else:
            self._sessions[rig_id] = session


def session_recoveries(rigs: Iterable[object]) -> dict[str, int]:
    """LuxOS session recoveries by reason over the fleet; every reason present (0 if none).

    Summed when /metrics is scraped, not every cycle."""
    totals = {reason.value: 0 for reason in Recovery}
    for rig in rigs:
        if isinstance(rig, LuxosRig):
            for reason, n in rig.session_recoveries.items():
                totals[reason] += n
    return totals
