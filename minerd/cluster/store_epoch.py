"""The epoch of a leadership store: which JetStream store a lease revision counts in.

Revisions are stream sequences; a wiped store (a new nats-server data directory, or the
bucket deleted) starts them at 1 again, and a site that remembers a higher one would fence
the new coordinator forever. So the lease bucket holds one more key, a random id written once
by whoever opens the store first (KV create: of two coordinators racing, one writes it and the
other reads it back) and never changed: a new store has a new id. The key is written with a
per-message TTL of "never" so that the bucket's max age (the lease's TTL) does not drop it:
an epoch that expired and came back new would make sites treat a healthy store as wiped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from nats.aio.client import Client
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, BucketNotFoundError, KeyNotFoundError

from minerd.errors import ClusterError
from minerd.repeated_log import RepeatedLog

log = logging.getLogger("minerd.cluster.store_epoch")

EPOCH_KEY = "epoch"
_IO_TIMEOUT_S = 2.0
_KEY_EXISTS = (10071, 10164)  # JetStream: wrong last sequence (the key has a value)


async def store_epoch(js: JetStreamContext, bucket: str) -> str:
    """The epoch id of the KV bucket `bucket`, created if absent; ClusterError naming the
    bucket when it cannot be read (no bucket, no answer)."""
    try:
        async with asyncio.timeout(_IO_TIMEOUT_S):
            found = await _read(js, bucket)
            if found:
                return found
            new = secrets.token_hex(8)
            if await _create(js, bucket, new):
                log.warning("lease bucket %s: new store epoch %s", bucket, new)
                return new
            found = await _read(js, bucket)  # another coordinator's create won the race
    except TimeoutError as e:
        raise ClusterError("nats", bucket, "no answer reading the store epoch") from e
    except BucketNotFoundError as e:
        raise ClusterError("nats", bucket, "no such bucket: no store epoch") from e
    except APIError as e:
        raise ClusterError("nats", bucket, f"store epoch: {e}") from e
    if not found:
        raise ClusterError("nats", bucket, "store epoch neither created nor readable")
    return found


async def _read(js: JetStreamContext, bucket: str) -> str:
    kv = await js.key_value(bucket)
    try:
        entry = await kv.get(EPOCH_KEY)
    except KeyNotFoundError:  # also a deleted or purged key
        return ""
    return (entry.value or b"").decode(errors="replace").strip()


async def _create(js: JetStreamContext, bucket: str, value: str) -> bool:
    """Write the epoch only if the key has never held a value: False if it has."""
    headers = {
        "Nats-Expected-Last-Subject-Sequence": "0",  # KV create
        "Nats-TTL": "never",  # outlives the bucket's max age (the lease TTL)
    }
    try:
        await js.publish(f"$KV.{bucket}.{EPOCH_KEY}", value.encode(), headers=headers)
    except APIError as e:
        if e.err_code in _KEY_EXISTS:
            return False
        raise
    return True


class TermEpoch:
    """A leader's store epoch, read once per term of its lease (store_epoch). "" while it
    cannot be read: what the leader sends is then fenced by revision alone, as before
    epochs, and the read is tried again at the next refresh."""

    def __init__(self, leader: str, bucket: str) -> None:
        self.leader = leader  # "controller c1", "coordinator coord-a": for the log
        self.bucket = bucket
        self.epoch = ""
        self._term = 0  # the lease term `epoch` was read in
        self._log = RepeatedLog(log)

    def of(self, term: int) -> str:
        """The epoch if it was read in lease term `term`, else "" (a term begun since)."""
        return self.epoch if self._term == term else ""

    async def refresh(self, nc: Client, term: int, revision: int) -> None:
        """Read the epoch unless it was read in this term already."""
        if self._term == term and self.epoch:
            return
        try:
            epoch = await store_epoch(nc.jetstream(), self.bucket)
        except Exception as e:  # ClusterError, or a nats error on a dropped connection
            self._log.warning("epoch", "%s: %s: sent without a store epoch", self.leader, e)
            self.epoch = ""
            return
        self._log.clear("epoch")
        if epoch != self.epoch:
            log.warning(
                "%s leads in lease store epoch %s (revision %d)", self.leader, epoch, revision
            )
        self.epoch, self._term = epoch, term
