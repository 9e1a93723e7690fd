"""Re-given award splits shared between coordinators, in a KV bucket of the region's.

A coordinator that re-gives a silent site's energy (region_regive) writes the revised split
here before it sends it, and every coordinator reads it back before it sends an award's
parts: a standby that takes over then sends the same revised parts, and a silent site that
comes back gets its lowered part, not its whole one. One key per award, in a bucket of its
own (the lease bucket's max age is the lease's TTL) whose max age outlives any award that
is still kept: an interval is at most a day, an award is forgotten a day after its end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass

from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from minerd.errors import ClusterError

_IO_TIMEOUT_S = 2.0
_KEPT_S = 3 * 86_400.0


@dataclass(frozen=True)
class SharedRegive:
    """An award's split after its re-gives, and the sites that gave (held at their fail-safe
    limit if they come back within the interval)."""

    sites_kwh: dict[str, float]
    donors: dict[str, float]  # site -> the fail-safe limit (W) its bound counted


NONE = SharedRegive({}, {})


def regive_bucket(region_token: str) -> str:
    return f"minerd-{region_token}-regive"


async def kept_bucket(js: JetStreamContext, bucket: str) -> KeyValue:
    """A bucket of the region's records that outlive any award still kept (history 1),
    created if missing (a new or wiped store). The sent allocations' record uses it too."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=bucket, ttl=_KEPT_S, history=1)


def regive_key(award_id: str) -> str:
    """Award ids may hold ':', which KV keys may not: a digest of the id."""
    return "regive." + hashlib.sha256(award_id.encode()).hexdigest()[:24]


async def put_regive(
    js: JetStreamContext, bucket: str, award_id: str, shared: SharedRegive
) -> None:
    """Write an award's revised split; ClusterError naming the bucket when not written."""
    body = json.dumps(
        {"award_id": award_id, "sites_kwh": shared.sites_kwh, "donors": shared.donors}
    ).encode()
    try:
        async with asyncio.timeout(_IO_TIMEOUT_S):
            kv = await kept_bucket(js, bucket)
            await kv.put(regive_key(award_id), body)
    except Exception as e:  # any failure of the client: not connected, no answer, refused
        raise ClusterError(
            "nats", bucket, f"re-given split of {award_id} not written: {e!r}"
        ) from e


async def get_regive(js: JetStreamContext, bucket: str, award_id: str) -> SharedRegive:
    """An award's revised split; NONE when none was written; ClusterError when unreadable."""
    try:
        async with asyncio.timeout(_IO_TIMEOUT_S):
            kv = await kept_bucket(js, bucket)
            try:
                entry = await kv.get(regive_key(award_id))
            except KeyNotFoundError:
                return NONE
    except Exception as e:  # any failure of the client: not connected, no answer, refused
        raise ClusterError("nats", bucket, f"re-given split of {award_id} unreadable: {e!r}") from e
    try:
        body = json.loads(entry.value or b"")
        if body["award_id"] != award_id:
            raise ValueError(f"holds {body['award_id']!r}")
        return SharedRegive(
            {str(s): float(kwh) for s, kwh in body["sites_kwh"].items()},
            {str(s): float(w) for s, w in body["donors"].items()},
        )
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ClusterError("nats", bucket, f"re-given split of {award_id} unreadable: {e!r}") from e
