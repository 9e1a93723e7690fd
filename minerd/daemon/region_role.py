"""[region] in `minerd run`: the site under a regional coordinator (issue 16 item 3).

The coordinator's allocation becomes one more limit of the site's control cycle
(ControlCycle.region, a control.region_lease.RegionalLease): the lower of all limits wins,
origin "region"; with no valid lease the cycle is in fail-safe ("no regional allocation
yet", "regional allocation lease expired") and falls to the site's own fail-safe limit.
The site's offer is read off its cycle every offer_interval_s: the curve of its rigs (a
single process: the planner's rigs; a site controller: its live shards' curves merged), its
import beyond the rigs, its own limit (quota, operator cap, contract) and fail-safe limit.
Allocations and the lease's end go to the site's audit log.

Across a restart: the lease is saved in the site's state (key "region.allocation") after
every grant it takes, off the loop, and taken back at build time, before the first cycle
(restore_lease): in force until its saved end, or over and so fail-safe with the expiry
reason. An offer, which confirms the allocation held to the coordinator, waits (bounded)
until that allocation is saved, so a restart never brings back one the region has moved on
from. A saved value that cannot be read is logged and ignored: no allocation yet.

Regional energy awards: the site's part of each rides in its allocations while the
interval runs; each new one is stored in the site's own award store through the command
layer (PutAwards, source "region", issued by "region <r> coordinator <id>", the regional
award named in its reference), off the loop, so the EnergyTracker paces it like an award
from the quota API. A lost lease withdraws nothing: awards already stored are the site's
energy budgets for their intervals; none is ever sent ahead of its interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client

from minerd.cancelling import raise_if_cancelled
from minerd.clock import Clock
from minerd.cluster.curve import ShardCurve, build_curve
from minerd.cluster.nodes import ControllerNode
from minerd.cluster.region import Allocation
from minerd.cluster.region_award import SiteAward
from minerd.cluster.region_site import RegionSiteNode, SiteState
from minerd.control.counting import counted_power_w
from minerd.control.planner import PlanRig
from minerd.control.quota import effective_limit
from minerd.control.region_lease import STATE_KEY, RegionalLease, SavedLease
from minerd.daemon.components import Components
from minerd.errors import QuotaError, StorageError
from minerd.model import QuotaSource
from minerd.repeated_log import RepeatedLog
from minerd.runtime.award_input import AwardBatch, AwardLine
from minerd.runtime.commands import PutAwards, execute
from minerd.runtime.cycle import ControlCycle, CycleResult
from minerd.runtime.site import Site
from minerd.settings import Settings
from minerd.sinks.region_metrics import RegionMetricsCollector, RegionStatus
from minerd.storage.state import JsonValue, StateStore

log = logging.getLogger("minerd.daemon.region")

TaskFactory = Callable[[], Coroutine[Any, Any, None]]
_CONNECT_TIMEOUT_S = 2.0
_AUDIT_QUEUE = 1000
STATE_LEASE = STATE_KEY  # {"region", "site", **SavedLease.to_state()}
_SAVE_WAIT_S = 5.0  # an offer waits at most this long for the allocation to be saved
_AWARDS_REMEMBERED = 1000  # stored award ids kept to skip re-sends (ended ones pruned)


def merged_curve(curves: list[ShardCurve]) -> ShardCurve:
    """A site controller's curve: its shards' classes side by side (split_budget merges)."""
    return ShardCurve(
        sum(c.fixed_w for c in curves),
        sum(c.release_w for c in curves),
        tuple(k for c in curves for k in c.classes),
    )


@dataclass
class RegionRole:
    settings: Settings
    site_token: str
    site: Site
    clock: Clock
    lease: RegionalLease
    node: RegionSiteNode
    controller: ControllerNode | None = None  # a split site: curves from its shards
    _tasks: list[tuple[str, TaskFactory]] = field(default_factory=list)
    _rigs: tuple[PlanRig, ...] = ()  # the planner's rigs, copied at a cycle's end
    # Audit entries wait here for the writer task: SQLite is written off the event loop.
    _audits: asyncio.Queue[tuple[float, str, dict[str, object]]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=_AUDIT_QUEUE)
    )
    _rigs_at_s: float = float("-inf")
    # Grants taken and grants saved (or given up on): an offer waits for the second.
    _taken: int = 0
    _saved: int = 0
    _save_due: asyncio.Event = field(default_factory=asyncio.Event)
    _save_done: asyncio.Event = field(default_factory=asyncio.Event)
    # Regional awards heard and not yet stored (id -> award, coordinator), and those stored
    # (id -> kWh, end): an allocation re-sends them every round; only new ones are written.
    _awards_pending: dict[str, tuple[SiteAward, str]] = field(default_factory=dict)
    _awards_stored: dict[str, tuple[float, float]] = field(default_factory=dict)
    _awards_due: asyncio.Event = field(default_factory=asyncio.Event)
    _log: RepeatedLog = field(default_factory=lambda: RepeatedLog(log))

    @property
    def cycle(self) -> ControlCycle:
        return self.site.cycle

    def on_cycle(self, result: CycleResult) -> None:
        """A cycle listener (on the loop, after the cycle's worker phases): copy the
        planner's view of each rig, which the cycle keeps, once per offer interval."""
        now_s = result.snapshot.taken_at_s
        if not self.cycle._warmup.done:
            return  # rigs not read yet: an offer now would hide them as fixed load
        if now_s - self._rigs_at_s >= self.settings.region.offer_interval_s / 2:
            self._rigs = tuple(entry[3] for entry in self.cycle._plan_cache.values())
            self._rigs_at_s = now_s

    async def state(self) -> SiteState | None:
        """The site as its offer says it; None before the first measured cycle."""
        cycle = self.cycle
        last = cycle.last
        if last is None or not last.snapshot.grid_fresh:
            return None
        config = cycle.config
        now_s = self.clock.now_s()
        own = effective_limit(
            cycle.quotas,
            now_s,
            contracted_limit_kw=config.contracted_limit_kw,
            operator_cap_kw=cycle.operator_cap_kw,
        )
        if self.controller is not None:
            live = self.controller.live_aggregates()
            if not live:
                return None  # no shard heard yet
            curve = merged_curve([a.curve for a in live])
            rigs_w = self.controller.site_rigs().counted_w
        else:
            if self._rigs_at_s == float("-inf"):
                return None  # no cycle has planned yet
            rigs = self._rigs
            # What the rigs can do over a lease, not this cycle: min-on/min-off windows are
            # the site planner's to keep, and would hide slept rigs from the region.
            constraints = dataclasses.replace(config.constraints, min_on_s=0.0, min_off_s=0.0)
            curve = await asyncio.to_thread(build_curve, rigs, constraints)
            rigs_w = sum(counted_power_w(r) for r in rigs)
        import_w = last.snapshot.grid_import_w
        overhead_w = config.loop.margin_kw * 1000.0 + max(0.0, import_w - rigs_w)
        return SiteState(
            import_w=import_w,
            overhead_w=overhead_w,
            max_import_w=own.limit_kw * 1000.0,
            failsafe_w=config.failsafe_limit_kw * 1000.0,
            curve=curve,
        )

    def _audit(self, action: str, detail: dict[str, object]) -> None:
        """On the loop: queue the entry for the writer (never waits on the disk)."""
        try:
            self._audits.put_nowait((self.clock.now_s(), action, detail))
        except asyncio.QueueFull:
            log.warning("region audit queue full: %s not recorded", action)

    async def _write_audits(self) -> None:
        audit = self.site.stores.audit
        while True:
            at_s, action, detail = await self._audits.get()
            actor = str(detail.get("actor", "system"))
            try:
                await asyncio.to_thread(
                    audit.record, at_s, actor, action, self.node.region, json.dumps(detail)
                )
            except Exception as e:  # a failing disk degrades the audit, never control
                log.warning("region audit %s not recorded: %r", action, e)

    def _lease_taken(self) -> None:
        """A grant taken (on the loop): the writer saves the lease as it now stands."""
        self._taken += 1
        self._save_due.set()

    async def _save_lease(self) -> None:
        """Write the lease after the grants it takes, off the loop; the newest one wins."""
        state = self.site.stores.state
        saved_kw: float | None = None
        while True:
            await self._save_due.wait()
            self._save_due.clear()
            upto = self._taken
            saved = self.lease.saved()
            if saved is not None:
                kw = saved.grant.allocation_kw
                value: dict[str, JsonValue] = {
                    "region": self.node.region,
                    "site": self.site_token,
                    **saved.to_state(),
                }
                # A new allocation is worth an fsync. A renewal of the same one survives a
                # crash of the process (WAL); after a power cut an older renewal only ends
                # sooner, the safe side.
                durable = kw != saved_kw
                try:
                    await asyncio.to_thread(state.set_many, {STATE_LEASE: value}, durable=durable)
                    saved_kw = kw
                    self._log.clear("save")
                except Exception as e:  # a failing disk degrades the restart, never control
                    saved_kw = None
                    self._log.warning(
                        "save", "site %s: regional allocation not saved: %r", self.site_token, e
                    )
            self._saved = upto
            self._save_done.set()

    async def _until_saved(self) -> None:
        """Before an offer confirms the allocation held: wait (bounded) until it is saved."""
        if self._saved >= self._taken:
            return
        try:
            async with self.clock.timeout(_SAVE_WAIT_S):
                while self._saved < self._taken:
                    self._save_done.clear()
                    await self._save_done.wait()
        except TimeoutError:
            log.warning(
                "site %s: regional allocation not saved within %.0f s: offering all the same",
                self.site_token,
                _SAVE_WAIT_S,
            )

    def _awards_heard(self, a: Allocation) -> None:
        """An accepted allocation's awards (on the loop): the new ones to the writer."""
        for w in a.awards:
            stored = self._awards_stored.get(w.award_id)
            if stored is None or stored[0] != w.energy_kwh:
                self._awards_pending[w.award_id] = (w, a.coordinator_id)
        if self._awards_pending:
            self._awards_due.set()

    async def _store_awards(self) -> None:
        while True:
            await self._awards_due.wait()
            self._awards_due.clear()
            pending, self._awards_pending = self._awards_pending, {}
            for w, coordinator in pending.values():
                await self.store_award(w, coordinator)

    async def store_award(self, w: SiteAward, coordinator: str) -> bool:
        """One regional award part into the site's award store: True when stored (or a
        repeat of one stored). A store that cannot write leaves it for the next allocation,
        which carries it again."""
        actor = f"region {self.node.region} coordinator {coordinator}"
        line = AwardLine(
            w.start_s,
            w.end_s,
            w.energy_kwh,
            w.award_id,
            reference=(
                f"regional award {w.regional_award_id} "
                f"({w.regional_energy_kwh:g} kWh, issued by {w.issued_by})"
            ),
        )
        try:
            out = await execute(
                self.site, PutAwards(AwardBatch((line,)), actor, QuotaSource.REGION)
            )
        except StorageError as e:  # not stored: tried again when the award comes again
            self._log.warning(
                "award", "site %s: regional award %s not stored: %s", self.site_token, w.award_id, e
            )
            return False
        except QuotaError as e:  # its id stored with other energy: never ours to overwrite
            log.warning("site %s: regional award %s refused: %s", self.site_token, w.award_id, e)
            self._remember(w)
            return False
        except Exception as e:  # the award is lost for now, never the region role
            self._log.warning(
                "award", "site %s: regional award %s failed: %r", self.site_token, w.award_id, e
            )
            return False
        self._log.clear("award")
        self._remember(w)
        if any(out.created):
            log.info(
                "site %s: regional award %s: %.3f kWh in [%.0f, %.0f) (%s)",
                self.site_token,
                w.award_id,
                w.energy_kwh,
                w.start_s,
                w.end_s,
                actor,
            )
        return True

    def _remember(self, w: SiteAward) -> None:
        stored = self._awards_stored
        stored[w.award_id] = (w.energy_kwh, w.end_s)
        if len(stored) > _AWARDS_REMEMBERED:
            now_s = self.clock.now_s()
            for award_id, (_, end_s) in list(stored.items()):
                if end_s < now_s:
                    del stored[award_id]

    async def _offers(self) -> None:
        every_s = self.settings.region.offer_interval_s
        while True:
            self.node.watch()
            st = await self.state()
            if st is not None:
                await self._until_saved()
                await self.node.publish(st)
            raise_if_cancelled()  # a cancel its publish lost still stops the loop
            await self.clock.sleep(every_s)

    async def _serve(self) -> None:
        """Connect, take allocations, offer. Raises on a failed first connect (the
        supervisor retries); nats-py reconnects later. Control never waits on it."""
        r = self.settings.region
        nc: Client = await nats.connect(
            r.nats_url,
            name=f"minerd-region-{r.name}-{self.site_token}",
            connect_timeout=_CONNECT_TIMEOUT_S,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
        )
        try:
            self.node.nc = nc
            await self.node.start()
            log.info("site %s in region %s on %s", self.site_token, r.name, r.nats_url)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._write_audits(), name="region-audit")
                tg.create_task(self._save_lease(), name="region-save")
                tg.create_task(self._store_awards(), name="region-awards")
                tg.create_task(self._offers(), name="region-offers")
        finally:
            with contextlib.suppress(Exception):
                await self.node.stop()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                    await nc.close()

    def status(self) -> RegionStatus:
        now_s = self.clock.now_s()
        lease = self.lease
        valid = lease.valid(now_s)
        return RegionStatus(
            lease_valid=valid,
            allocation_kw=lease.allocation_kw(now_s),
            lease_remaining_s=max(0.0, lease.expires_at_s - now_s) if valid else 0.0,
            accepted=lease.accepted,
            refused=lease.refused,
            bad_messages=self.node.bad_messages,
            offers_sent=self.node.offers_sent,
        )

    def wire(self, components: Components) -> None:
        """Its task to the daemon's supervised parts, its counters to /metrics."""
        components._tasks.extend(self._tasks)
        if components.prometheus is not None:
            components.prometheus.add_collector(RegionMetricsCollector(self.status))


def build_region_role(
    settings: Settings, site: Site, clock: Clock, controller: ControllerNode | None
) -> RegionRole:
    """The cycle takes the allocation as a limit from now on (call after any role swap)."""
    r = settings.region
    assert r.name is not None
    token = r.site or settings.cluster.site or settings.site.name
    lease = RegionalLease()
    restored = restore_lease(lease, site.stores.state, r.name, token, clock.now_s())
    cycle = site.cycle
    cycle.region = lease
    node = RegionSiteNode(
        Client(), r.name, token, lease, clock, on_allocation=lambda: site.cycle.region_changed()
    )
    role = RegionRole(settings, token, site, clock, lease, node, controller)
    if controller is None:
        cycle.listeners.append(role.on_cycle)
    node.audit = role._audit
    node.on_accepted = role._lease_taken
    node.on_awards = role._awards_heard
    if restored is not None:
        role._audit("region.restored", restored)
    role._tasks.append(("region", role._serve))
    return role


def restore_lease(
    lease: RegionalLease, state: StateStore, region: str, site: str, now_s: float
) -> dict[str, object] | None:
    """The allocation saved before a restart, back into `lease` (at build, before the first
    cycle); what was restored, for the audit, or None. A saved value that cannot be read,
    or that is another region's or site's, is logged and ignored: the site starts as with
    none saved (no allocation yet: fail-safe until the coordinator sends one)."""
    try:
        value = state.get(STATE_LEASE)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(f"not a table: {value!r}")
        if value.get("region") != region or value.get("site") != site:
            log.warning(
                "saved regional allocation is for region %s site %s, not region %s site %s: "
                "ignored",
                value.get("region"),
                value.get("site"),
                region,
                site,
            )
            return None
        saved = SavedLease.from_state(value)
    except Exception as e:  # a corrupt value must never stop the site from starting
        log.warning("saved regional allocation unreadable, ignored: %r", e)
        return None
    lease.restore(saved, now_s)
    g = saved.grant
    valid = lease.valid(now_s)
    if valid:
        log.info(
            "site %s: regional allocation %.1f kW restored (coordinator %s, revision %d): "
            "in force for %.0f s more",
            site,
            g.allocation_kw,
            g.coordinator_id,
            g.lease_revision,
            lease.expires_at_s - now_s,
        )
    else:
        log.warning(
            "site %s: saved regional allocation %.1f kW ended %.0f s ago: %s: to the "
            "fail-safe limit until the coordinator allocates",
            site,
            g.allocation_kw,
            now_s - lease.expires_at_s,
            lease.failsafe_reason(now_s),
        )
    return {
        "actor": "system",
        "allocation_kw": g.allocation_kw,
        "lease_revision": g.lease_revision,
        "seq": g.seq,
        "coordinator": g.coordinator_id,
        "expires_at_s": lease.expires_at_s,
        "in_force": valid,
    }
