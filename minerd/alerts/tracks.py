"""Hysteresis bookkeeping: one Track per (rule, subject) whose condition is or was true."""

from __future__ import annotations

from minerd.alerts.catalog import RuleSpec
from minerd.alerts.config import RuleTiming
from minerd.model import Alert

TrackKey = tuple[str, str]  # (rule name, subject: rig id, container, meter or "")


class Track:
    """pending (condition true, not yet held `for`) -> firing -> clearing (false, not yet
    for `clear`) -> resolved. A clearing track whose condition returns goes back to firing."""

    __slots__ = ("alert", "false_since_s", "since_s", "spec", "subject", "timing")

    def __init__(self, spec: RuleSpec, subject: str, since_s: float, timing: RuleTiming) -> None:
        self.spec = spec
        self.subject = subject
        self.since_s = since_s
        self.timing = timing
        self.alert: Alert | None = None  # set once fired
        self.false_since_s: float | None = None


class TrackTable:
    """All tracks, plus the pending and clearing ones the engine must look at each time."""

    def __init__(self) -> None:
        self.tracks: dict[TrackKey, Track] = {}
        self.pending: dict[TrackKey, Track] = {}
        self.clearing: dict[TrackKey, Track] = {}
        self.by_alert_id: dict[str, TrackKey] = {}

    def set(
        self, key: TrackKey, spec: RuleSpec, on: bool, now_s: float, timing: RuleTiming
    ) -> None:
        """The condition of `key` became `on` at now_s (call on transitions only)."""
        tr = self.tracks.get(key)
        if on:
            if tr is None:
                tr = Track(spec, key[1], now_s, timing)
                self.tracks[key] = tr
                self.pending[key] = tr
            elif tr.false_since_s is not None:
                tr.false_since_s = None
                self.clearing.pop(key, None)
            return
        if tr is None:
            return
        if tr.alert is None:
            del self.tracks[key]
            self.pending.pop(key, None)
        elif tr.false_since_s is None:
            tr.false_since_s = now_s
            self.clearing[key] = tr

    def restore(self, key: TrackKey, spec: RuleSpec, alert: Alert, timing: RuleTiming) -> None:
        tr = Track(spec, key[1], alert.starts_at_s, timing)
        tr.alert = alert
        self.tracks[key] = tr
        self.by_alert_id[alert.alert_id] = key

    def fired(self, key: TrackKey, tr: Track, alert: Alert) -> None:
        tr.alert = alert
        self.pending.pop(key, None)
        self.by_alert_id[alert.alert_id] = key

    def resolved(self, key: TrackKey, tr: Track) -> None:
        self.clearing.pop(key, None)
        self.tracks.pop(key, None)
        if tr.alert is not None:
            self.by_alert_id.pop(tr.alert.alert_id, None)

    def is_firing(self, key: TrackKey) -> bool:
        tr = self.tracks.get(key)
        return tr is not None and tr.alert is not None
