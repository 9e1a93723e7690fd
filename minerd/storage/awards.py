"""Energy awards per settlement interval: durable, idempotent, the latest for an interval wins.

The one idempotency rule, as for quotas: an award whose award_id is already stored is a
replay when it asks for the same interval and energy (it changes nothing, even when a later
award has since replaced it: a late duplicate must not undo a newer order) and a conflict
when it asks for anything else. An award without an id of the sender's is a replay when the
award in force for exactly that interval has the same energy. A batch sent with an
idempotency key is answered, when the key comes again with the same content, with what the
first one stored; with other content it is a conflict.

At any instant at most one award is in force: a new one withdraws (supersedes) every award
in force that overlaps its interval; history stays in the table and in the audit log.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace

from minerd.model import EnergyAward, QuotaSource, SettlementRecord
from minerd.storage.db import Database, Migration, NotFoundError
from minerd.storage.quotas import QuotaConflict

MIGRATIONS = (
    Migration(
        1,
        (
            """CREATE TABLE award (
                award_id TEXT PRIMARY KEY,
                start_s REAL NOT NULL,
                end_s REAL NOT NULL CHECK (end_s > start_s),
                energy_kwh REAL NOT NULL CHECK (energy_kwh >= 0),
                source TEXT NOT NULL,
                issued_at_s REAL NOT NULL,
                issued_by TEXT NOT NULL,
                reference TEXT,
                withdrawn_at_s REAL,
                withdrawn_by TEXT,
                superseded_by TEXT
            )""",
            "CREATE INDEX award_span ON award(start_s, end_s)",
            """CREATE TABLE award_request (
                idempotency_key TEXT PRIMARY KEY,
                digest TEXT NOT NULL,
                award_ids TEXT NOT NULL,
                at_s REAL NOT NULL
            )""",
            """CREATE TABLE settlement (
                interval_start_s REAL PRIMARY KEY,
                interval_s REAL NOT NULL CHECK (interval_s > 0),
                imported_kwh REAL NOT NULL,
                integrated_kwh REAL NOT NULL,
                register_kwh REAL,
                peak_kw REAL NOT NULL,
                seconds_over REAL NOT NULL,
                covered_s REAL NOT NULL,
                samples INTEGER NOT NULL,
                awarded_kwh REAL,
                award_id TEXT,
                note TEXT NOT NULL DEFAULT ''
            )""",
        ),
    ),
)

_COLS = (
    "award_id, start_s, end_s, energy_kwh, source, issued_at_s, issued_by, reference, "
    "withdrawn_at_s"
)
_SCOLS = (
    "interval_start_s, interval_s, imported_kwh, integrated_kwh, register_kwh, peak_kw, "
    "seconds_over, covered_s, samples, awarded_kwh, award_id, note"
)


class AwardConflict(QuotaConflict):
    """An award id or idempotency key was reused for different content (HTTP 409, as for
    quotas)."""


@dataclass(frozen=True)
class AwardsPut:
    """What one batch did, in the batch's order."""

    awards: tuple[EnergyAward, ...]  # as stored (a replay: the award stored the first time)
    created: tuple[bool, ...]  # per award: False for a replay
    superseded: tuple[EnergyAward, ...]  # awards in force that the new ones replaced
    withdrawn: tuple[EnergyAward, ...]  # replace_span: awards in the span not re-sent
    replayed_key: bool = False  # the whole batch was a replay of its idempotency key

    @property
    def changed(self) -> bool:
        return any(self.created) or bool(self.withdrawn)


def batch_digest(awards: Sequence[EnergyAward], replace_span: tuple[float, float] | None) -> str:
    """What an idempotency key is bound to: the intervals, energies and ids asked for."""
    body = [[a.award_id, a.start_s, a.end_s, a.energy_kwh, a.reference] for a in awards]
    text = json.dumps({"awards": body, "replace": replace_span}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class AwardStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        db.apply_migrations("awards", MIGRATIONS)

    # ------------------------------------------------------------ writes

    def put(
        self,
        awards: Sequence[EnergyAward],
        by: str,
        at_s: float,
        *,
        idempotency_key: str | None = None,
        generated_ids: frozenset[str] = frozenset(),
        replace_span: tuple[float, float] | None = None,
    ) -> AwardsPut:
        """Store a batch atomically (nothing if anything conflicts).

        generated_ids: ids minerd made up (the sender gave none): such an award is a replay
        of the one in force for its interval with the same energy. replace_span: awards in
        force starting in [from, to) that the batch does not re-send are withdrawn (a new
        day's schedule replaces the old one whole)."""
        digest = batch_digest(
            [replace(a, award_id="") if a.award_id in generated_ids else a for a in awards],
            replace_span,
        )
        with self._db.transaction("put awards") as conn:
            if idempotency_key is not None:
                earlier = self._by_key(conn, idempotency_key, digest)
                if earlier is not None:
                    return AwardsPut(earlier, (False,) * len(earlier), (), (), replayed_key=True)
            stored: list[EnergyAward] = []
            created: list[bool] = []
            superseded: list[EnergyAward] = []
            for a in awards:
                replay = self._replay_of(conn, a, a.award_id in generated_ids)
                if replay is not None:
                    stored.append(replay)
                    created.append(False)
                    continue
                for old in _in_force(conn, a.start_s, a.end_s):
                    conn.execute(
                        "UPDATE award SET withdrawn_at_s = ?, withdrawn_by = ?, superseded_by = ? "
                        "WHERE award_id = ?",
                        (at_s, by, a.award_id, old.award_id),
                    )
                    superseded.append(replace(old, withdrawn_at_s=at_s))
                _insert(conn, a)
                stored.append(a)
                created.append(True)
            withdrawn: list[EnergyAward] = []
            if replace_span is not None:
                keep = {a.award_id for a in stored}
                for old in _in_force(conn, *replace_span, starting_inside=True):
                    if old.award_id in keep:
                        continue
                    conn.execute(
                        "UPDATE award SET withdrawn_at_s = ?, withdrawn_by = ? WHERE award_id = ?",
                        (at_s, by, old.award_id),
                    )
                    withdrawn.append(replace(old, withdrawn_at_s=at_s))
            if idempotency_key is not None:
                conn.execute(
                    "INSERT INTO award_request(idempotency_key, digest, award_ids, at_s) "
                    "VALUES (?,?,?,?)",
                    (idempotency_key, digest, json.dumps([a.award_id for a in stored]), at_s),
                )
        return AwardsPut(tuple(stored), tuple(created), tuple(superseded), tuple(withdrawn))

    def withdraw(self, award_id: str, at_s: float, by: str) -> EnergyAward:
        """Withdraw from at_s on; withdrawing twice keeps the first withdrawal."""
        with self._db.transaction("withdraw award") as conn:
            conn.execute(
                "UPDATE award SET withdrawn_at_s = ?, withdrawn_by = ? "
                "WHERE award_id = ? AND withdrawn_at_s IS NULL",
                (at_s, by, award_id),
            )
            row = conn.execute(
                f"SELECT {_COLS} FROM award WHERE award_id = ?", (award_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError("award", award_id)
            return _award(row)

    def withdraw_range(self, from_s: float, to_s: float, at_s: float, by: str) -> list[EnergyAward]:
        """Withdraw every award in force that starts in [from_s, to_s)."""
        with self._db.transaction("withdraw awards") as conn:
            old = _in_force(conn, from_s, to_s, starting_inside=True)
            conn.executemany(
                "UPDATE award SET withdrawn_at_s = ?, withdrawn_by = ? WHERE award_id = ?",
                [(at_s, by, a.award_id) for a in old],
            )
        return [replace(a, withdrawn_at_s=at_s) for a in old]

    # ------------------------------------------------------------ reads

    def get(self, award_id: str) -> EnergyAward | None:
        row = self._db.query_one(
            f"SELECT {_COLS} FROM award WHERE award_id = ?", (award_id,), what="get award"
        )
        return _award(row) if row else None

    def in_range(self, start_s: float, end_s: float) -> list[EnergyAward]:
        """The awards in force (not withdrawn) that overlap [start_s, end_s), by start."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM award WHERE withdrawn_at_s IS NULL AND start_s < ? "
            "AND end_s > ? ORDER BY start_s",
            (end_s, start_s),
            what="awards in range",
        )
        return [_award(r) for r in rows]

    def history(self, start_s: float, end_s: float) -> list[EnergyAward]:
        """Every award ever stored that overlaps [start_s, end_s), withdrawn ones included,
        by start then issue."""
        rows = self._db.query(
            f"SELECT {_COLS} FROM award WHERE start_s < ? AND end_s > ? "
            "ORDER BY start_s, issued_at_s, rowid",
            (end_s, start_s),
            what="award history",
        )
        return [_award(r) for r in rows]

    def at(self, t_s: float) -> EnergyAward | None:
        """The award in force for the interval containing t_s."""
        found = self.in_range(t_s, t_s + 1e-6)
        return found[0] if found else None

    # ------------------------------------------------------------ settlement records

    def put_settlement(self, record: SettlementRecord) -> None:
        with self._db.transaction("store settlement") as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO settlement({_SCOLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.interval_start_s,
                    record.interval_s,
                    record.imported_kwh,
                    record.integrated_kwh,
                    record.register_kwh,
                    record.peak_kw,
                    record.seconds_over,
                    record.covered_s,
                    record.samples,
                    record.awarded_kwh,
                    record.award_id,
                    record.note,
                ),
            )

    def settlements(self, from_s: float, to_s: float) -> list[SettlementRecord]:
        """Closed intervals starting in [from_s, to_s), oldest first."""
        rows = self._db.query(
            f"SELECT {_SCOLS} FROM settlement WHERE interval_start_s >= ? AND "
            "interval_start_s < ? ORDER BY interval_start_s",
            (from_s, to_s),
            what="settlement records",
        )
        return [_settlement(r) for r in rows]

    # ------------------------------------------------------------ helpers

    def _by_key(
        self, conn: sqlite3.Connection, key: str, digest: str
    ) -> tuple[EnergyAward, ...] | None:
        row = conn.execute(
            "SELECT digest, award_ids FROM award_request WHERE idempotency_key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        if row["digest"] != digest:
            raise AwardConflict(
                "idempotency_key",
                f"{key!r} was already used for a different batch of awards; send a new key "
                "for a new batch",
            )
        out = []
        for award_id in json.loads(row["award_ids"]):
            r = conn.execute(f"SELECT {_COLS} FROM award WHERE award_id = ?", (award_id,))
            found = r.fetchone()
            if found is not None:
                out.append(_award(found))
        return tuple(out)

    def _replay_of(
        self, conn: sqlite3.Connection, a: EnergyAward, generated: bool
    ) -> EnergyAward | None:
        if not generated:
            row = conn.execute(
                f"SELECT {_COLS} FROM award WHERE award_id = ?", (a.award_id,)
            ).fetchone()
            if row is None:
                return None
            stored = _award(row)
            differs = _difference(stored, a)
            if differs is not None:
                raise AwardConflict(
                    "award_id",
                    f"{a.award_id!r} was already used for an award with a different {differs}; "
                    "send a new id for a new award",
                )
            return stored
        row = conn.execute(
            f"SELECT {_COLS} FROM award WHERE withdrawn_at_s IS NULL AND start_s = ? "
            "AND end_s = ? ORDER BY rowid DESC LIMIT 1",
            (a.start_s, a.end_s),
        ).fetchone()
        if row is None:
            return None
        stored = _award(row)
        same = stored.energy_kwh == a.energy_kwh and stored.reference == a.reference
        return stored if same else None


def awarded_in(
    awards: Sequence[EnergyAward], start_s: float, end_s: float
) -> tuple[float | None, str | None]:
    """The energy awarded for [start_s, end_s): the sum of the awards in force inside it (four
    15-minute awards settle in one hour), and the award's id when there is exactly one;
    (None, None) without any."""
    inside = [a for a in awards if a.start_s >= start_s and a.end_s <= end_s]
    if not inside:
        return None, None
    return sum(a.energy_kwh for a in inside), inside[0].award_id if len(inside) == 1 else None


def _difference(stored: EnergyAward, asked: EnergyAward) -> str | None:
    if stored.start_s != asked.start_s:
        return "interval start"
    if stored.end_s != asked.end_s:
        return "interval length"
    if stored.energy_kwh != asked.energy_kwh:
        return f"energy ({stored.energy_kwh / 1000:g} MWh, not {asked.energy_kwh / 1000:g} MWh)"
    return None


def _in_force(
    conn: sqlite3.Connection, from_s: float, to_s: float, *, starting_inside: bool = False
) -> list[EnergyAward]:
    if starting_inside:
        sql = "start_s >= ? AND start_s < ?"
        params: tuple[float, float] = (from_s, to_s)
    else:
        sql = "start_s < ? AND end_s > ?"
        params = (to_s, from_s)
    rows = conn.execute(
        f"SELECT {_COLS} FROM award WHERE withdrawn_at_s IS NULL AND {sql} ORDER BY start_s",
        params,
    ).fetchall()
    return [_award(r) for r in rows]


def _insert(conn: sqlite3.Connection, a: EnergyAward) -> None:
    conn.execute(
        "INSERT INTO award(award_id, start_s, end_s, energy_kwh, source, issued_at_s, "
        "issued_by, reference, withdrawn_at_s) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            a.award_id,
            a.start_s,
            a.end_s,
            a.energy_kwh,
            a.source.value,
            a.issued_at_s,
            a.issued_by,
            a.reference,
            a.withdrawn_at_s,
        ),
    )


def _award(r: sqlite3.Row) -> EnergyAward:
    return EnergyAward(
        award_id=r["award_id"],
        start_s=float(r["start_s"]),
        end_s=float(r["end_s"]),
        energy_kwh=float(r["energy_kwh"]),
        source=QuotaSource(r["source"]),
        issued_at_s=float(r["issued_at_s"]),
        issued_by=r["issued_by"],
        reference=r["reference"],
        withdrawn_at_s=None if r["withdrawn_at_s"] is None else float(r["withdrawn_at_s"]),
    )


def _settlement(r: sqlite3.Row) -> SettlementRecord:
    return SettlementRecord(
        interval_start_s=float(r["interval_start_s"]),
        interval_s=float(r["interval_s"]),
        imported_kwh=float(r["imported_kwh"]),
        integrated_kwh=float(r["integrated_kwh"]),
        register_kwh=None if r["register_kwh"] is None else float(r["register_kwh"]),
        peak_kw=float(r["peak_kw"]),
        seconds_over=float(r["seconds_over"]),
        covered_s=float(r["covered_s"]),
        samples=int(r["samples"]),
        awarded_kwh=None if r["awarded_kwh"] is None else float(r["awarded_kwh"]),
        award_id=r["award_id"],
        note=str(r["note"]),
    )
