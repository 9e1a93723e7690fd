"""The regional coordinator on one NATS connection (issue 16 item 3).

Every round, while it holds the region's leadership lease, it splits the regional limit
over the sites whose offers are fresh (region_split: best marginal TH/s per W first, each
within its own limit), less what silent sites may still draw (their last allocation until
its lease ends, then their fail-safe limit), stages raises behind confirmed cuts, and sends
each site its allocation with a lease. The limit is changed at runtime by a request on
`minerd.region.<name>.limit` carrying the control token; every change and every new
allocation goes to the audit callback (the daemon keeps it in SQLite).

Energy awards for the region come the same way, on `minerd.region.<name>.award`; each is
split over the sites at the first round in its interval (region_award: in proportion to
that round's power targets, silent sites set aside first), the split is fixed for the
interval, and each site's part rides in its allocations while the interval runs. A standby
takes the same requests and splits from the same offers, so a leader that takes over mid-
interval sends (nearly) the same parts, not a fresh split of energy already spent.

Once a silent site's lease has expired, what it provably cannot use of its part (its
allocations until then, its fail-safe limit after: region_regive.py) is re-given to the
fresh sites, from the allocations this coordinator sent in its current term. The revised
split is written to a shared KV bucket (regive_store.py) before it is sent and read back by
every coordinator each round, so a standby takes over with it; it is audited as
region.award.regive and restored from the audit after a restart. A site that gave and comes
back within the interval gets its lowered part and at most its fail-safe limit until the
interval ends.

Every allocation names the epoch of the store its lease revision counts in (store_epoch),
read (or created) at the start of each term of leadership, so a coordinator that takes the
lease again in a wiped and recreated store sends that store's epoch, never its old one.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from minerd.cancelling import raise_if_cancelled
from minerd.clock import Clock
from minerd.cluster.lease import ControllerLease
from minerd.cluster.region import (
    Allocation,
    SiteOffer,
    allocation_subject,
    award_subject,
    decode_offer,
    encode_allocation,
    lease_token,
    limit_subject,
    offers_wildcard,
)
from minerd.cluster.region_award import (
    RegionalAward,
    SiteAward,
    read_awards,
    rescale,
    site_award_id,
    split_award,
)
from minerd.cluster.region_regive import SentAllocation, SilentSite, merge_donors, regive
from minerd.cluster.region_split import SiteBid, split_region, stage_raises
from minerd.cluster.regive_store import SharedRegive, get_regive, put_regive, regive_bucket
from minerd.cluster.sent_store import SentRecord, bounded, get_sent, merged, put_sent, sent_bucket
from minerd.cluster.store_epoch import TermEpoch
from minerd.cluster.subjects import lease_bucket
from minerd.errors import ClusterError, QuotaError
from minerd.repeated_log import RepeatedLog

log = logging.getLogger("minerd.cluster.coordinator")

_IO_TIMEOUT_S = 2.0
_AUDIT_CHANGE = 0.005  # an allocation is audited when it moves by more than this fraction
_AWARDS_KEPT_S = 86_400.0  # an award is forgotten this long after its interval ended
ACTION_AWARD_SET = "region.award.set"
ACTION_AWARD_SPLIT = "region.award.split"
ACTION_AWARD_REGIVE = "region.award.regive"
_HISTORY_KEPT_S = 2 * 86_400.0  # allocations sent: an interval is at most a day
_INTERVAL_MAX_S = 86_400.0


def _covers(recorded: SentAllocation, sent: SentAllocation) -> bool:
    """The recorded allocation stands for the one sent: the same, issued no later, and
    lasting at least as long."""
    return (
        recorded.allocation_w == sent.allocation_w
        and recorded.issued_at_s <= sent.issued_at_s
        and recorded.ends_at_s >= sent.ends_at_s
    )


# (action, subject, detail) -> None; detail is JSON-able
AuditFn = Callable[[str, str, dict[str, object]], None]


@dataclass(frozen=True)
class Round:
    allocations: dict[str, float]  # W, sent this round
    targets: dict[str, float]  # W, the split before staging raises
    reserved_w: float  # for silent sites
    limit_w: float
    # What each silent site may draw (W): its energy is set aside first in an award's split.
    silent_max_w: dict[str, float] = field(default_factory=dict)


class _Refused(Exception):
    """A request refused before it is read further: the answer says why."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.answer: dict[str, object] = {"ok": False, "error": error}


@dataclass
class _Heard:
    offer: SiteOffer
    at_mono_s: float


class Coordinator:
    def __init__(
        self,
        nc: Client,
        region: str,
        coordinator_id: str,
        limit_kw: float,
        clock: Clock,
        *,
        lease_s: float = 30.0,
        site_silent_s: float = 15.0,
        control_token: str | None = None,
        audit: AuditFn | None = None,
        regive_slack_s: float = 10.0,
    ) -> None:
        self.nc = nc
        self.region = region
        self.coordinator_id = coordinator_id
        self.limit_kw = limit_kw
        self.clock = clock
        self.lease_s = lease_s
        self.site_silent_s = site_silent_s
        self.control_token = control_token
        self.audit = audit
        self.lease: ControllerLease | None = None  # the runner sets it; None: never leads
        self.bad_messages = 0
        self.allocations_sent = 0
        self.last: Round | None = None
        self.wake = asyncio.Event()  # a round now (limit changed)
        self._heard: dict[str, _Heard] = {}
        self._sent: dict[str, Allocation] = {}
        self._audited_w: dict[str, float] = {}
        self._seq = 0
        # The lease store's epoch, read at each term's start ("": unknown).
        self.epoch = TermEpoch(f"coordinator {coordinator_id}", lease_bucket(lease_token(region)))
        # Regional energy awards: every one heard (replays are told by id), those in force
        # (the latest for an interval wins), and each one's split, fixed when its interval
        # began (site -> kWh).
        self.awards: dict[str, RegionalAward] = {}
        self.awards_in_force: dict[str, RegionalAward] = {}
        self.award_splits: dict[str, dict[str, float]] = {}
        # Re-giving a silent site's unusable energy (region_regive): every allocation sent,
        # per site, since history_from_s (this term's start: another coordinator may have
        # sent before); regive_slack_s bounds the clock skew to a site. Awards whose shared
        # re-give could not be read this round send no parts (a site keeps what it stored).
        self.regive_slack_s = regive_slack_s
        self._history: dict[str, list[SentAllocation]] = {}
        self._history_from_s = math.inf
        self._history_term = -1
        self._recorded: dict[str, tuple[SentAllocation, ...]] = {}  # last written (sent_store)
        self._regive_unknown: set[str] = set()
        # Sites that gave of an award (award id -> sites): one that comes back while the
        # interval runs is allocated at most its fail-safe limit, which its lowered part
        # covers (it is at least failsafe_w to the end), however late it stores that part.
        self.award_donors: dict[str, dict[str, float]] = {}  # -> site -> fail-safe W
        # A split waits until every live site has had time to offer (site_silent_s): a site
        # not heard yet would be left out of the interval, not set aside.
        self._started_mono_s = clock.monotonic_s()
        self._subs: list[Subscription] = []
        self._log = RepeatedLog(log)

    async def start(self) -> None:
        self._subs = [
            await self.nc.subscribe(offers_wildcard(self.region), cb=self._on_offer),
            await self.nc.subscribe(limit_subject(self.region), cb=self._on_limit),
            await self.nc.subscribe(award_subject(self.region), cb=self._on_award),
        ]

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()

    def sites(self) -> dict[str, SiteOffer]:
        return {s: h.offer for s, h in self._heard.items()}

    # ------------------------------------------------------------ inputs

    async def _on_offer(self, msg: Msg) -> None:
        try:
            o = decode_offer(msg.data, msg.subject)
        except ClusterError as e:
            self.bad_messages += 1
            self._log.warning("bad-offer", "coordinator %s: %s", self.coordinator_id, e)
            return
        if o.region != self.region:
            self.bad_messages += 1
            return
        old = self._heard.get(o.site)
        if old is not None and o.seq <= old.offer.seq and o.seq != 1:  # seq 1: a restart
            return
        self._heard[o.site] = _Heard(o, self.clock.monotonic_s())

    async def _on_limit(self, msg: Msg) -> None:
        await self._answer(msg, "limit", self.set_limit_request(msg.data))

    async def _on_award(self, msg: Msg) -> None:
        await self._answer(msg, "award", self.set_awards_request(msg.data))

    async def _answer(self, msg: Msg, what: str, answer: dict[str, object]) -> None:
        if msg.reply:
            try:
                async with asyncio.timeout(_IO_TIMEOUT_S):
                    await msg.respond(json.dumps(answer).encode())
            except Exception as e:  # the change stands; only the answer is lost
                log.warning("coordinator %s: %s answer not sent: %r", self.coordinator_id, what, e)

    def _authorized(
        self, data: bytes, what: str, refused_action: str
    ) -> tuple[dict[str, object], str]:
        """A request's JSON object and its actor, once its token is checked (a bad token is
        logged and audited as refused_action); else _Refused with the answer to send."""
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise _Refused("not JSON") from None
        if not isinstance(body, dict):
            raise _Refused("not a JSON object")
        token, actor = body.get("token"), body.get("actor")
        if self.control_token is None:
            raise _Refused("no control token configured on this coordinator")
        if not isinstance(token, str) or not hmac.compare_digest(
            token.encode(), self.control_token.encode()
        ):
            log.warning("coordinator %s: %s refused: bad token", self.coordinator_id, what)
            self._audit(refused_action, "", {"actor": str(actor), "why": "bad token"})
            raise _Refused("bad token")
        if not isinstance(actor, str) or not actor:
            raise _Refused("actor must be a non-empty string")
        return body, actor

    def set_limit_request(self, data: bytes) -> dict[str, object]:
        """{"limit_kw": x, "actor": name, "token": t} -> {"ok": ..., ...}; audited."""
        try:
            body, actor = self._authorized(data, "limit change", "region.limit.refused")
        except _Refused as e:
            return e.answer
        kw = body.get("limit_kw")
        if isinstance(kw, bool) or not isinstance(kw, int | float) or not math.isfinite(kw):
            return {"ok": False, "error": "limit_kw must be a finite number"}
        if kw < 0:
            return {"ok": False, "error": "limit_kw must be >= 0"}
        old = self.limit_kw
        self.limit_kw = float(kw)
        log.warning("regional limit %s: %g -> %g kW by %s", self.region, old, kw, actor)
        self._audit("region.limit.set", "", {"actor": actor, "from_kw": old, "to_kw": float(kw)})
        self.wake.set()  # a cut is sent at once, not at the next round
        return {"ok": True, "limit_kw": float(kw), "coordinator": self.coordinator_id}

    def set_awards_request(self, data: bytes) -> dict[str, object]:
        """{"awards": [{"id", "start_s", "end_s", "energy_kwh", "issued_by"}, ...], "actor",
        "token"} -> {"ok": ..., "awards": [{"id", "created"}]}; audited. A batch is taken
        whole or not at all. An id heard before is a replay with the same interval and
        energy, refused with other content; a new award replaces any in force that overlaps
        it (a revision of a running interval rescales its fixed split)."""
        try:
            body, actor = self._authorized(data, "awards", "region.award.refused")
        except _Refused as e:
            return e.answer
        now_s = self.clock.now_s()
        try:
            asked = read_awards(body, actor, now_s)
            for a in asked:
                old = self.awards.get(a.award_id)
                if old is not None and not old.same_content(a):
                    raise QuotaError(
                        "awards.id",
                        f"{a.award_id} was heard with other content (start {old.start_s}, "
                        f"end {old.end_s}, {old.energy_kwh} kWh): send a new id to revise",
                    )
        except QuotaError as e:
            return {"ok": False, "error": str(e), "field": e.field}
        created: list[dict[str, object]] = []
        for a in asked:
            new = a.award_id not in self.awards
            created.append({"id": a.award_id, "created": new})
            if new:
                self._take_award(a)
        if any(c["created"] for c in created):
            log.warning(
                "regional awards %s: %s by %s",
                self.region,
                ", ".join(f"{a.award_id} {a.energy_kwh:g} kWh" for a in asked),
                actor,
            )
            self._audit(
                ACTION_AWARD_SET,
                "",
                {
                    "actor": actor,
                    "awards": [
                        {
                            "id": a.award_id,
                            "start_s": a.start_s,
                            "end_s": a.end_s,
                            "energy_kwh": a.energy_kwh,
                            "issued_by": a.issued_by,
                        }
                        for a, c in zip(asked, created, strict=True)
                        if c["created"]
                    ],
                },
            )
            self.wake.set()  # an interval already running is split at once
        return {"ok": True, "coordinator": self.coordinator_id, "awards": created}

    def _take_award(self, a: RegionalAward) -> None:
        """A new award in force; those it overlaps are replaced (a revision of the same
        interval keeps the running interval's split, rescaled)."""
        self.awards[a.award_id] = a
        for old in list(self.awards_in_force.values()):
            if old.start_s < a.end_s and a.start_s < old.end_s:
                del self.awards_in_force[old.award_id]
                split = self.award_splits.get(old.award_id)
                if split is not None and (old.start_s, old.end_s) == (a.start_s, a.end_s):
                    self.award_splits[a.award_id] = rescale(split, old.energy_kwh, a.energy_kwh)
                    gave = self.award_donors.get(old.award_id)
                    if gave:  # a site that gave stays held at its fail-safe limit
                        self.award_donors[a.award_id] = merge_donors(
                            self.award_donors.get(a.award_id, {}), gave
                        )
        self.awards_in_force[a.award_id] = a

    def _split_awards(self, r: Round, now_s: float, revision: int) -> None:
        """Fix the split of every award whose interval has begun and has none yet; forget
        awards long over."""
        for award_id, a in list(self.awards.items()):
            if a.end_s + _AWARDS_KEPT_S < now_s:
                del self.awards[award_id]
                self.awards_in_force.pop(award_id, None)
                self.award_splits.pop(award_id, None)
                self.award_donors.pop(award_id, None)
        if self.clock.monotonic_s() - self._started_mono_s < self.site_silent_s:
            return
        for a in self.awards_in_force.values():
            if not a.covers(now_s) or a.award_id in self.award_splits:
                continue
            max_w = {s: self._heard[s].offer.max_import_w for s in r.targets if s in self._heard}
            split = split_award(a.energy_kwh, a.interval_h, r.targets, max_w, r.silent_max_w)
            self.award_splits[a.award_id] = split
            log.info(
                "regional award %s (%g kWh) split: %s",
                a.award_id,
                a.energy_kwh,
                ", ".join(f"{s} {kwh:.3f} kWh" for s, kwh in sorted(split.items())),
            )
            self._audit(
                ACTION_AWARD_SPLIT,
                "",
                {
                    "award_id": a.award_id,
                    "energy_kwh": a.energy_kwh,
                    "start_s": a.start_s,
                    "end_s": a.end_s,
                    "sites_kwh": split,
                    "targets_kw": {s: w / 1000.0 for s, w in r.targets.items()},
                    "silent_max_kw": {s: w / 1000.0 for s, w in r.silent_max_w.items()},
                    "lease_revision": revision,
                },
            )

    def restore_awards(self, entries: Iterable[tuple[str, str]]) -> int:
        """Awards and splits back from this coordinator's audit after a restart: (action,
        detail JSON) oldest first, as set_awards_request and _split_awards wrote them; the
        number of awards taken back. A running interval keeps the split its sites have
        (a fresh split would hand out energy already spent). An entry that cannot be read
        is logged and skipped."""
        now_s = self.clock.now_s()
        taken = 0
        for action, text in entries:
            try:
                detail = json.loads(text)
                if action == ACTION_AWARD_SET:
                    for d in detail["awards"]:
                        a = RegionalAward(
                            str(d["id"]),
                            float(d["start_s"]),
                            float(d["end_s"]),
                            float(d["energy_kwh"]),
                            str(d["issued_by"]),
                        )
                        if a.award_id not in self.awards and a.end_s + _AWARDS_KEPT_S >= now_s:
                            self._take_award(a)
                            taken += 1
                elif (
                    action in (ACTION_AWARD_SPLIT, ACTION_AWARD_REGIVE)
                    and detail["award_id"] in self.awards
                ):
                    split = {str(s): float(kwh) for s, kwh in detail["sites_kwh"].items()}
                    self.award_splits[str(detail["award_id"])] = split
                    if action == ACTION_AWARD_REGIVE:
                        award_id = str(detail["award_id"])
                        gave = {str(s): float(b["failsafe_w"]) for s, b in detail["bounds"].items()}
                        self.award_donors[award_id] = merge_donors(
                            self.award_donors.get(award_id, {}), gave
                        )
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                log.warning(
                    "coordinator %s: audit entry %s unreadable: %r", self.coordinator_id, action, e
                )
        if taken:
            log.warning(
                "coordinator %s: %d regional awards restored (%d split)",
                self.coordinator_id,
                taken,
                sum(1 for a in self.awards if a in self.award_splits),
            )
        return taken

    def site_awards(self, site: str, now_s: float) -> tuple[SiteAward, ...]:
        """The site's parts of the awards in force whose interval runs now and is split."""
        out = []
        for a in sorted(self.awards_in_force.values(), key=lambda x: x.start_s):
            split = self.award_splits.get(a.award_id)
            if not a.covers(now_s) or split is None or site not in split:
                continue
            if a.award_id in self._regive_unknown:
                continue
            kwh = split[site]
            out.append(
                SiteAward(
                    site_award_id(a.award_id, site, a.start_s, a.end_s, kwh),
                    a.award_id,
                    a.start_s,
                    a.end_s,
                    kwh,
                    a.energy_kwh,
                    a.issued_by,
                )
            )
        return tuple(out)

    # ------------------------------------------------------------ a round

    def _audit(self, action: str, subject: str, detail: dict[str, object]) -> None:
        if self.audit is None:
            return
        try:
            self.audit(action, subject, detail)
        except Exception as e:  # a failing disk degrades the audit, never the allocations
            self._log.warning("audit", "coordinator %s: audit failed: %r", self.coordinator_id, e)

    def donors_at(self, now_s: float) -> dict[str, float]:
        """Sites that gave of an award running now: allocated at most their fail-safe limit."""
        running = [a.award_id for a in self.awards_in_force.values() if a.covers(now_s)]
        return merge_donors(*(self.award_donors.get(i, {}) for i in running))

    def plan_round(self) -> Round:
        """The allocations this round would send (pure but for reading the clock)."""
        now_s = self.clock.now_s()
        mono_s = self.clock.monotonic_s()
        limit_w = self.limit_kw * 1000.0
        fresh: dict[str, SiteOffer] = {}
        reserved_w = 0.0
        silent_max_w: dict[str, float] = {}
        for s, h in self._heard.items():
            sent = self._sent.get(s)
            lease_on = sent is not None and now_s < sent.issued_at_s + sent.lease_s
            if mono_s - h.at_mono_s <= self.site_silent_s:
                fresh[s] = h.offer
                continue
            if lease_on and sent is not None:
                reserved_w += max(sent.allocation_w, h.offer.held_w)
            else:
                reserved_w += h.offer.failsafe_w  # what it falls to when its lease ends
            # Over an award's interval it may draw its allocation, then its fail-safe limit.
            sent_w = sent.allocation_w if lease_on and sent is not None else 0.0
            silent_max_w[s] = max(sent_w, h.offer.held_w, h.offer.failsafe_w)
        avail_w = max(0.0, limit_w - reserved_w)
        gave = self.donors_at(now_s)
        bids = {}
        for s, o in fresh.items():
            max_w = o.max_import_w
            if s in gave:  # the fail-safe limit its bound counted, if it reports more now
                max_w = min(max_w, o.failsafe_w, gave[s])
            elif self._regive_unknown:  # any site may have given: none raised past that
                max_w = min(max_w, max(o.held_w, o.failsafe_w))
            bids[s] = SiteBid(o.curve, o.overhead_w, max_w)
        targets = split_region(avail_w, bids)
        held: dict[str, float] = {}
        for s, o in fresh.items():
            sent = self._sent.get(s)
            may_w = o.held_w
            if sent is not None and now_s < sent.issued_at_s + sent.lease_s:
                may_w = max(may_w, sent.allocation_w)  # sent, not yet confirmed: it may hold it
            held[s] = may_w
        allocations = stage_raises(targets, held, avail_w)
        return Round(allocations, targets, reserved_w, limit_w, silent_max_w)

    async def round(self) -> Round | None:
        """Split and send, if leader. None when not leading."""
        lease = self.lease
        if lease is None or not lease.held():
            if lease is not None:  # a standby splits awards as well: a takeover keeps them
                await self._shared_regives(self.clock.now_s())
                self._split_awards(self.plan_round(), self.clock.now_s(), 0)
            return None
        await self.epoch.refresh(self.nc, lease.terms, lease.revision)
        await self._shared_regives(self.clock.now_s())  # the donors, before they are allocated
        r = self.plan_round()
        now_s = self.clock.now_s()
        if lease.terms != self._history_term:  # a new term: what was sent before, recorded
            self._history_term = lease.terms
            await self._take_history(now_s)
        self._split_awards(r, now_s, lease.revision)
        await self._regive(r, now_s, lease.revision)
        sends: list[Allocation] = []
        for site, alloc_w in sorted(r.allocations.items()):
            self._seq += 1
            sends.append(
                Allocation(
                    self.region,
                    site,
                    self.coordinator_id,
                    lease.revision,
                    self._seq,
                    now_s,
                    self.lease_s,
                    alloc_w,
                    r.limit_w,
                    self.site_awards(site, now_s),
                    self.store_epoch,
                )
            )
            self._sent_to(site, now_s, alloc_w)  # before sending: a failed send may arrive
        self.last = r
        if not await self._record_sent(now_s):
            return r  # unrecorded, a send would leave a hole in the next leader's history
        for a in sends:
            if await self._send(a):
                self._sent[a.site] = a
                self._audit_allocation(a, r)
        return r

    def _audit_allocation(self, a: Allocation, r: Round) -> None:
        """Audit an allocation sent when it moved by more than _AUDIT_CHANGE."""
        site, alloc_w = a.site, a.allocation_w
        before = self._audited_w.get(site)
        if before is None or abs(alloc_w - before) > _AUDIT_CHANGE * max(before, 1.0):
            self._audited_w[site] = alloc_w
            self._audit(
                "region.allocation",
                site,
                {
                    "allocation_kw": alloc_w / 1000.0,
                    "target_kw": r.targets.get(site, alloc_w) / 1000.0,
                    "regional_limit_kw": r.limit_w / 1000.0,
                    "reserved_kw": r.reserved_w / 1000.0,
                    "lease_revision": a.lease_revision,
                    "store_epoch": self.store_epoch,
                    "seq": a.seq,
                    "expires_at_s": a.issued_at_s + self.lease_s,
                },
            )

    def _sent_store(self) -> str:
        return sent_bucket(lease_token(self.region))

    async def _take_history(self, now_s: float) -> None:
        """A new term: every allocation sent before it, as the leaders wrote them
        (sent_store), from the record's start on; none known (from now) when there is no
        record or it cannot be read."""
        self._history_from_s = now_s
        self._recorded = {}
        try:
            record = await get_sent(self.nc.jetstream(), self._sent_store())
        except ClusterError as e:
            log.warning(
                "coordinator %s: %s: nothing re-given in an interval begun before this term",
                self.coordinator_id,
                e,
            )
            return
        if record is None:
            return
        self._history = merged(self._history, record.sites)
        self._history_from_s = min(now_s, record.from_s)
        self._recorded = dict(record.sites)
        log.info(
            "coordinator %s: allocations sent since %.0f taken from the shared record (%d sites)",
            self.coordinator_id,
            self._history_from_s,
            len(record.sites),
        )

    async def _record_sent(self, now_s: float) -> bool:
        """Write the allocations sent, this round's included, before they are sent (False:
        not written, nothing may be sent). Each site's last allocation is written as lasting
        two leases from now, so renewals need no write until then (a longer lease only
        lowers what re-giving finds unusable)."""
        covered = all(
            (rec := self._recorded.get(site)) and _covers(rec[-1], hist[-1])
            for site, hist in self._history.items()
            if hist
        )
        if covered:
            return True
        keep_from_s = now_s - _INTERVAL_MAX_S - self.lease_s
        sites: dict[str, tuple[SentAllocation, ...]] = {}
        for site, hist in self._history.items():
            kept = list(bounded(hist, keep_from_s))
            if kept:
                last = kept[-1]
                ahead_s = max(last.ends_at_s, now_s + 2 * self.lease_s) - last.issued_at_s
                kept[-1] = SentAllocation(last.issued_at_s, ahead_s, last.allocation_w)
                sites[site] = tuple(kept)
        try:
            await put_sent(
                self.nc.jetstream(), self._sent_store(), SentRecord(self._history_from_s, sites)
            )
        except ClusterError as e:
            self._log.warning(
                "sent-write",
                "coordinator %s: %s: this round's allocations are not sent",
                self.coordinator_id,
                e,
            )
            return False
        self._log.clear("sent-write")
        self._recorded = sites
        return True

    def _sent_to(self, site: str, now_s: float, alloc_w: float) -> None:
        """One allocation in the site's history; a renewal of the same one extends it."""
        hist = self._history.setdefault(site, [])
        last = hist[-1] if hist else None
        if last is not None and last.allocation_w == alloc_w and now_s <= last.ends_at_s:
            hist[-1] = SentAllocation(
                last.issued_at_s, now_s + self.lease_s - last.issued_at_s, alloc_w
            )
        else:
            hist.append(SentAllocation(now_s, self.lease_s, alloc_w))
        while hist and hist[0].ends_at_s < now_s - _HISTORY_KEPT_S:
            hist.pop(0)

    def _regive_store(self) -> str:
        return regive_bucket(lease_token(self.region))

    async def _shared_regives(self, now_s: float) -> None:
        """Every running award's re-given split, as whoever re-gave it wrote it: taken as
        this coordinator's split. Unreadable: that award's parts are not sent this round."""
        self._regive_unknown.clear()
        for a in self.awards_in_force.values():
            if not a.covers(now_s):
                continue
            try:
                shared = await get_regive(self.nc.jetstream(), self._regive_store(), a.award_id)
            except ClusterError as e:
                self._regive_unknown.add(a.award_id)
                self._log.warning("regive-read", "coordinator %s: %s", self.coordinator_id, e)
                continue
            self._log.clear("regive-read")
            if shared.sites_kwh and shared.sites_kwh != self.award_splits.get(a.award_id):
                log.warning(
                    "coordinator %s: award %s re-given by another coordinator: %s",
                    self.coordinator_id,
                    a.award_id,
                    shared.sites_kwh,
                )
                self.award_splits[a.award_id] = shared.sites_kwh
            self.award_donors[a.award_id] = merge_donors(
                self.award_donors.get(a.award_id, {}), shared.donors
            )

    async def _regive(self, r: Round, now_s: float, revision: int) -> None:
        """Each running award: what its silent sites provably cannot use goes to the fresh
        ones (region_regive), shared before it is sent, then audited."""
        for a in list(self.awards_in_force.values()):
            split = self.award_splits.get(a.award_id)
            if not a.covers(now_s) or split is None or a.award_id in self._regive_unknown:
                continue
            silent = {
                s: SilentSite(self._heard[s].offer.failsafe_w, tuple(self._history.get(s, ())))
                for s in split
                if s in r.silent_max_w and s in self._heard
            }
            if not silent:
                continue
            fresh_w = {s: w for s, w in r.targets.items() if s in split}
            gave = self.donors_at(now_s)  # held at their fail-safe limit: room by that
            offers = {s: self._heard[s].offer for s in fresh_w}  # fresh: heard
            max_w = {
                s: min(o.max_import_w, o.failsafe_w, gave[s]) if s in gave else o.max_import_w
                for s, o in offers.items()
            }
            got = regive(
                a.start_s,
                a.end_s,
                now_s,
                split,
                silent,
                fresh_w,
                max_w,
                slack_s=self.regive_slack_s,
                history_from_s=self._history_from_s,
                longest_lease_s=self.lease_s,
            )
            if not got.gifts:
                continue
            donors = merge_donors(
                self.award_donors.get(a.award_id, {}),
                {s: b.failsafe_w for s, b in got.bounds.items()},
            )
            shared = SharedRegive(got.parts_kwh, donors)
            try:
                await put_regive(self.nc.jetstream(), self._regive_store(), a.award_id, shared)
            except ClusterError as e:  # not shared, not given: a standby could not know
                self._log.warning("regive-write", "coordinator %s: %s", self.coordinator_id, e)
                continue
            self._log.clear("regive-write")
            self.award_splits[a.award_id] = got.parts_kwh
            self.award_donors[a.award_id] = donors
            log.warning(
                "regional award %s: re-given %s",
                a.award_id,
                ", ".join(f"{g.kwh:.3f} kWh {g.from_site} -> {g.to_site}" for g in got.gifts),
            )
            self._audit(
                ACTION_AWARD_REGIVE,
                "",
                {
                    "award_id": a.award_id,
                    "energy_kwh": a.energy_kwh,
                    "start_s": a.start_s,
                    "end_s": a.end_s,
                    "at_s": now_s,
                    "history_from_s": self._history_from_s,
                    "slack_s": self.regive_slack_s,
                    "lease_revision": revision,
                    **got.audit_detail(),
                },
            )

    @property
    def store_epoch(self) -> str:
        """The lease store's epoch as last read ("": unknown)."""
        return self.epoch.epoch

    async def _send(self, a: Allocation) -> bool:
        try:
            if not self.nc.is_connected:
                raise ClusterError("nats", self.region, "not connected")
            async with asyncio.timeout(_IO_TIMEOUT_S):
                await self.nc.publish(allocation_subject(a.region, a.site), encode_allocation(a))
            self.allocations_sent += 1
            self._log.clear(f"send:{a.site}")
            return True
        except Exception as e:  # the site holds its lease, then falls to its fail-safe limit
            self._log.warning(
                f"send:{a.site}", "coordinator %s cannot send: %r", self.coordinator_id, e
            )
            return False

    async def run(self, interval_s: float) -> None:
        """A round every interval, or at once when the limit changes."""
        while True:
            self.wake.clear()
            await self.round()
            raise_if_cancelled()  # a cancel a nats-py call lost still stops the loop
            try:
                async with self.clock.timeout(interval_s):
                    await self.wake.wait()
            except TimeoutError:
                pass
