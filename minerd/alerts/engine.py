"""AlertEngine: evaluates the rules over successive snapshots, keeps alert state in SQLite,
queues notifications in the durable outbox, and runs their delivery in its own task.

Per-rig work is one int mask per rig compared with the previous one; only rigs whose mask
changed, and tracks that are pending or clearing, cost more than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from minerd.alerts import texts
from minerd.alerts.awardcheck import Band, band
from minerd.alerts.catalog import (
    CONTAINER_RULES,
    METER_RULES,
    RIG_RULES,
    RULES_BY_NAME,
    SITE_RULES,
    RuleSpec,
    Scope,
)
from minerd.alerts.changes import AlertChange, AlertNotFound, ChangeKind, change_to_json
from minerd.alerts.config import AlertThresholds, DeliverySettings, RuleTiming
from minerd.alerts.delivery import Deliverer, channel_names
from minerd.alerts.facts import SiteFacts
from minerd.alerts.identity import alert_id
from minerd.alerts.metercheck import MeterTracker, meter_mask, meter_measured
from minerd.alerts.rigcheck import ModelLimits, limits_by_model, rig_mask, rig_measured
from minerd.alerts.tracks import Track, TrackKey, TrackTable
from minerd.clock import system_clock
from minerd.errors import StorageError
from minerd.model import (
    Alert,
    FleetSnapshot,
    MeterRole,
    MeterStatus,
    RigModel,
    RigStatus,
    Severity,
)
from minerd.storage import AlertStore, Database, NotFoundError

log = logging.getLogger(__name__)


class NowClock(Protocol):
    def now_s(self) -> float: ...


_RIG_BITS = tuple((r.bit, r) for r in RIG_RULES)
_METER_BITS = tuple((r.bit, r) for r in METER_RULES)
_SITE_BITS = tuple((r.bit, r) for r in SITE_RULES)
_GROUP_OF = {r.name: r for r in CONTAINER_RULES}
# Site bits of the award rules, by how the last closed settlement interval stands.
_BAND_BITS = {Band.IN: 0, Band.UNDER: 128, Band.OVER: 256, Band.OVER_CRITICAL: 512}


class AlertEngine:
    """The alert rules, their state and their notifications for one site.

    evaluate() is synchronous and cheap: call it after each snapshot. run() delivers the
    queued notifications (Alertmanager, webhook, MQTT) until cancelled.
    """

    def __init__(
        self,
        site: str,
        store: AlertStore,
        models: Mapping[str, RigModel],
        thresholds: AlertThresholds | None = None,
        delivery: DeliverySettings | None = None,
        *,
        clock: NowClock | None = None,
        db: Database | None = None,
    ) -> None:
        self.site = site
        self.store = store
        self.thresholds = thresholds or AlertThresholds()
        self.delivery = delivery or DeliverySettings()
        self._clock: NowClock = clock or system_clock
        self._db = db  # when given, one evaluation's writes share one transaction (one fsync)
        self._channels = channel_names(self.delivery)
        self._limits: dict[str, ModelLimits] = limits_by_model(models, self.thresholds)
        self._t = TrackTable()
        self._verify: list[TrackKey] = []  # restored tracks whose condition is not known yet
        self.wakeup = asyncio.Event()  # set when something was queued for delivery
        # rigs
        self._rig_mask: dict[str, int] = {}
        self._rig_container: dict[str, str] = {}
        self._rig_faulty: dict[str, RigStatus] = {}  # latest status of rigs with any bit set
        self._rig_last: dict[str, RigStatus] = {}
        self._not_reached: frozenset[str] = frozenset()
        self._container_total: dict[str, int] = {}
        self._group_count: dict[TrackKey, int] = {}  # (container rule, container) -> rigs
        self._group_on: dict[TrackKey, bool] = {}
        self._group_dirty: set[TrackKey] = set()
        self._refreshed: list[Alert] = []  # firing container alerts whose count changed
        self._unsaved: list[Alert | AlertChange] = []  # writes the database refused
        self._storage_failing = False
        # meters and site
        self._meter_mask: dict[str, int] = {}
        self._meter_tracker: dict[str, MeterTracker] = {}
        self._meter_status: dict[str, MeterStatus] = {}
        self._site_mask = 0
        self._register_faults_seen = 0
        self._snap: FleetSnapshot | None = None
        self._facts: SiteFacts | None = None
        self._restore()

    # ------------------------------------------------------------ public API

    @property
    def channels(self) -> tuple[str, ...]:
        """Outbox channel names, one per configured destination."""
        return self._channels

    def active(self) -> list[Alert]:
        """Firing alerts (including those whose condition is clearing), oldest first."""
        out = [tr.alert for tr in self._t.tracks.values() if tr.alert is not None]
        out.sort(key=lambda a: (a.starts_at_s, a.alert_id))
        return out

    def get(self, alert_id_: str) -> Alert:
        key = self._t.by_alert_id.get(alert_id_)
        if key is not None:
            tr = self._t.tracks[key]
            assert tr.alert is not None
            return tr.alert
        stored = self.store.get(alert_id_)
        if stored is None:
            raise AlertNotFound(alert_id_)
        return stored

    def acknowledge(self, alert_id_: str, by: str) -> Alert:
        """Record who took the alert; the first acknowledgement is kept. AlertNotFound if
        no such alert exists (active or in history)."""
        now = self._clock.now_s()
        try:
            with self._batch():
                acked = self.store.acknowledge(alert_id_, by, now)
                key = self._t.by_alert_id.get(alert_id_)
                if key is not None:
                    tr = self._t.tracks[key]
                    assert tr.alert is not None
                    tr.alert = dataclasses.replace(
                        tr.alert,
                        acknowledged_by=acked.acknowledged_by,
                        acknowledged_at_s=acked.acknowledged_at_s,
                    )
                    acked = tr.alert
                self._emit(AlertChange(ChangeKind.ACKNOWLEDGED, acked), f"ack:{alert_id_}")
        except NotFoundError as exc:
            raise AlertNotFound(alert_id_) from exc
        self.wakeup.set()
        return acked

    def evaluate(
        self, snapshot: FleetSnapshot, facts: SiteFacts, now_s: float
    ) -> list[AlertChange]:
        """Apply one snapshot; returns the alerts that fired or resolved, in that order."""
        self._snap, self._facts = snapshot, facts
        self._eval_rigs(snapshot.rigs, facts, now_s)
        self._eval_groups(now_s)
        self._eval_meters(snapshot.meters, now_s)
        self._eval_site(snapshot, facts, now_s)
        if self._verify:
            self._check_restored(now_s)
        changes = self._advance(now_s)
        if changes or self._refreshed or self._unsaved:
            self._persist(changes)
        return changes

    def _persist(self, changes: list[AlertChange]) -> None:
        """Store and queue; if the database fails, keep the writes and retry them at the
        next evaluation (upserts and de-duplicated enqueues are idempotent)."""
        writes: list[Alert | AlertChange] = [*self._unsaved, *self._refreshed, *changes]
        self._refreshed.clear()
        try:
            with self._batch():
                for w in writes:
                    if isinstance(w, Alert):
                        self.store.upsert(w)
                    else:
                        self.store.upsert(w.alert)
                        self._emit(w, f"{w.kind.value}:{w.alert.alert_id}")
        except StorageError as exc:
            self._unsaved = writes
            if self._storage_failing:
                log.debug("alert state still not stored: %s", exc)
            else:
                self._storage_failing = True
                log.warning("alert state not stored, will retry: %s", exc)
            return
        if self._storage_failing:
            self._storage_failing = False
            log.warning("alert state stored again (%d writes caught up)", len(writes))
        self._unsaved = []
        if any(isinstance(w, AlertChange) for w in writes):
            self.wakeup.set()

    async def run(self) -> None:
        """Deliver queued notifications until cancelled; never blocks evaluate()."""
        await Deliverer(self).run()

    def now_s(self) -> float:
        return self._clock.now_s()

    # ------------------------------------------------------------ restore

    def _restore(self) -> None:
        for a in self.store.active():
            spec = RULES_BY_NAME.get(a.rule)
            if spec is None:
                log.warning("alert %s of unknown rule %s left as stored", a.alert_id, a.rule)
                continue
            labels = dict(a.labels)
            subject = {
                Scope.RIG: labels.get("rig", ""),
                Scope.CONTAINER: labels.get("container", ""),
                Scope.METER: labels.get("meter", ""),
                Scope.SITE: "",
            }[spec.scope]
            key = (spec.name, subject)
            self._t.restore(key, spec, a, self._timing(spec))
            if spec.scope is Scope.RIG:
                self._rig_container.setdefault(subject, labels.get("container", ""))
            self._verify.append(key)

    def _check_restored(self, now_s: float) -> None:
        for key in self._verify:
            tr = self._t.tracks.get(key)
            if tr is None or tr.alert is None:
                continue
            spec = tr.spec
            if spec.scope is Scope.RIG:
                on = bool(self._rig_mask.get(tr.subject, 0) & spec.bit)
            elif spec.scope is Scope.CONTAINER:
                on = self._group_on.get(key, False)
            elif spec.scope is Scope.METER:
                on = bool(self._meter_mask.get(tr.subject, 0) & spec.bit)
            else:
                on = bool(self._site_mask & spec.bit)
            if not on:
                self._t.set(key, spec, False, now_s, tr.timing)
        self._verify.clear()

    # ------------------------------------------------------------ rigs

    def _eval_rigs(self, rigs: Sequence[RigStatus], facts: SiteFacts, now_s: float) -> None:
        masks, faulty, limits, th = self._rig_mask, self._rig_faulty, self._limits, self.thresholds
        not_reached = facts.commanded_not_reached
        # The fleet state hands out the same RigStatus object until something about the rig
        # changes: an identical object needs no work unless the site facts about rigs moved.
        last = self._rig_last
        fast = not_reached == self._not_reached
        self._not_reached = not_reached
        new_rigs = False
        for st in rigs:
            rid = st.rig_id
            if fast and last.get(rid) is st:
                continue
            last[rid] = st
            m = rig_mask(st, limits.get(st.model), th, not_reached)
            prev = masks.get(rid, -1)
            if prev != m:
                if prev < 0:
                    new_rigs = True
                    prev = 0
                    c = st.container
                    self._rig_container[rid] = c
                    self._container_total[c] = self._container_total.get(c, 0) + 1
                masks[rid] = m
                if prev != m:
                    self._rig_changed(rid, prev, m, now_s)
                if not m:
                    faulty.pop(rid, None)
            if m:
                faulty[rid] = st
        if len(masks) > len(rigs):
            self._drop_missing_rigs(rigs, now_s)
        if new_rigs:  # totals changed: every container condition may have changed
            self._group_dirty.update(self._group_count)

    def _rig_changed(self, rid: str, prev: int, m: int, now_s: float) -> None:
        changed = prev ^ m
        c = self._rig_container.get(rid, "")
        for bit, spec in _RIG_BITS:
            if changed & bit:
                on = bool(m & bit)
                if spec.group is not None:
                    gkey = (spec.group, c)
                    self._group_count[gkey] = self._group_count.get(gkey, 0) + (1 if on else -1)
                    self._group_dirty.add(gkey)
                self._t.set((spec.name, rid), spec, on, now_s, self._timing(spec))

    def _drop_missing_rigs(self, rigs: Sequence[RigStatus], now_s: float) -> None:
        present = {st.rig_id for st in rigs}
        for rid in [r for r in self._rig_mask if r not in present]:
            prev = self._rig_mask.pop(rid)
            if prev:
                self._rig_changed(rid, prev, 0, now_s)
            self._rig_faulty.pop(rid, None)
            self._rig_last.pop(rid, None)
            c = self._rig_container.pop(rid, "")
            self._container_total[c] = self._container_total.get(c, 1) - 1
            self._group_dirty.update(k for k in self._group_count if k[1] == c)

    def _eval_groups(self, now_s: float) -> None:
        th = self.thresholds
        for gkey in self._group_dirty:
            count = self._group_count.get(gkey, 0)
            total = self._container_total.get(gkey[1], 0)
            on = count >= th.group_min_rigs or (
                count >= th.group_ratio_min_rigs and count >= th.group_min_ratio * total
            )
            if on != self._group_on.get(gkey, False):
                self._group_on[gkey] = on
                spec = _GROUP_OF[gkey[0]]
                self._t.set(gkey, spec, on, now_s, self._timing(spec))
            elif on and count > 0:
                self._refresh_group(gkey, now_s)
        self._group_dirty.clear()

    def _refresh_group(self, gkey: TrackKey, now_s: float) -> None:
        """A firing container alert follows its count (20 -> 312 rigs): same id, new text,
        stored for the API and Alertmanager's resends, not notified as a new change."""
        tr = self._t.tracks.get(gkey)
        if tr is None or tr.alert is None or tr.false_since_s is not None:
            return
        fresh = self._build(tr, now_s)
        if dict(fresh.extra).get("count") == dict(tr.alert.extra).get("count"):
            return
        tr.alert = dataclasses.replace(
            tr.alert, summary=fresh.summary, description=fresh.description, extra=fresh.extra
        )
        self._refreshed.append(tr.alert)

    def _suppressed(self, spec: RuleSpec, rid: str) -> bool:
        """A rig alert waits while its container alert covers it."""
        if spec.group is None:
            return False
        gkey = (spec.group, self._rig_container.get(rid, ""))
        return self._group_on.get(gkey, False) or self._t.is_firing(gkey)

    # ------------------------------------------------------------ meters and site

    def _eval_meters(self, meters: Sequence[MeterStatus], now_s: float) -> None:
        th = self.thresholds
        for ms in meters:
            tr = self._meter_tracker.get(ms.meter)
            if tr is None:
                tr = self._meter_tracker[ms.meter] = MeterTracker()
            self._meter_status[ms.meter] = ms
            m = meter_mask(ms, tr, th)
            prev = self._meter_mask.get(ms.meter, 0)
            if m != prev:
                self._meter_mask[ms.meter] = m
                for bit, spec in _METER_BITS:
                    if (m ^ prev) & bit:
                        self._t.set(
                            (spec.name, ms.meter), spec, bool(m & bit), now_s, self._timing(spec)
                        )

    def _eval_site(self, snap: FleetSnapshot, facts: SiteFacts, now_s: float) -> None:
        th = self.thresholds
        m = 0
        if snap.grid_fresh and snap.grid_import_w / 1000.0 > facts.effective_limit_kw:
            m |= 1
        if facts.failsafe_engaged:
            m |= 2
        if facts.spool_fill_ratio >= th.spool_fill_ratio:
            m |= 4
        if not facts.tsdb_reachable:
            m |= 8
        if facts.storage_problem:
            m |= 16
        if facts.auth_failures >= th.auth_failures_per_min:
            m |= 32
        if facts.clock_stepped:
            m |= 64
        m |= _BAND_BITS[band(facts.settled, th)]
        # A register fault fires when the count of them rises, and holds while the interval
        # it was seen in goes on (its register stays unbelieved until the interval closes).
        rose = facts.energy_register_faults > self._register_faults_seen
        self._register_faults_seen = facts.energy_register_faults
        if rose or (self._site_mask & 1024 and facts.energy_register_fault):
            m |= 1024
        prev, self._site_mask = self._site_mask, m
        for bit, spec in _SITE_BITS:
            if (m ^ prev) & bit:
                self._t.set((spec.name, ""), spec, bool(m & bit), now_s, self._timing(spec))

    # ------------------------------------------------------------ firing and resolving

    def _advance(self, now_s: float) -> list[AlertChange]:
        changes: list[AlertChange] = []
        t = self._t
        due = [
            (k, tr)
            for k, tr in t.pending.items()
            if now_s - tr.since_s >= tr.timing.for_s
            and not (tr.spec.scope is Scope.RIG and self._suppressed(tr.spec, tr.subject))
        ]
        # Container alerts first so that their rigs are never reported one by one.
        due.sort(key=lambda kt: (kt[1].spec.scope is not Scope.CONTAINER, kt[1].since_s))
        for key, tr in due:
            alert = self._build(tr, now_s)
            t.fired(key, tr, alert)
            changes.append(AlertChange(ChangeKind.FIRED, alert))
        done = [
            (k, tr)
            for k, tr in t.clearing.items()
            if tr.false_since_s is not None and now_s - tr.false_since_s >= tr.timing.clear_s
        ]
        for key, tr in done:
            assert tr.alert is not None and tr.false_since_s is not None
            ended = dataclasses.replace(tr.alert, ends_at_s=tr.false_since_s)
            t.resolved(key, tr)
            changes.append(AlertChange(ChangeKind.RESOLVED, ended))
        return changes

    def _build(self, tr: Track, now_s: float) -> Alert:
        spec, th = tr.spec, self.thresholds
        extra: list[tuple[str, str]] = []
        labels: tuple[tuple[str, str], ...]
        held = now_s - tr.since_s
        if spec.scope is Scope.RIG:
            rid = tr.subject
            st = self._rig_faulty.get(rid)
            container = st.container if st else self._rig_container.get(rid, "")
            labels = (("container", container), ("rig", rid), ("site", self.site))
            summary = texts.rig_summary(spec.name, rid)
            if st is not None:
                measured = rig_measured(spec.name, st, self._limits.get(st.model), th, now_s, held)
                extra = [("model", st.model), ("host", f"{st.host}:{st.port}")]
            else:
                measured = f"Rig {rid}."
        elif spec.scope is Scope.CONTAINER:
            container = tr.subject
            labels = (("container", container), ("site", self.site))
            rig_rule = RULES_BY_NAME[spec.rig_rule or ""]
            rigs = sorted(
                rid
                for rid, st in self._rig_faulty.items()
                if st.container == container and self._rig_mask.get(rid, 0) & rig_rule.bit
            )
            total = self._container_total.get(container, 0)
            shown = rigs[: th.group_detail_rigs]
            more = f" and {len(rigs) - len(shown)} more" if len(rigs) > len(shown) else ""
            summary = texts.container_summary(spec.name, container, len(rigs), total)
            measured = (
                f"{len(rigs)} of {total} rigs in container {container} "
                f"{texts.GROUP_PHRASES.get(spec.name, '')} for {held:.0f} s: "
                f"{', '.join(shown)}{more}. Per-rig detail: GET /api/v1/rigs?container={container}."
            )
            extra = [("count", str(len(rigs))), ("total", str(total)), ("rigs", ",".join(shown))]
        elif spec.scope is Scope.METER:
            ms = self._meter_status[tr.subject]
            labels = (("container", ms.container), ("meter", ms.meter), ("site", self.site))
            summary = texts.meter_summary(spec.name, ms.meter, ms.role.value)
            measured = meter_measured(spec.name, ms, self._meter_tracker[ms.meter], th)
            extra = [("role", ms.role.value)]
        else:
            labels = (("site", self.site),)
            assert self._snap is not None and self._facts is not None
            summary, measured = texts.site_texts(
                spec.name, self.site, self._snap, self._facts, held
            )
        return Alert(
            alert_id=alert_id(spec.name, labels, tr.since_s),
            rule=spec.name,
            severity=self._severity(spec, tr),
            labels=labels,
            summary=summary,
            description=f"{measured} What to do: {spec.action}",
            starts_at_s=tr.since_s,
            extra=tuple(extra),
        )

    def _severity(self, spec: RuleSpec, tr: Track) -> Severity:
        """A feeder or aux meter failing is a warning; the grid meter's is critical."""
        if spec.scope is Scope.METER and spec.severity is Severity.CRITICAL:
            ms = self._meter_status.get(tr.subject)
            if ms is not None and ms.role is not MeterRole.GRID:
                return Severity.WARNING
        return spec.severity

    # ------------------------------------------------------------ persistence

    def _timing(self, spec: RuleSpec) -> RuleTiming:
        return self.thresholds.timing(spec.name, spec.rig_rule)

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        if self._db is None:
            yield
            return
        with self._db.transaction("alert changes"):
            yield

    def _emit(self, change: AlertChange, dedupe: str) -> None:
        payload = change_to_json(change)
        for ch in self._channels:
            self.store.enqueue(ch, change.alert.alert_id, payload, dedupe_key=dedupe)
        if self.delivery.log:
            a = change.alert
            level = logging.INFO if change.kind is not ChangeKind.FIRED else logging.WARNING
            log.log(
                level, "alert %s %s [%s] %s", change.kind.value, a.rule, a.severity.value, a.summary
            )
