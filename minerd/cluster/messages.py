"""The two messages of a split site, as versioned JSON.

A shard publishes its aggregate every cycle (what it draws, what it hashes, its counts, its
upgrade curve, what it can shed how fast and what its commandable rigs draw); the controller
answers each shard with a budget that carries the controller's lease revision (fencing) and
the shard's fail-safe share. Decoding checks every field and raises ClusterError naming the
sender and subject; an unknown version is refused, not guessed at. `shed` and `commandable`
came after version 1 shipped: an aggregate without them (an older shard) decodes with None
there (unknown), and a bad one is refused like any other field. A budget's `store_epoch`
(the lease store its revision counts in, store_epoch.py) came later too: absent (an older
controller, or one that could not read it) it is "", unknown, and revisions alone fence.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from minerd.cluster.curve import CurveClass, ShardCurve, Upgrade
from minerd.errors import ClusterError
from minerd.model import RigProtocol, ShedCapacity, ShedClass
from minerd.runtime.commandable import Commandable

VERSION = 1
_FAMILIES = frozenset(p.value for p in RigProtocol)


@dataclass(frozen=True)
class ShardAggregate:
    site: str
    shard_id: str
    seq: int  # per shard process, rising
    sent_at_s: float  # shard clock, unix s (for display; staleness is counted in cycles)
    power_w: float  # measured draw of the shard's rigs
    hashrate_ths: float  # measured
    nominal_power_w: float  # sum of nominal power: the fail-safe share and a dead shard's count
    rigs_total: int
    rigs_fresh: int
    rigs_awake: int
    rigs_unresponsive: int
    budget_revision: int  # lease revision of the budget it plans to (0: none yet)
    failsafe: bool  # planning to its fail-safe share
    curve: ShardCurve
    # What its last plan gave its rigs: the controller's loop tells a transient (readings
    # still moving to the plan) from unmodelled load by it, as the single process does.
    planned_power_w: float = 0.0
    # The power the closed loop counts: unresponsive rigs at nominal, offline ones at 0.
    counted_power_w: float = 0.0
    # Running total, per shard process, of the power its rigs stopped being counted at when
    # they answered again after being counted at nominal (control.counting.NominalWatch):
    # the controller takes the rise since the aggregate it last took (a total, not the
    # cycle's figure, so an aggregate the controller never saw loses nothing). Absent in an
    # older shard's aggregate: 0.
    uncounted_total_w: float = 0.0
    # Its rigs still moving to the commands it sent: seconds of its cycle's window left at
    # sending (reaction times plus a cycle), and what its raises in flight may still add to
    # the meter. The controller's closed loop learns no load from the meter meanwhile: the
    # readings lag the meter by up to a poll interval, and at 20,000 rigs a 2 % mismatch
    # taken for load moved whole classes of rigs every cycle. Absent in an older
    # shard's aggregate: 0 (not moving).
    moving_s: float = 0.0
    rising_w: float = 0.0
    # What its rigs can shed within each horizon (its cycle's figure: rig W per family and
    # model, a row per class, never per rig) and what its commandable rigs draw. None: an
    # aggregate from a shard that does not send them (unknown; the controller counts 0).
    shed: ShedCapacity | None = None
    commandable: Commandable | None = None


@dataclass(frozen=True)
class Budget:
    site: str
    shard_id: str
    controller_id: str
    lease_revision: int  # fencing: a shard ignores revisions older than the newest it saw
    seq: int  # per controller process, rising
    sent_at_s: float
    budget_w: float
    failsafe_w: float  # the shard's share of the site's fail-safe limit
    max_wakes: int | None  # rigs it may wake this cycle (None: no limit)
    # The grid meter says the site is over: this shard's part of the excess (rig W), which
    # it sheds from rigs counted at nominal when its plan cannot (control.overload). 0: not
    # over. Absent in an older controller's budget: 0.
    overload_w: float = 0.0
    # The epoch of the lease store lease_revision counts in ("": unknown, revisions alone
    # fence): a wiped or re-created store starts its revisions at 1 again (safety.BudgetGate).
    store_epoch: str = ""
    # Price-aware dispatch ([economics] at the controller): awake points above this J/TH are
    # not planned (PlanConstraints.max_j_per_th). None: every point (no price, or an older
    # controller).
    max_j_per_th: float | None = None


def curve_body(c: ShardCurve) -> dict[str, object]:
    """A curve as JSON, compact: classes as [count, base_w, base_ths, asleep,
    [[dp_w, dh_ths, continuous], ...]]. Shard aggregates and regional site offers carry it."""
    return {
        "fixed_w": c.fixed_w,
        "release_w": c.release_w,
        "classes": [
            [
                k.count,
                k.base_w,
                k.base_ths,
                k.asleep,
                [[u.dp_w, u.dh_ths, u.continuous] for u in k.upgrades],
            ]
            for k in c.classes
        ],
    }


def encode_aggregate(a: ShardAggregate) -> bytes:
    c = a.curve
    body = {
        "v": VERSION,
        "type": "aggregate",
        "site": a.site,
        "shard": a.shard_id,
        "seq": a.seq,
        "sent_at_s": a.sent_at_s,
        "power_w": a.power_w,
        "hashrate_ths": a.hashrate_ths,
        "nominal_power_w": a.nominal_power_w,
        "rigs": [a.rigs_total, a.rigs_fresh, a.rigs_awake, a.rigs_unresponsive],
        "budget_revision": a.budget_revision,
        "failsafe": a.failsafe,
        "planned_power_w": a.planned_power_w,
        "counted_power_w": a.counted_power_w,
        "uncounted_total_w": a.uncounted_total_w,
        "moving_s": a.moving_s,
        "rising_w": a.rising_w,
        "curve": curve_body(c),
    }
    if a.shed is not None:
        body["shed"] = _shed_body(a.shed)
    if a.commandable is not None:
        k = a.commandable
        body["commandable"] = [k.power_w, k.nominal_w, k.fleet_nominal_w]
    return json.dumps(body, separators=(",", ":")).encode()


def _shed_body(cap: ShedCapacity) -> dict[str, object]:
    # Compact: [family, model, rigs, power_w, [shed_w per horizon]] per class.
    return {
        "horizons_s": list(cap.horizons_s),
        "site_factor": cap.site_factor,
        "classes": [
            [c.family.value, c.model, c.rigs, c.power_w, list(c.shed_w)] for c in cap.classes
        ],
    }


def encode_budget(b: Budget) -> bytes:
    body = {
        "v": VERSION,
        "type": "budget",
        "site": b.site,
        "shard": b.shard_id,
        "controller": b.controller_id,
        "lease_revision": b.lease_revision,
        "seq": b.seq,
        "sent_at_s": b.sent_at_s,
        "budget_w": b.budget_w,
        "failsafe_w": b.failsafe_w,
        "max_wakes": b.max_wakes,
        "overload_w": b.overload_w,
    }
    if b.store_epoch:
        body["store_epoch"] = b.store_epoch
    if b.max_j_per_th is not None:
        body["max_j_per_th"] = b.max_j_per_th
    return json.dumps(body, separators=(",", ":")).encode()


class FieldReader:
    """Typed field access over one decoded object; every failure names sender and subject."""

    def __init__(self, data: bytes, subject: str, kind: str, peer_key: str) -> None:
        self.subject = subject
        self.peer = "?"
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ClusterError(self.peer, subject, f"not JSON: {e}") from e
        if not isinstance(obj, dict):
            raise ClusterError(self.peer, subject, "not a JSON object")
        self.obj: dict[str, object] = obj
        peer = obj.get(peer_key)
        self.peer = f"{peer_key} {peer}" if isinstance(peer, str) else "?"
        if obj.get("v") != VERSION:
            raise ClusterError(self.peer, subject, f"version {obj.get('v')!r}, want {VERSION}")
        if obj.get("type") != kind:
            raise ClusterError(self.peer, subject, f"type {obj.get('type')!r}, want {kind!r}")

    def fail(self, message: str) -> ClusterError:
        return ClusterError(self.peer, self.subject, message)

    def str_(self, key: str, obj: object = None) -> str:
        v = self.obj.get(key) if obj is None else obj
        if not isinstance(v, str) or not v:
            raise self.fail(f"{key} must be a non-empty string")
        return v

    def int_(self, key: str, obj: object = None) -> int:
        v = self.obj.get(key) if obj is None else obj
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise self.fail(f"{key} must be an integer >= 0")
        return v

    def num(self, key: str, obj: object = None) -> float:
        v = self.obj.get(key) if obj is None else obj
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise self.fail(f"{key} must be a finite number >= 0")
        return float(v)

    def bool_(self, key: str, obj: object = None) -> bool:
        v = self.obj.get(key) if obj is None else obj
        if not isinstance(v, bool):
            raise self.fail(f"{key} must be true or false")
        return v

    def list_(self, key: str, obj: object = None) -> list[object]:
        v = self.obj.get(key) if obj is None else obj
        if not isinstance(v, list):
            raise self.fail(f"{key} must be a list")
        return v


def read_curve(r: FieldReader) -> ShardCurve:
    """The "curve" object of a message (curve_body), every field checked."""
    curve = r.obj.get("curve")
    if not isinstance(curve, dict):
        raise r.fail("curve must be an object")
    classes = []
    for row in r.list_("curve.classes", curve.get("classes")):
        cells = r.list_("curve class", row)
        if len(cells) != 5:
            raise r.fail("a curve class must be [count, base_w, base_ths, asleep, upgrades]")
        ups = []
        for seg in r.list_("upgrades", cells[4]):
            parts = r.list_("upgrade", seg)
            if len(parts) != 3:
                raise r.fail("an upgrade must be [dp_w, dh_ths, continuous]")
            dp_w = r.num("dp_w", parts[0])
            if dp_w <= 0:
                raise r.fail("dp_w must be > 0")
            ups.append(Upgrade(dp_w, r.num("dh_ths", parts[1]), r.bool_("continuous", parts[2])))
        classes.append(
            CurveClass(
                r.int_("count", cells[0]),
                r.num("base_w", cells[1]),
                r.num("base_ths", cells[2]),
                r.bool_("asleep", cells[3]),
                tuple(ups),
            )
        )
    return ShardCurve(
        r.num("curve.fixed_w", curve.get("fixed_w")),
        r.num("curve.release_w", curve.get("release_w")),
        tuple(classes),
    )


def decode_aggregate(data: bytes, subject: str) -> ShardAggregate:
    r = FieldReader(data, subject, "aggregate", "shard")
    counts = r.list_("rigs")
    if len(counts) != 4:
        raise r.fail("rigs must be [total, fresh, awake, unresponsive]")
    total, fresh, awake, unresponsive = (r.int_("rigs", n) for n in counts)
    return ShardAggregate(
        site=r.str_("site"),
        shard_id=r.str_("shard"),
        seq=r.int_("seq"),
        sent_at_s=r.num("sent_at_s"),
        power_w=r.num("power_w"),
        hashrate_ths=r.num("hashrate_ths"),
        nominal_power_w=r.num("nominal_power_w"),
        rigs_total=total,
        rigs_fresh=fresh,
        rigs_awake=awake,
        rigs_unresponsive=unresponsive,
        budget_revision=r.int_("budget_revision"),
        failsafe=r.bool_("failsafe"),
        curve=read_curve(r),
        planned_power_w=r.num("planned_power_w"),
        counted_power_w=r.num("counted_power_w"),
        uncounted_total_w=r.num("uncounted_total_w") if "uncounted_total_w" in r.obj else 0.0,
        moving_s=r.num("moving_s") if "moving_s" in r.obj else 0.0,
        rising_w=r.num("rising_w") if "rising_w" in r.obj else 0.0,
        shed=_read_shed(r) if "shed" in r.obj else None,
        commandable=_read_commandable(r) if "commandable" in r.obj else None,
    )


def _read_shed(r: FieldReader) -> ShedCapacity:
    body = r.obj.get("shed")
    if not isinstance(body, dict):
        raise r.fail("shed must be an object")
    horizons = tuple(
        r.num("shed.horizons_s", h) for h in r.list_("shed.horizons_s", body.get("horizons_s"))
    )
    if not horizons or any(h <= 0 for h in horizons) or list(horizons) != sorted(set(horizons)):
        raise r.fail("shed.horizons_s must be rising numbers > 0")
    factor = r.num("shed.site_factor", body.get("site_factor"))
    classes = []
    for row in r.list_("shed.classes", body.get("classes")):
        cells = r.list_("shed class", row)
        if len(cells) != 5:
            raise r.fail("a shed class must be [family, model, rigs, power_w, shed_w]")
        family = r.str_("shed family", cells[0])
        if family not in _FAMILIES:
            raise r.fail(f"shed family {family!r} is not a firmware family")
        shed_w = tuple(r.num("shed_w", w) for w in r.list_("shed_w", cells[4]))
        if len(shed_w) != len(horizons):
            raise r.fail("shed_w must have one figure per horizon")
        classes.append(
            ShedClass(
                RigProtocol(family),
                r.str_("shed model", cells[1]),
                r.int_("shed rigs", cells[2]),
                r.num("shed power_w", cells[3]),
                shed_w,
            )
        )
    return ShedCapacity(horizons, factor, tuple(classes))


def _read_commandable(r: FieldReader) -> Commandable:
    cells = r.list_("commandable")
    if len(cells) != 3:
        raise r.fail("commandable must be [power_w, nominal_w, fleet_nominal_w]")
    power_w, nominal_w, fleet_w = (r.num("commandable", c) for c in cells)
    return Commandable(power_w, nominal_w, fleet_w)


def decode_budget(data: bytes, subject: str) -> Budget:
    r = FieldReader(data, subject, "budget", "controller")
    wakes = r.obj.get("max_wakes")
    return Budget(
        site=r.str_("site"),
        shard_id=r.str_("shard"),
        controller_id=r.str_("controller"),
        lease_revision=r.int_("lease_revision"),
        seq=r.int_("seq"),
        sent_at_s=r.num("sent_at_s"),
        budget_w=r.num("budget_w"),
        failsafe_w=r.num("failsafe_w"),
        max_wakes=None if wakes is None else r.int_("max_wakes"),
        overload_w=r.num("overload_w") if "overload_w" in r.obj else 0.0,
        store_epoch=r.str_("store_epoch") if "store_epoch" in r.obj else "",
        max_j_per_th=_j_per_th(r),
    )


def _j_per_th(r: FieldReader) -> float | None:
    """A budget's economics filter: absent or null is none; else a positive J/TH."""
    if r.obj.get("max_j_per_th") is None:
        return None
    v = r.num("max_j_per_th")
    if not v > 0.0:
        raise r.fail(f"max_j_per_th: {v!r} is not a positive J/TH")
    return v
