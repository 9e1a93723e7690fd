"""A site's side of the region (issue 16 item 3), on one NATS connection.

It publishes the site's offer every `offer_interval_s` (its curve, what it imports beyond
its rigs, its own limit, its fail-safe limit, the allocation it obeys) and takes the
coordinator's allocations into the site's RegionalLease (control.region_lease), which the
control cycle reads as one more limit. A malformed, stale, fenced or replayed allocation is
refused with a ClusterError naming sender and subject, and counted. A new allocation wakes
the cycle at once (a cut is obeyed now, never at the next interval). Each change of
allocation, and the lease's expiry, goes to the audit callback (the site's audit log).
The site's parts of regional energy awards ride in allocations: only an accepted (fenced,
not replayed, not stale) allocation's awards go to `on_awards` (the daemon stores them).
An allocation of another store epoch (the coordinator's JetStream store was wiped) is taken
once the site's lease has expired (control.region_lease); the change of store is logged
once and audited ("region.store_changed", old and new epoch and revision).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from minerd.clock import Clock
from minerd.cluster.curve import ShardCurve
from minerd.cluster.region import (
    Allocation,
    SiteOffer,
    allocation_subject,
    decode_allocation,
    encode_offer,
    offer_subject,
    refused,
)
from minerd.control.region_lease import RegionalGrant, RegionalLease
from minerd.errors import ClusterError
from minerd.repeated_log import RepeatedLog

log = logging.getLogger("minerd.cluster.region")

_IO_TIMEOUT_S = 2.0
_AUDIT_CHANGE = 0.005  # an allocation is audited when it moves by more than this fraction
ACTION_STORE_CHANGED = "region.store_changed"


@dataclass(frozen=True)
class SiteState:
    """What the site knows of itself for its offer (the daemon reads it off its cycle)."""

    import_w: float
    overhead_w: float
    max_import_w: float
    failsafe_w: float
    curve: ShardCurve


AuditFn = Callable[[str, dict[str, object]], None]  # (action, detail)


class RegionSiteNode:
    def __init__(
        self,
        nc: Client,
        region: str,
        site: str,
        lease: RegionalLease,
        clock: Clock,
        *,
        on_allocation: Callable[[], None] | None = None,
        on_accepted: Callable[[], None] | None = None,
        audit: AuditFn | None = None,
        on_awards: Callable[[Allocation], None] | None = None,
    ) -> None:
        self.nc = nc
        self.region = region
        self.site = site
        self.lease = lease
        self.clock = clock
        self.on_allocation = on_allocation
        self.on_accepted = on_accepted  # each grant taken (the daemon saves the lease)
        self.audit = audit
        self.on_awards = on_awards  # an accepted allocation that carries awards
        self.bad_messages = 0  # malformed, or for another region or site
        self.offers_sent = 0
        self._seq = 0
        self._audited_kw: float | None = None
        self._was_valid = lease.valid(clock.now_s())  # restored at start: its end is audited
        self._sub: Subscription | None = None
        self._log = RepeatedLog(log)

    async def start(self) -> None:
        subject = allocation_subject(self.region, self.site)
        self._sub = await self.nc.subscribe(subject, cb=self._on)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on(self, msg: Msg) -> None:
        self.take(msg.data, msg.subject)

    def take(self, data: bytes, subject: str) -> bool:
        """One allocation off the wire: True when accepted into the lease."""
        now_s = self.clock.now_s()
        try:
            a = decode_allocation(data, subject)
        except ClusterError as e:
            self.bad_messages += 1
            self._log.warning("bad-allocation", "site %s: %s", self.site, e)
            return False
        if a.region != self.region or a.site != self.site:
            self.bad_messages += 1
            err = refused(a, subject, f"for region {a.region} site {a.site}, not this site")
            self._log.warning("bad-allocation", "site %s: %s", self.site, err)
            return False
        before = self.lease.allocation_kw(now_s)
        grant = RegionalGrant(
            a.coordinator_id,
            a.lease_revision,
            a.seq,
            a.issued_at_s,
            a.lease_s,
            a.allocation_w / 1000.0,
            a.store_epoch,
        )
        store_changed = self.lease.other_epoch(grant)
        old_epoch, old_revision = self.lease.newest_epoch, self.lease.newest_revision
        why = self.lease.accept(grant, now_s)
        if why:
            self._log.warning("refused", "site %s: %s", self.site, refused(a, subject, why))
            return False
        self._log.clear("refused")
        self._log.clear("bad-allocation")
        if store_changed:
            self._store_changed(a, old_epoch, old_revision)
        if self.on_accepted is not None:
            self.on_accepted()
        if a.awards and self.on_awards is not None:
            self.on_awards(a)
        kw = grant.allocation_kw
        if not self._was_valid or before is None:
            log.warning(
                "site %s: regional allocation %.1f kW from coordinator %s (revision %d)",
                self.site,
                kw,
                a.coordinator_id,
                a.lease_revision,
            )
        self._was_valid = True
        old = self._audited_kw
        if old is None or abs(kw - old) > _AUDIT_CHANGE * max(old, 0.001):
            self._audited_kw = kw
            self._audit(
                "region.allocation",
                {
                    "actor": f"coordinator {a.coordinator_id}",
                    "allocation_kw": kw,
                    "from_kw": old,
                    "regional_limit_kw": a.regional_limit_w / 1000.0,
                    "lease_revision": a.lease_revision,
                    "seq": a.seq,
                    "expires_at_s": self.lease.expires_at_s,
                },
            )
        if (before is None or kw < before) and self.on_allocation is not None:
            self.on_allocation()  # a cut is obeyed now; a raise waits for the next cycle
        return True

    def _store_changed(self, a: Allocation, old_epoch: str, old_revision: int) -> None:
        log.warning(
            "site %s: the coordinator's store changed (epoch %s revision %d -> epoch %s "
            "revision %d: wiped?); its allocations are taken from now on, revisions anew",
            self.site,
            old_epoch,
            old_revision,
            a.store_epoch,
            a.lease_revision,
        )
        self._audit(
            ACTION_STORE_CHANGED,
            {
                "actor": f"coordinator {a.coordinator_id}",
                "from_epoch": old_epoch,
                "from_revision": old_revision,
                "to_epoch": a.store_epoch,
                "to_revision": a.lease_revision,
                "seq": a.seq,
            },
        )

    def _audit(self, action: str, detail: dict[str, object]) -> None:
        if self.audit is None:
            return
        try:
            self.audit(action, detail)
        except Exception as e:  # a failing disk degrades the audit, never control
            self._log.warning("audit", "site %s: region audit failed: %r", self.site, e)

    def watch(self) -> None:
        """Notice the lease's end (audited once per lease lost)."""
        now_s = self.clock.now_s()
        if self._was_valid and not self.lease.valid(now_s):
            self._was_valid = False
            self._audited_kw = None
            reason = self.lease.failsafe_reason(now_s)
            log.warning("site %s: %s: to the fail-safe limit", self.site, reason)
            self._audit("region.lease_expired", {"actor": "system", "reason": reason})
            if self.on_allocation is not None:
                self.on_allocation()

    def offer(self, st: SiteState) -> SiteOffer:
        now_s = self.clock.now_s()
        alloc = self.lease.allocation_kw(now_s)
        last = self.lease.last
        held_w = (
            min(st.failsafe_w, st.max_import_w)
            if alloc is None
            else min(alloc * 1000.0, st.max_import_w)
        )
        self._seq += 1
        return SiteOffer(
            self.region,
            self.site,
            self._seq,
            now_s,
            st.import_w,
            st.overhead_w,
            st.max_import_w,
            st.failsafe_w,
            held_w,
            last.seq if alloc is not None and last is not None else 0,
            st.curve,
        )

    async def publish(self, st: SiteState) -> bool:
        o = self.offer(st)
        try:
            if not self.nc.is_connected:
                raise ClusterError("nats", self.region, "not connected")
            async with asyncio.timeout(_IO_TIMEOUT_S):
                await self.nc.publish(offer_subject(self.region, self.site), encode_offer(o))
            self.offers_sent += 1
            self._log.clear("send")
            return True
        except Exception as e:  # the lease runs out; the site falls to its fail-safe limit
            self._log.warning("send", "site %s cannot offer to region: %r", self.site, e)
            return False
