"""Rigs that do not follow their setpoint: since when, and the flag the planner sees.

The one owner of both: the IntentBook judges readings (verify), the executor reports a
command it gave up on, the grid meter catches a shed that did not happen; each of them
goes through here, so FleetState's flag and the retry clock never disagree.
"""

from __future__ import annotations

from minerd.runtime.fleet import FleetState


class Unresponsive:
    def __init__(self, fleet: FleetState) -> None:
        self._fleet = fleet
        self._since_s: dict[str, float] = {}  # rig_id -> marked (or last retried) at

    def __contains__(self, rig_id: object) -> bool:
        return rig_id in self._since_s

    def __len__(self) -> int:
        return len(self._since_s)

    def mark(self, rig_id: str, now_s: float) -> bool:
        """Count the rig at nominal from now on; True when it was not tracked before."""
        new = rig_id not in self._since_s
        self._since_s.setdefault(rig_id, now_s)
        self._fleet.set_unresponsive(rig_id, True)
        return new

    def clear(self, rig_id: str) -> None:
        """A reading shows it obeys again."""
        self._since_s.pop(rig_id, None)
        self._fleet.set_unresponsive(rig_id, False)

    def due_for_retry(self, now_s: float, retry_s: float) -> list[str]:
        """Rigs unresponsive for retry_s or more; their retry clock restarts now."""
        due = [r for r, since in self._since_s.items() if now_s - since >= retry_s]
        for rig_id in due:
            self._since_s[rig_id] = now_s
        return due

    def release(self, rig_id: str) -> None:
        """Let the planner move it again (counted at its fresh reading) while still tracked:
        verification marks it again if it still does not obey."""
        self._fleet.set_unresponsive(rig_id, False)
