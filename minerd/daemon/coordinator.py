"""`minerd coordinator`: the regional coordinator process (issue 16 item 3).

Builds the Coordinator (minerd.cluster.coordinator) from region.toml, its audit log (the
storage layer's AuditLog in its own SQLite file), and its leadership lease (the same
JetStream KV lease as a site controller's, bucket `minerd-region-<name>-lease`), and runs
them until cancelled. A runtime limit change is kept in the audit log and restored on a
restart, unless region.toml's limit_kw was edited since (the file then wins). Regional
energy awards and their splits are taken back from the audit log too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import nats
from nats.aio.client import Client

from minerd.cancelling import raise_if_cancelled
from minerd.clock import Clock
from minerd.cluster.coordinator import (
    ACTION_AWARD_REGIVE,
    ACTION_AWARD_SET,
    ACTION_AWARD_SPLIT,
    Coordinator,
)
from minerd.cluster.lease import ControllerLease, open_lease
from minerd.cluster.region import lease_token
from minerd.settings.region import CoordinatorSettings
from minerd.storage.audit import AuditLog
from minerd.storage.db import Database

log = logging.getLogger("minerd.coordinator")

_CONNECT_TIMEOUT_S = 2.0
_RETRY_S = 2.0
ACTION_LIMIT = "region.limit.set"
_AWARD_ENTRIES = 100_000  # audit entries read back for awards (old ones are dropped)


def restored_limit_kw(audit: AuditLog, config_kw: float) -> float:
    """The last runtime limit, if set since region.toml's limit_kw was what it is now."""
    for e in audit.query(action=ACTION_LIMIT, limit=1):
        try:
            d = json.loads(e.detail)
        except ValueError:
            return config_kw
        if d.get("config_kw") == config_kw and isinstance(d.get("to_kw"), int | float):
            return float(d["to_kw"])
    return config_kw


class CoordinatorService:
    def __init__(self, settings: CoordinatorSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        c = settings.coordinator
        self.db = Database(c.audit_db)
        self.audit_log = AuditLog(self.db)
        config_kw = settings.region.limit_kw
        limit_kw = restored_limit_kw(self.audit_log, config_kw)
        if limit_kw != config_kw:
            log.warning(
                "regional limit %g kW restored (set at runtime; file: %g)", limit_kw, config_kw
            )
        self.node = Coordinator(
            Client(),
            settings.region.name,
            c.id,
            limit_kw,
            clock,
            lease_s=c.lease_s,
            site_silent_s=c.site_silent_s,
            regive_slack_s=c.regive_slack_s,
            control_token=settings.control_token,
            audit=self._audit,
        )
        found = [
            e
            for action in (ACTION_AWARD_SET, ACTION_AWARD_SPLIT, ACTION_AWARD_REGIVE)
            for e in self.audit_log.query(limit=_AWARD_ENTRIES, action=action)
        ]
        found.sort(key=lambda e: (e.at_s, e.entry_id))
        self.node.restore_awards((e.action, e.detail) for e in found)

    def _audit(self, action: str, subject: str, detail: dict[str, object]) -> None:
        if action == ACTION_LIMIT:
            detail = {**detail, "config_kw": self.settings.region.limit_kw}
        actor = str(detail.get("actor", f"coordinator {self.settings.coordinator.id}"))
        self.audit_log.record(self.clock.now_s(), actor, action, subject, json.dumps(detail))
        log.info("audit %s %s %s", action, subject, json.dumps(detail, separators=(",", ":")))

    async def _connect(self) -> Client:
        r = self.settings.region
        while True:
            try:
                return await nats.connect(
                    r.nats_url,
                    name=f"minerd-coordinator-{r.name}-{self.settings.coordinator.id}",
                    connect_timeout=_CONNECT_TIMEOUT_S,
                    reconnect_time_wait=0.5,
                    max_reconnect_attempts=-1,
                )
            except Exception as e:  # retried: sites hold their leases meanwhile
                log.warning("coordinator: NATS %s not reachable (%r); retrying", r.nats_url, e)
            raise_if_cancelled()  # a cancel nats.connect lost still stops the retries
            await self.clock.sleep(_RETRY_S)

    async def run(self) -> None:
        """Until cancelled: lead (or stand by) and send allocations every interval."""
        c = self.settings.coordinator
        nc = await self._connect()
        node = self.node
        node.nc = nc
        lease: ControllerLease | None = None
        try:
            await node.start()
            lease = await open_lease(
                nc.jetstream(),
                lease_token(self.settings.region.name),
                c.id,
                c.leader_ttl_s,
                self.clock,
            )
            node.lease = lease
            log.info(
                "coordinator %s of region %s on %s: limit %g kW, lease %g s",
                c.id,
                node.region,
                self.settings.region.nats_url,
                node.limit_kw,
                c.lease_s,
            )
            raise_if_cancelled()  # lost while connecting: its tasks would never hear it
            async with asyncio.TaskGroup() as tg:
                tg.create_task(lease.keep(), name="coordinator-lease")
                tg.create_task(node.run(c.interval_s), name="coordinator-rounds")
        finally:
            node.lease = None
            if lease is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(lease.release())
            with contextlib.suppress(Exception):
                await node.stop()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                    await nc.close()

    def close(self) -> None:
        self.db.close()
