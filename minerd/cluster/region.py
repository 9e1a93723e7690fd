"""The regional coordinator's two messages and subjects, as versioned JSON (issue 16 item 3).

A site publishes an offer (its upgrade curve, what it draws beyond its rigs, its own limit
and its fail-safe limit, the allocation it obeys now); the coordinator answers each site
with an allocation: import kW with a lease (issued_at_s + lease_s), stamped with the
coordinator's leadership revision (fencing), the epoch of the store that revision counts in
(store_epoch.py; absent from an older coordinator: "") and a rising seq. Decoding checks
every field and raises ClusterError naming the sender and subject.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from minerd.cluster.curve import ShardCurve
from minerd.cluster.messages import VERSION, FieldReader, curve_body, read_curve
from minerd.cluster.region_award import SiteAward
from minerd.errors import ClusterError


def offer_subject(region: str, site: str) -> str:
    return f"minerd.region.{region}.site.{site}.offer"


def offers_wildcard(region: str) -> str:
    return f"minerd.region.{region}.site.*.offer"


def allocation_subject(region: str, site: str) -> str:
    return f"minerd.region.{region}.site.{site}.allocation"


def limit_subject(region: str) -> str:
    """Request subject: set the regional limit at runtime (token checked, audited)."""
    return f"minerd.region.{region}.limit"


def award_subject(region: str) -> str:
    """Request subject: energy awards for the region (token checked, audited)."""
    return f"minerd.region.{region}.award"


def lease_token(region: str) -> str:
    """The coordinator's leadership bucket is lease.lease_store(js, this)."""
    return f"region-{region}"


@dataclass(frozen=True)
class SiteOffer:
    region: str
    site: str
    seq: int  # per site process, rising
    sent_at_s: float
    import_w: float  # measured grid import
    overhead_w: float  # what the site imports beyond its rigs' budget (margin, aux load)
    max_import_w: float  # the site's own limit (contract, quota, operator cap): never above
    failsafe_w: float  # the site's fail-safe limit: what it falls to when its lease expires
    held_w: float  # the regional cap it obeys now (its allocation, or its fail-safe limit)
    held_seq: int  # seq of the allocation it obeys (0: none, on its fail-safe limit)
    curve: ShardCurve  # its rigs, in rig watts


@dataclass(frozen=True)
class Allocation:
    region: str
    site: str
    coordinator_id: str
    lease_revision: int  # the coordinator's leadership revision (fencing)
    seq: int  # per coordinator process, rising
    issued_at_s: float
    lease_s: (
        float  # valid until issued_at_s + lease_s (and never longer than lease_s after receipt)
    )
    allocation_w: float  # the site's import limit
    regional_limit_w: float  # for the record
    # The site's parts of the regional energy awards whose interval runs now (region_award);
    # absent on the wire when none (an older site ignores the key).
    awards: tuple[SiteAward, ...] = ()
    # The epoch of the JetStream store lease_revision counts in ("" from an older coordinator).
    store_epoch: str = ""


def encode_offer(o: SiteOffer) -> bytes:
    body = {
        "v": VERSION,
        "type": "site-offer",
        "region": o.region,
        "site": o.site,
        "seq": o.seq,
        "sent_at_s": o.sent_at_s,
        "import_w": o.import_w,
        "overhead_w": o.overhead_w,
        "max_import_w": o.max_import_w,
        "failsafe_w": o.failsafe_w,
        "held_w": o.held_w,
        "held_seq": o.held_seq,
        "curve": curve_body(o.curve),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def encode_allocation(a: Allocation) -> bytes:
    body = {
        "v": VERSION,
        "type": "allocation",
        "region": a.region,
        "site": a.site,
        "coordinator": a.coordinator_id,
        "lease_revision": a.lease_revision,
        "seq": a.seq,
        "issued_at_s": a.issued_at_s,
        "lease_s": a.lease_s,
        "allocation_w": a.allocation_w,
        "regional_limit_w": a.regional_limit_w,
    }
    if a.store_epoch:
        body["store_epoch"] = a.store_epoch
    if a.awards:
        body["awards"] = [
            {
                "id": w.award_id,
                "regional_id": w.regional_award_id,
                "start_s": w.start_s,
                "end_s": w.end_s,
                "energy_kwh": w.energy_kwh,
                "regional_energy_kwh": w.regional_energy_kwh,
                "issued_by": w.issued_by,
            }
            for w in a.awards
        ]
    return json.dumps(body, separators=(",", ":")).encode()


def decode_offer(data: bytes, subject: str) -> SiteOffer:
    r = FieldReader(data, subject, "site-offer", "site")
    o = SiteOffer(
        region=r.str_("region"),
        site=r.str_("site"),
        seq=r.int_("seq"),
        sent_at_s=r.num("sent_at_s"),
        import_w=r.num("import_w"),
        overhead_w=r.num("overhead_w"),
        max_import_w=r.num("max_import_w"),
        failsafe_w=r.num("failsafe_w"),
        held_w=r.num("held_w"),
        held_seq=r.int_("held_seq"),
        curve=read_curve(r),
    )
    if subject != offer_subject(o.region, o.site):
        raise r.fail(f"says region {o.region!r} site {o.site!r}, not this subject's")
    return o


def decode_allocation(data: bytes, subject: str) -> Allocation:
    r = FieldReader(data, subject, "allocation", "coordinator")
    a = Allocation(
        region=r.str_("region"),
        site=r.str_("site"),
        coordinator_id=r.str_("coordinator"),
        lease_revision=r.int_("lease_revision"),
        seq=r.int_("seq"),
        issued_at_s=r.num("issued_at_s"),
        lease_s=r.num("lease_s"),
        allocation_w=r.num("allocation_w"),
        regional_limit_w=r.num("regional_limit_w"),
        awards=_read_awards(r) if "awards" in r.obj else (),
        store_epoch=r.str_("store_epoch") if "store_epoch" in r.obj else "",
    )
    if a.lease_s <= 0:
        raise r.fail("lease_s must be > 0")
    if a.lease_revision <= 0 or a.seq <= 0:
        raise r.fail("lease_revision and seq must be > 0")
    if subject != allocation_subject(a.region, a.site):
        raise r.fail(f"says region {a.region!r} site {a.site!r}, not this subject's")
    return a


def _read_awards(r: FieldReader) -> tuple[SiteAward, ...]:
    out = []
    for item in r.list_("awards"):
        if not isinstance(item, dict):
            raise r.fail("an award must be an object")
        w = SiteAward(
            award_id=r.str_("awards.id", item.get("id")),
            regional_award_id=r.str_("awards.regional_id", item.get("regional_id")),
            start_s=r.num("awards.start_s", item.get("start_s")),
            end_s=r.num("awards.end_s", item.get("end_s")),
            energy_kwh=r.num("awards.energy_kwh", item.get("energy_kwh")),
            regional_energy_kwh=r.num(
                "awards.regional_energy_kwh", item.get("regional_energy_kwh")
            ),
            issued_by=r.str_("awards.issued_by", item.get("issued_by")),
        )
        if w.end_s <= w.start_s:
            raise r.fail(f"award {w.award_id}: end_s must be after start_s")
        out.append(w)
    return tuple(out)


def refused(a: Allocation, subject: str, reason: str) -> ClusterError:
    """The error a site logs and counts for an allocation it will not obey."""
    return ClusterError(f"coordinator {a.coordinator_id}", subject, reason)
