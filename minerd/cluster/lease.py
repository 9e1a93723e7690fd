"""Controller leadership as a JetStream key-value lease.

The bucket keeps one revision per key and drops it `ttl_s` after its last write (the
stream's max age). Whoever creates the key holds the lease and renews it by a compare-and-set
update on its own last revision; a standby keeps trying to create it, which succeeds only
once the holder has stopped renewing for `ttl_s`. The revision (the stream sequence) rises
with every write, so a budget stamped with it is fenced: a shard ignores one older than the
newest it has seen.

A holder counts itself leader only while its last successful renewal, timed from when the
request was sent, is younger than `ttl_s - margin_s`: a controller cut off from NATS stops
sending budgets before a standby can take over, so two never command at once.

A lease given a way to reopen its store (open_lease) re-creates a bucket deleted under it:
a write answered by no stream (or no bucket) has the next tick open the store again and
take the lease there, from a new revision 1, as a new term.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable

from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NoStreamResponseError
from nats.js.kv import KeyValue

from minerd.cancelling import raise_if_cancelled
from minerd.clock import Clock
from minerd.cluster.subjects import LEASE_KEY, lease_bucket
from minerd.errors import ClusterError
from minerd.repeated_log import RepeatedLog

log = logging.getLogger("minerd.cluster.lease")

_IO_TIMEOUT_S = 2.0


async def lease_store(js: JetStreamContext, site: str, ttl_s: float) -> KeyValue:
    """The site's lease bucket, created if missing (one revision per key, max age ttl_s)."""
    bucket = lease_bucket(site)
    try:
        async with asyncio.timeout(_IO_TIMEOUT_S):
            return await js.create_key_value(bucket=bucket, ttl=ttl_s, history=1)
    except TimeoutError as e:
        raise ClusterError("nats", bucket, "no answer creating the lease bucket") from e


async def open_lease(
    js: JetStreamContext, site: str, holder_id: str, ttl_s: float, clock: Clock
) -> ControllerLease:
    """A lease on the site's bucket (created if missing) that re-creates the bucket if it is
    deleted while the lease runs."""

    async def reopen() -> KeyValue:
        return await lease_store(js, site, ttl_s)

    return ControllerLease(await reopen(), holder_id, ttl_s, clock, reopen=reopen)


class ControllerLease:
    def __init__(
        self,
        kv: KeyValue,
        holder_id: str,
        ttl_s: float,
        clock: Clock,
        margin_s: float | None = None,
        reopen: Callable[[], Awaitable[KeyValue]] | None = None,
    ) -> None:
        self.kv = kv
        self._reopen = reopen
        self._gone = False  # the bucket answered as deleted: reopened before the next write
        self.holder_id = holder_id
        self.ttl_s = ttl_s
        # The holder stops counting itself leader this long before the key can expire.
        self.margin_s = ttl_s / 4 if margin_s is None else margin_s
        self.clock = clock
        self.revision = 0  # our latest write (0: not holding)
        # Tells our own writes from another process's with the same holder id (a restart).
        self._nonce = secrets.token_hex(8)
        self.terms = 0  # times this holder took the lease
        self._renewed_at_s = -float("inf")
        self._log = RepeatedLog(log)

    def held(self) -> bool:
        """Leader right now: holding, and the last renewal is young enough to be sure."""
        age_s = self.clock.monotonic_s() - self._renewed_at_s
        return self.revision > 0 and age_s < self.ttl_s - self.margin_s

    async def tick(self) -> bool:
        """Renew the lease if held, else try to take it. Returns held() after."""
        if self._gone and not await self._reopen_store():
            return self.held()
        sent_at_s = self.clock.monotonic_s()
        value = json.dumps(
            {"holder": self.holder_id, "nonce": self._nonce, "at_s": self.clock.now_s()}
        ).encode()
        try:
            async with asyncio.timeout(_IO_TIMEOUT_S):
                if self.revision > 0:
                    rev = await self.kv.update(LEASE_KEY, value, last=self.revision)
                else:
                    rev = await self.kv.create(LEASE_KEY, value)
        except KeyWrongLastSequenceError:
            if await self._adopt():
                return self.held()
            if self.revision > 0:
                log.warning(
                    "controller %s lost the lease (revision %d)", self.holder_id, self.revision
                )
            self.revision = 0
            return False
        except (NoStreamResponseError, BucketNotFoundError) as e:
            self._gone = self._reopen is not None
            self._log.warning(
                "lease",
                "controller %s: its lease bucket is gone (%r)%s",
                self.holder_id,
                e,
                "; re-creating it" if self._gone else "",
            )
            return self.held()
        except (TimeoutError, OSError, ConnectionError) as e:
            self._log.warning(
                "lease", "controller %s cannot reach the lease: %s", self.holder_id, e
            )
            return self.held()
        except Exception as e:  # nats errors share no base but Exception
            self._log.warning("lease", "controller %s lease error: %r", self.holder_id, e)
            return self.held()
        self._log.clear("lease")
        if self.revision == 0:
            self.terms += 1
            log.warning("controller %s holds the lease (revision %d)", self.holder_id, rev)
        self.revision = int(rev)
        self._renewed_at_s = sent_at_s
        return self.held()

    async def _reopen_store(self) -> bool:
        """Open (create) the deleted bucket again: True when open. A revision held in the old
        bucket counts no more: the lease is taken afresh in the new one."""
        assert self._reopen is not None
        try:
            self.kv = await self._reopen()
        except Exception as e:  # ClusterError or a nats error: tried again next tick
            self._log.warning(
                "reopen", "controller %s cannot re-create its lease bucket: %r", self.holder_id, e
            )
            return False
        self._log.clear("reopen")
        self._gone = False
        if self.revision > 0:
            log.warning(
                "controller %s lost the lease with its bucket (revision %d)",
                self.holder_id,
                self.revision,
            )
            self.revision = 0
        return True

    async def _adopt(self) -> bool:
        """After a refused write: is the key's last write ours (its reply lost in a timeout)?
        Then take up its revision; the renewal time stays that of the last confirmed write."""
        try:
            async with asyncio.timeout(_IO_TIMEOUT_S):
                entry = await self.kv.get(LEASE_KEY)
            body = json.loads(entry.value or b"")
        except Exception:  # gone, unreadable or unreachable: not ours to adopt
            return False
        if not isinstance(body, dict) or body.get("nonce") != self._nonce:
            return False
        if self.revision == 0:
            self.terms += 1
            log.warning(
                "controller %s holds the lease (revision %d)", self.holder_id, entry.revision
            )
        self.revision = int(entry.revision or 0)
        return self.revision > 0

    async def keep(self, interval_s: float | None = None) -> None:
        """Renew or stand by forever, every ttl/4 by default."""
        every_s = self.ttl_s / 4 if interval_s is None else interval_s
        while True:
            await self.tick()
            raise_if_cancelled()  # a cancel a nats-py request lost still stops the loop
            await self.clock.sleep(every_s)

    async def release(self) -> None:
        """Step down on a clean stop so a standby need not wait for the TTL."""
        rev, self.revision = self.revision, 0
        if rev <= 0:
            return
        try:
            async with asyncio.timeout(_IO_TIMEOUT_S):
                await self.kv.delete(LEASE_KEY, last=rev)
        except Exception as e:  # the TTL releases it anyway
            log.info("controller %s: lease not released (%r); it expires", self.holder_id, e)
