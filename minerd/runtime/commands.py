"""The one write path from outside: quotas, schedules, energy awards, the operator cap and
maintenance pins.

The HTTP API, the MQTT quota input and the grid protocols build a command and hand it here;
nothing else of theirs writes. Each command runs the same way:
1. its writes and its audit entry in one transaction (all or nothing), off the event loop;
   whether a request repeats one already applied is decided there, once (for quotas by the
   quota store's idempotency rule);
2. only if it changed something, the running site is told (on the loop), so the cycle acts
   now; a repeat changes nothing and wakes nothing.

A write the database refuses (full, read-only disk) raises NotDurable, a StorageError the
API answers with 503: nothing was accepted, what was accepted before stays in force.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Generic, Protocol, TypeVar

from minerd.errors import QuotaError, StorageError
from minerd.model import EnergyAward, Quota, QuotaSource
from minerd.runtime.award_input import AwardBatch
from minerd.runtime.service import SiteService
from minerd.storage import AwardsPut, MaintenanceEntry, NotFoundError, ScheduleReplaced, Stores

log = logging.getLogger("minerd.commands")

T = TypeVar("T")

# The cycle's key for the cap (runtime.cycle.STATE_OPERATOR_CAP; a test holds them equal):
# spelled here because the API may import this module, and the cycle pulls in the devices.
STATE_OPERATOR_CAP = "control.operator_cap_kw"


class NotDurable(StorageError):
    """A command could not be made durable, so it was not accepted."""

    def __init__(self, what: str, cause: StorageError, kept: str) -> None:
        self.what = what
        super().__init__(
            f"{what} not accepted: it cannot be stored durably ({cause}); {kept}; "
            "send it again once storage works"
        )


@dataclass(frozen=True)
class Applied(Generic[T]):
    value: T
    changed: bool  # False: a repeat of what is already stored; nobody is told


class Command(Protocol[T]):
    @property
    def what(self) -> str:
        """Names the command in logs and errors: "quota", "schedule", "operator cap"."""
        ...

    @property
    def kept(self) -> str:
        """What still holds when this command is refused for want of storage."""
        ...

    def apply(self, stores: Stores, now_s: float) -> Applied[T]:
        """Write inside the caller's transaction (any thread); raise to write nothing."""
        ...

    def notify(self, service: SiteService, value: T) -> None:
        """Tell the running site (on the event loop), after the commit, once per change."""
        ...


def _apply(stores: Stores, command: Command[T], now_s: float) -> Applied[T]:
    try:
        with stores.db.transaction(command.what):
            return command.apply(stores, now_s)
    except NotFoundError:
        raise  # the caller named something that does not exist: 404, not 503
    except StorageError as exc:
        raise NotDurable(command.what, exc, command.kept) from exc


async def execute(service: SiteService, command: Command[T]) -> T:
    """Apply a command with the database work in a worker thread, then notify on the loop."""
    now_s = service.clock.now_s()
    applied = await asyncio.to_thread(_apply, service.stores, command, now_s)
    if applied.changed:
        command.notify(service, applied.value)
    return applied.value


def execute_now(service: SiteService, command: Command[T]) -> T:
    """The same on the caller's thread, for callers that are synchronous (a grid protocol's
    handler, tools, tests): one small transaction, as every write was before."""
    applied = _apply(service.stores, command, service.clock.now_s())
    if applied.changed:
        command.notify(service, applied.value)
    return applied.value


def iso(t_s: float) -> str:
    """ISO 8601 UTC with a Z, as the API shows times (audit details, error messages)."""
    return datetime.fromtimestamp(t_s, tz=UTC).isoformat().replace("+00:00", "Z")


_seq = itertools.count()


def new_quota_id(issued_at_s: float) -> str:
    """Ids that sort in issue order (milliseconds, then a per-process sequence): control
    breaks a tie between quotas issued in the same instant by the larger id, so the one
    accepted last wins, as it should."""
    ms = max(0, int(issued_at_s * 1000))
    return f"q-{ms:012x}-{next(_seq) % 0x1000000:06x}-{secrets.token_hex(4)}"


# ---------------------------------------------------------------- quotas


@dataclass(frozen=True)
class QuotaOutcome:
    quota: Quota
    created: bool  # False: a replay, answered with the quota stored the first time

    @property
    def effective_at_s(self) -> float:
        return max(self.quota.start_s, self.quota.issued_at_s)


_QUOTAS_KEPT = "quotas accepted before stay in force"


@dataclass(frozen=True)
class SetQuota:
    """One quota (POST /quotas, MQTT, a grid protocol); stored once per key or reference."""

    limit_kw: float
    actor: str
    source: QuotaSource
    start_s: float | None = None  # None: now
    end_s: float | None = None  # None: until withdrawn
    reference: str | None = None
    idempotency_key: str | None = None
    what: ClassVar[str] = "quota"
    kept: ClassVar[str] = _QUOTAS_KEPT

    def apply(self, stores: Stores, now_s: float) -> Applied[QuotaOutcome]:
        quota = Quota(
            quota_id=new_quota_id(now_s),
            limit_kw=self.limit_kw,
            start_s=now_s if self.start_s is None else self.start_s,
            end_s=self.end_s,
            source=self.source,
            issued_at_s=now_s,
            issued_by=self.actor,
            reference=self.reference,
        )
        immediate = self.start_s is None
        stored = stores.quotas.replay_of(quota, self.idempotency_key, immediate=immediate)
        if stored is not None:
            return Applied(QuotaOutcome(stored, created=False), changed=False)
        # Checked after the replay rule: a repeat of a quota that has since ended is still
        # answered as the repeat it is.
        if self.end_s is not None and self.end_s <= now_s:
            raise QuotaError("end", f"{iso(self.end_s)} is already past (now {iso(now_s)})")
        stores.quotas.add(quota, self.idempotency_key, immediate=immediate)
        detail = {
            "limit_kw": quota.limit_kw,
            "start": iso(quota.start_s),
            "end": None if quota.end_s is None else iso(quota.end_s),
            "source": self.source.value,
            "reference": self.reference,
        }
        stores.audit.record(now_s, self.actor, "quota.create", quota.quota_id, json.dumps(detail))
        return Applied(QuotaOutcome(quota, created=True), changed=True)

    def notify(self, service: SiteService, value: QuotaOutcome) -> None:
        q = value.quota
        log.info(
            "quota %s: %.1f kW from %s to %s (%s, by %s)",
            q.quota_id,
            q.limit_kw,
            iso(q.start_s),
            "withdrawal" if q.end_s is None else iso(q.end_s),
            q.source.value,
            q.issued_by,
        )
        service.quotas_changed()


@dataclass(frozen=True)
class ScheduleBlock:
    limit_kw: float
    start_s: float
    end_s: float
    reference: str | None = None


@dataclass(frozen=True)
class ReplaceSchedule:
    """Day-ahead blocks: the scheduled quotas they overlap are withdrawn, atomically."""

    blocks: tuple[ScheduleBlock, ...]
    actor: str
    what: ClassVar[str] = "schedule"
    kept: ClassVar[str] = _QUOTAS_KEPT

    def apply(self, stores: Stores, now_s: float) -> Applied[ScheduleReplaced]:
        ordered = sorted(enumerate(self.blocks), key=lambda ib: ib[1].start_s)
        for (_, prev), (i, cur) in itertools.pairwise(ordered):
            if cur.start_s < prev.end_s:
                raise QuotaError(f"blocks.{i}.start", "overlaps another block of the schedule")
        for i, b in enumerate(self.blocks):
            if b.end_s <= b.start_s:
                raise QuotaError(f"blocks.{i}.end", "must be after start")
            if b.end_s <= now_s:
                raise QuotaError(f"blocks.{i}.end", f"{iso(b.end_s)} is already past")
        quotas = [
            Quota(
                quota_id=new_quota_id(now_s),
                limit_kw=b.limit_kw,
                start_s=b.start_s,
                end_s=b.end_s,
                source=QuotaSource.SCHEDULE,
                issued_at_s=now_s,
                issued_by=self.actor,
                reference=b.reference,
            )
            for _, b in ordered
        ]
        result = stores.quotas.replace_schedule(quotas, self.actor, now_s)
        if not quotas:
            return Applied(result, changed=False)
        detail = {
            "blocks": len(quotas),
            "from": iso(quotas[0].start_s),
            "to": iso(max(q.end_s or q.start_s for q in quotas)),
            "withdrawn": [q.quota_id for q in result.withdrawn],
        }
        stores.audit.record(now_s, self.actor, "quota.schedule", "", json.dumps(detail))
        return Applied(result, changed=True)

    def notify(self, service: SiteService, value: ScheduleReplaced) -> None:
        log.info(
            "schedule: %d blocks from %s by %s, %d replaced",
            len(value.added),
            iso(min(q.start_s for q in value.added)),
            self.actor,
            len(value.withdrawn),
        )
        service.quotas_changed()


@dataclass(frozen=True)
class WithdrawQuota:
    """Withdraw from now on; NotFoundError for an unknown id; a second time changes nothing."""

    quota_id: str
    actor: str
    what: ClassVar[str] = "quota withdrawal"
    kept: ClassVar[str] = "the quota stays in force"

    def apply(self, stores: Stores, now_s: float) -> Applied[Quota]:
        before = stores.quotas.get(self.quota_id)
        if before is None:
            raise NotFoundError("quota", self.quota_id)
        if before.withdrawn_at_s is not None:
            return Applied(before, changed=False)
        quota = stores.quotas.withdraw(self.quota_id, now_s, self.actor)
        stores.audit.record(now_s, self.actor, "quota.withdraw", self.quota_id, "{}")
        return Applied(quota, changed=True)

    def notify(self, service: SiteService, value: Quota) -> None:
        log.info("quota %s withdrawn by %s", value.quota_id, self.actor)
        service.quotas_changed()


# ---------------------------------------------------------------- operator


@dataclass(frozen=True)
class CapSet:
    cap_kw: float | None
    before_kw: float | None
    at_s: float


@dataclass(frozen=True)
class SetOperatorCap:
    """Set (or clear with None) the operator cap; the same cap again changes nothing."""

    cap_kw: float | None
    actor: str
    what: ClassVar[str] = "operator cap"
    kept: ClassVar[str] = "the cap in force stays"

    def apply(self, stores: Stores, now_s: float) -> Applied[CapSet]:
        before = stores.state.get_float(STATE_OPERATOR_CAP)
        out = CapSet(self.cap_kw, before, now_s)
        if before == self.cap_kw:
            return Applied(out, changed=False)
        if self.cap_kw is None:
            stores.state.delete(STATE_OPERATOR_CAP)
            action = "operator_cap.clear"
        else:
            stores.state.set(STATE_OPERATOR_CAP, self.cap_kw)
            action = "operator_cap.set"
        detail = json.dumps({"cap_kw": self.cap_kw, "before_kw": before})
        stores.audit.record(now_s, self.actor, action, "", detail)
        return Applied(out, changed=True)

    def notify(self, service: SiteService, value: CapSet) -> None:
        try:
            service.set_operator_cap(value.cap_kw, self.actor)
        except StorageError as exc:
            # The cap is durable already (above); the site's own copy of it is not needed.
            log.warning("operator cap: in force, the site's second write failed: %s", exc)


@dataclass(frozen=True)
class PinRig:
    """Pin a rig for maintenance; pinning it again keeps the first pin (who, since, note)."""

    rig_id: str
    actor: str
    note: str = ""
    what: ClassVar[str] = "maintenance pin"
    kept: ClassVar[str] = "the rig stays under control"

    def apply(self, stores: Stores, now_s: float) -> Applied[MaintenanceEntry]:
        was = self.rig_id in stores.maintenance.rig_ids()
        entry = stores.maintenance.add(self.rig_id, self.actor, now_s, self.note)
        if was:
            return Applied(entry, changed=False)
        detail = json.dumps({"note": self.note})
        stores.audit.record(now_s, self.actor, "maintenance.on", self.rig_id, detail)
        return Applied(entry, changed=True)

    def notify(self, service: SiteService, value: MaintenanceEntry) -> None:
        log.info("rig %s pinned for maintenance by %s", self.rig_id, self.actor)
        service.set_maintenance(self.rig_id, True)


@dataclass(frozen=True)
class ReleaseRig:
    """Release a pinned rig; releasing one not pinned changes nothing."""

    rig_id: str
    actor: str
    what: ClassVar[str] = "maintenance release"
    kept: ClassVar[str] = "the rig stays pinned"

    def apply(self, stores: Stores, now_s: float) -> Applied[bool]:
        if not stores.maintenance.remove(self.rig_id):
            return Applied(False, changed=False)
        stores.audit.record(now_s, self.actor, "maintenance.off", self.rig_id, "{}")
        return Applied(True, changed=True)

    def notify(self, service: SiteService, value: bool) -> None:
        log.info("rig %s released from maintenance by %s", self.rig_id, self.actor)
        service.set_maintenance(self.rig_id, False)


# ---------------------------------------------------------------- energy awards


def new_award_id(issued_at_s: float) -> str:
    """An id for an award its sender gave none (sorts in issue order, as quota ids)."""
    ms = max(0, int(issued_at_s * 1000))
    return f"a-{ms:012x}-{next(_seq) % 0x1000000:06x}-{secrets.token_hex(4)}"


_AWARDS_KEPT = "awards accepted before stay in force"


@dataclass(frozen=True)
class PutAwards:
    """A batch of energy awards (HTTP JSON or CSV, MQTT, a dropped file): stored at once or
    not at all; the latest award for an interval wins; the store decides what is a replay."""

    batch: AwardBatch
    actor: str
    source: QuotaSource
    idempotency_key: str | None = None
    what: ClassVar[str] = "awards"
    kept: ClassVar[str] = _AWARDS_KEPT

    def apply(self, stores: Stores, now_s: float) -> Applied[AwardsPut]:
        generated: set[str] = set()
        awards = []
        for line in self.batch.lines:
            award_id = line.award_id
            if award_id is None:
                award_id = new_award_id(now_s)
                generated.add(award_id)
            awards.append(
                EnergyAward(
                    award_id=award_id,
                    start_s=line.start_s,
                    end_s=line.end_s,
                    energy_kwh=line.energy_kwh,
                    source=self.source,
                    issued_at_s=now_s,
                    issued_by=self.actor,
                    reference=line.reference,
                )
            )
        out = stores.awards.put(
            awards,
            self.actor,
            now_s,
            idempotency_key=self.idempotency_key,
            generated_ids=frozenset(generated),
            replace_span=self.batch.span if self.batch.replace else None,
        )
        if not out.changed:
            return Applied(out, changed=False)
        span = self.batch.span
        detail = {
            "source": self.source.value,
            "from": iso(span[0]),
            "to": iso(span[1]),
            "created": [
                {"id": a.award_id, "start": iso(a.start_s), "energy_kwh": a.energy_kwh}
                for a, new in zip(out.awards, out.created, strict=True)
                if new
            ],
            "replayed": sum(1 for new in out.created if not new),
            "superseded": [a.award_id for a in out.superseded],
            "withdrawn": [a.award_id for a in out.withdrawn],
        }
        stores.audit.record(now_s, self.actor, "award.put", "", json.dumps(detail))
        return Applied(out, changed=True)

    def notify(self, service: SiteService, value: AwardsPut) -> None:
        log.info(
            "awards: %d new, %d repeated, %d replaced, %d withdrawn (%s, by %s)",
            sum(value.created),
            len(value.created) - sum(value.created),
            len(value.superseded),
            len(value.withdrawn),
            self.source.value,
            self.actor,
        )
        _awards_changed(service)


@dataclass(frozen=True)
class WithdrawAward:
    """Withdraw one award from now on; NotFoundError for an unknown id."""

    award_id: str
    actor: str
    what: ClassVar[str] = "award withdrawal"
    kept: ClassVar[str] = "the award stays in force"

    def apply(self, stores: Stores, now_s: float) -> Applied[EnergyAward]:
        before = stores.awards.get(self.award_id)
        if before is None:
            raise NotFoundError("award", self.award_id)
        if before.withdrawn_at_s is not None:
            return Applied(before, changed=False)
        award = stores.awards.withdraw(self.award_id, now_s, self.actor)
        stores.audit.record(now_s, self.actor, "award.withdraw", self.award_id, "{}")
        return Applied(award, changed=True)

    def notify(self, service: SiteService, value: EnergyAward) -> None:
        log.info("award %s withdrawn by %s", value.award_id, self.actor)
        _awards_changed(service)


@dataclass(frozen=True)
class WithdrawAwards:
    """Withdraw every award in force that starts in [from_s, to_s)."""

    from_s: float
    to_s: float
    actor: str
    what: ClassVar[str] = "award withdrawal"
    kept: ClassVar[str] = "the awards stay in force"

    def apply(self, stores: Stores, now_s: float) -> Applied[list[EnergyAward]]:
        gone = stores.awards.withdraw_range(self.from_s, self.to_s, now_s, self.actor)
        if not gone:
            return Applied(gone, changed=False)
        detail = {"from": iso(self.from_s), "to": iso(self.to_s)}
        detail_ids = {**detail, "ids": [a.award_id for a in gone]}
        stores.audit.record(now_s, self.actor, "award.withdraw", "", json.dumps(detail_ids))
        return Applied(gone, changed=True)

    def notify(self, service: SiteService, value: list[EnergyAward]) -> None:
        log.info("%d awards withdrawn by %s", len(value), self.actor)
        _awards_changed(service)


def _awards_changed(service: SiteService) -> None:
    """The pace re-reads the awards now (a site that has no pacing: nothing to tell), and
    the cycle runs at once, as for a quota."""
    awards_changed = getattr(service, "awards_changed", None)
    if callable(awards_changed):
        awards_changed()
    service.quotas_changed()
