"""The allocations the region's coordinators sent, in a KV bucket of the region's.

Re-giving a silent site's energy (region_regive) needs every allocation any coordinator sent
it whose lease reaches into the interval. A coordinator that only knows its own term's sends
cannot re-give in an interval that began before its term: after a takeover mid-interval the
silent site's energy stayed unused until the next interval. So the leader writes the record
before it sends a round (a round it cannot record is not sent: the record stays complete), and
a coordinator taking over reads it: its history then runs from the record's `from_s`, the
start of the first recording term, instead of from its own takeover.

One key for the region, a JSON object `{"from_s": s, "sites": {site: [[issued_at_s, lease_s,
allocation_w], ...]}}`. Only the allocations whose lease may still reach into an interval
that has not ended are kept (`keep_from_s`), and a site's list is bounded by merging its
oldest neighbours into one allocation at the higher power over both spans: the bound of
region_regive only grows from that (the site looks able to use more), so what is re-given
can only shrink. Every coordinator of a region must write it: one that does not (an older
minerd) leaves its term's sends out, and the next one would trust a history with a hole.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError

from minerd.cluster.region_regive import SentAllocation
from minerd.cluster.regive_store import kept_bucket
from minerd.errors import ClusterError

_IO_TIMEOUT_S = 2.0
_KEY = "sent"
MAX_PER_SITE = 96  # allocations kept per site (older ones merged): a few KB per site


@dataclass(frozen=True)
class SentRecord:
    """Every allocation sent to each site since from_s (merged as the module says)."""

    from_s: float
    sites: dict[str, tuple[SentAllocation, ...]]


def sent_bucket(region_token: str) -> str:
    return f"minerd-{region_token}-sent"


def bounded(sent: Sequence[SentAllocation], keep_from_s: float) -> tuple[SentAllocation, ...]:
    """The allocations whose lease ends after keep_from_s, at most MAX_PER_SITE of them: the
    oldest two merged into one at the higher power over both spans until it fits."""
    out = [a for a in sent if a.ends_at_s > keep_from_s]
    while len(out) > MAX_PER_SITE:
        a, b = out[0], out[1]
        start_s = min(a.issued_at_s, b.issued_at_s)
        end_s = max(a.ends_at_s, b.ends_at_s)
        out[0:2] = [SentAllocation(start_s, end_s - start_s, max(a.allocation_w, b.allocation_w))]
    return tuple(out)


def merged(
    own: Mapping[str, Sequence[SentAllocation]], shared: Mapping[str, Sequence[SentAllocation]]
) -> dict[str, list[SentAllocation]]:
    """Both histories, per site in issue order, an allocation in both kept once."""
    out: dict[str, list[SentAllocation]] = {}
    for site in sorted({*own, *shared}):
        both = {*own.get(site, ()), *shared.get(site, ())}
        out[site] = sorted(both, key=lambda a: (a.issued_at_s, a.lease_s, a.allocation_w))
    return out


def encode_sent(record: SentRecord) -> bytes:
    sites = {
        s: [[a.issued_at_s, a.lease_s, a.allocation_w] for a in sent]
        for s, sent in sorted(record.sites.items())
    }
    return json.dumps({"from_s": record.from_s, "sites": sites}, separators=(",", ":")).encode()


def decode_sent(data: bytes, bucket: str) -> SentRecord:
    """The record; ClusterError naming the bucket and what is wrong."""
    try:
        body = json.loads(data)
        from_s = _number(body["from_s"], "from_s")
        sites: dict[str, tuple[SentAllocation, ...]] = {}
        for site, rows in body["sites"].items():
            if not isinstance(site, str) or not site or not isinstance(rows, list):
                raise ValueError(f"site {site!r}: a list of allocations per site name")
            sent = []
            for row in rows:
                if not isinstance(row, list) or len(row) != 3:
                    raise ValueError(f"site {site!r}: [issued_at_s, lease_s, allocation_w]")
                issued_s, lease_s, alloc_w = (_number(v, f"site {site!r}") for v in row)
                sent.append(SentAllocation(issued_s, lease_s, alloc_w))
            sites[site] = tuple(sent)
        return SentRecord(from_s, sites)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ClusterError("nats", bucket, f"allocations sent unreadable: {e}") from e


def _number(v: object, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{where}: {v!r} is not a finite number >= 0")
    return float(v)


async def put_sent(js: JetStreamContext, bucket: str, record: SentRecord) -> None:
    """Write the record; ClusterError naming the bucket when not written."""
    try:
        async with asyncio.timeout(_IO_TIMEOUT_S):
            kv = await kept_bucket(js, bucket)
            await kv.put(_KEY, encode_sent(record))
    except Exception as e:  # any failure of the client: not connected, no answer, refused
        raise ClusterError("nats", bucket, f"allocations sent not written: {e!r}") from e


async def get_sent(js: JetStreamContext, bucket: str) -> SentRecord | None:
    """The record; None when none was written; ClusterError when unreadable."""
    try:
        async with asyncio.timeout(_IO_TIMEOUT_S):
            kv = await kept_bucket(js, bucket)
            try:
                entry = await kv.get(_KEY)
            except KeyNotFoundError:
                return None
    except Exception as e:  # any failure of the client: not connected, no answer, refused
        raise ClusterError("nats", bucket, f"allocations sent unreadable: {e!r}") from e
    return decode_sent(entry.value or b"", bucket)
