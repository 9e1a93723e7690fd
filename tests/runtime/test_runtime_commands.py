"""The write-side command layer on a real SQLite store: each command, its repeat, its
conflicts; the audit entry in the same transaction; the site told once per change, after the
commit, on the loop; a storage failure refused whole."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest

from minerd.clock import ManualClock
from minerd.errors import QuotaError, StorageError
from minerd.model import QuotaSource
from minerd.runtime import commands as cmds
from minerd.runtime.commands import (
    Applied,
    NotDurable,
    PinRig,
    ReleaseRig,
    ReplaceSchedule,
    ScheduleBlock,
    SetOperatorCap,
    SetQuota,
    WithdrawQuota,
    execute,
    execute_now,
)
from minerd.runtime.cycle import STATE_OPERATOR_CAP
from minerd.runtime.service import SiteService
from minerd.storage import Database, NotFoundError, QuotaConflict, Stores

START_S = 1_800_000_000.0
GRID = "grid-op"
API = QuotaSource.API


class FakeSite:
    """What the command layer may call on the site: it records each call and what the
    store held at that moment (to show the notice comes after the commit)."""

    def __init__(self, stores: Stores, clock: ManualClock) -> None:
        self.stores = stores
        self.clock = clock
        self.calls: list[tuple[object, ...]] = []
        self.quota_rows_seen: list[int] = []
        self.threads: list[int] = []

    def quotas_changed(self) -> None:
        self.calls.append(("quotas",))
        self.quota_rows_seen.append(len(self.stores.quotas.all()))
        self.threads.append(threading.get_ident())

    def set_operator_cap(self, cap_kw: float | None, by: str) -> None:
        self.calls.append(("cap", cap_kw, by))

    def set_maintenance(self, rig_id: str, on: bool) -> None:
        self.calls.append(("maintenance", rig_id, on))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FakeSite]:
    db = Database(tmp_path / "commands.sqlite")
    yield FakeSite(Stores.open(db), ManualClock(START_S))
    db.close()


def service(site: FakeSite) -> SiteService:
    return cast(SiteService, site)


def audit_actions(site: FakeSite) -> list[tuple[str, str]]:
    return [(e.action, e.subject) for e in reversed(site.stores.audit.query(limit=1000))]


@dataclass(frozen=True)
class Step:
    """One command and what it must do: its outcome (or error), the notices it sends and
    the audit entries it adds."""

    name: str
    command: Any  # Callable[[dict[str, str]], command]: may use ids stored by earlier steps
    created: bool | None = None  # for SetQuota: created (True) or a replay (False)
    error: type[Exception] | None = None
    error_field: str | None = None
    calls: tuple[tuple[object, ...], ...] = ()
    audit: tuple[str, ...] = ()  # actions added
    remember: str | None = None  # store the quota id of the outcome under this name
    advance_s: float = 0.0  # clock moves before the step


def quota(limit_kw: float, **kw: Any) -> Any:
    return lambda ids: SetQuota(limit_kw, GRID, API, **kw)


QUOTA_STEPS = [
    Step(
        "create",
        quota(400.0, idempotency_key="k1"),
        True,
        calls=(("quotas",),),
        audit=("quota.create",),
        remember="q1",
    ),
    Step("repeat with the key", quota(400.0, idempotency_key="k1"), False, advance_s=30.0),
    Step(
        "key reused, other limit",
        quota(450.0, idempotency_key="k1"),
        error=QuotaConflict,
        error_field="idempotency_key",
    ),
    Step(
        "key reused, other end",
        quota(400.0, idempotency_key="k1", end_s=START_S + 900),
        error=QuotaConflict,
        error_field="idempotency_key",
    ),
    Step(
        "key reused, scheduled start",
        quota(400.0, idempotency_key="k1", start_s=START_S + 60),
        error=QuotaConflict,
        error_field="idempotency_key",
    ),
    Step(
        "by reference",
        quota(300.0, reference="R-1", start_s=START_S + 600),
        True,
        calls=(("quotas",),),
        audit=("quota.create",),
        remember="r1",
    ),
    Step("reference repeated", quota(300.0, reference="R-1", start_s=START_S + 600), False),
    Step(
        "reference reused, now",
        quota(300.0, reference="R-1"),
        error=QuotaConflict,
        error_field="reference",
    ),
    Step(
        "end already past", quota(200.0, end_s=START_S + 10.0), error=QuotaError, error_field="end"
    ),
    Step(
        "withdraw",
        lambda ids: WithdrawQuota(ids["q1"], GRID),
        calls=(("quotas",),),
        audit=("quota.withdraw",),
    ),
    Step("withdraw again", lambda ids: WithdrawQuota(ids["q1"], GRID)),
    Step("withdraw unknown", lambda ids: WithdrawQuota("q-nope", GRID), error=NotFoundError),
]

OPERATOR_STEPS = [
    Step(
        "cap set",
        lambda ids: SetOperatorCap(650.0, "ops"),
        calls=(("cap", 650.0, "ops"),),
        audit=("operator_cap.set",),
    ),
    Step("same cap", lambda ids: SetOperatorCap(650.0, "ops")),
    Step(
        "cap lowered",
        lambda ids: SetOperatorCap(500.0, "ops"),
        calls=(("cap", 500.0, "ops"),),
        audit=("operator_cap.set",),
    ),
    Step(
        "cap cleared",
        lambda ids: SetOperatorCap(None, "ops"),
        calls=(("cap", None, "ops"),),
        audit=("operator_cap.clear",),
    ),
    Step("cleared again", lambda ids: SetOperatorCap(None, "ops")),
    Step(
        "pin",
        lambda ids: PinRig("r7", "ops", "psu"),
        calls=(("maintenance", "r7", True),),
        audit=("maintenance.on",),
    ),
    Step("pin again", lambda ids: PinRig("r7", "other", "fan")),
    Step(
        "release",
        lambda ids: ReleaseRig("r7", "ops"),
        calls=(("maintenance", "r7", False),),
        audit=("maintenance.off",),
    ),
    Step("release again", lambda ids: ReleaseRig("r7", "ops")),
]


async def run_steps(site: FakeSite, steps: list[Step], *, off_loop: bool) -> None:
    ids: dict[str, str] = {}
    for step in steps:
        if step.advance_s:
            site.clock.advance(step.advance_s)
        calls_before, audit_before = len(site.calls), audit_actions(site)
        quotas_before = site.stores.quotas.all()
        command = step.command(ids)
        try:
            if off_loop:
                out = await execute(service(site), command)
            else:
                out = execute_now(service(site), command)
        except Exception as exc:
            assert step.error is not None and isinstance(exc, step.error), (step.name, exc)
            if step.error_field is not None:
                assert isinstance(exc, QuotaError) and exc.field == step.error_field, step.name
            assert site.stores.quotas.all() == quotas_before, step.name  # nothing written
        else:
            assert step.error is None, f"{step.name}: expected {step.error}, got {out}"
            if step.created is not None:
                assert out.created is step.created, step.name
                if step.remember:
                    ids[step.remember] = out.quota.quota_id
        assert tuple(site.calls[calls_before:]) == step.calls, step.name
        added = audit_actions(site)[len(audit_before) :]
        assert tuple(a for a, _ in added) == step.audit, step.name


@pytest.mark.asyncio
@pytest.mark.parametrize("off_loop", [True, False], ids=["execute", "execute_now"])
@pytest.mark.parametrize("steps", [QUOTA_STEPS, OPERATOR_STEPS], ids=["quotas", "operator"])
async def test_commands_table(site: FakeSite, steps: list[Step], off_loop: bool) -> None:
    await run_steps(site, steps, off_loop=off_loop)


@pytest.mark.asyncio
async def test_quota_replay_answers_with_the_stored_quota(site: FakeSite) -> None:
    first = await execute(service(site), SetQuota(400.0, GRID, API, idempotency_key="k"))
    site.clock.advance(5.0)
    again = await execute(service(site), SetQuota(400.0, "someone", API, idempotency_key="k"))
    assert again.quota == first.quota and not again.created
    assert len(site.stores.quotas.all()) == 1
    # The quota was committed before the site was told of it.
    assert site.quota_rows_seen == [1]
    [entry] = site.stores.audit.query(action="quota.create")
    assert entry.subject == first.quota.quota_id and entry.actor == GRID
    assert json.loads(entry.detail)["limit_kw"] == 400.0


@pytest.mark.asyncio
async def test_schedule_replaces_what_it_overlaps(site: FakeSite) -> None:
    t = START_S
    day = ReplaceSchedule(
        (
            ScheduleBlock(200.0, t + 600, t + 1200, "d1"),
            ScheduleBlock(250.0, t + 1200, t + 2400, "d2"),
        ),
        "sched",
    )
    first = await execute(service(site), day)
    assert len(first.added) == 2 and first.withdrawn == ()
    revised = ReplaceSchedule((ScheduleBlock(150.0, t + 900, t + 1500),), "sched")
    second = await execute(service(site), revised)
    assert {q.quota_id for q in second.withdrawn} == {q.quota_id for q in first.added}
    assert site.calls == [("quotas",), ("quotas",)]
    assert [a for a, _ in audit_actions(site)] == ["quota.schedule", "quota.schedule"]
    detail = json.loads(site.stores.audit.query(limit=1)[0].detail)
    assert sorted(detail["withdrawn"]) == sorted(q.quota_id for q in first.added)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("blocks", "field_name"),
    [
        ([(200.0, 600, 1200), (250.0, 1000, 2400)], "blocks.1.start"),
        ([(200.0, -600, -10)], "blocks.0.end"),
        ([(200.0, 900, 600)], "blocks.0.end"),
    ],
)
async def test_schedule_refused_whole(
    site: FakeSite, blocks: list[tuple[float, float, float]], field_name: str
) -> None:
    command = ReplaceSchedule(
        tuple(ScheduleBlock(kw, START_S + a, START_S + b) for kw, a, b in blocks), "sched"
    )
    with pytest.raises(QuotaError) as err:
        await execute(service(site), command)
    assert err.value.field == field_name
    assert site.stores.quotas.all() == [] and site.calls == [] and audit_actions(site) == []


def fail_audit(site: FakeSite) -> None:
    """The audit insert fails: whatever the command wrote before it must roll back."""
    with site.stores.db.transaction("test trigger") as conn:
        conn.execute(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit "
            "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
        )


WRITES = [
    ("quota", lambda ids: SetQuota(100.0, GRID, API, idempotency_key="k2")),
    ("withdraw", lambda ids: WithdrawQuota(ids["q"], GRID)),
    (
        "schedule",
        lambda ids: ReplaceSchedule((ScheduleBlock(90.0, START_S + 60, START_S + 600),), "sched"),
    ),
    ("cap", lambda ids: SetOperatorCap(300.0, "ops")),
    ("pin", lambda ids: PinRig("r1", "ops")),
    ("release", lambda ids: ReleaseRig("r2", "ops")),
]


def store_contents(site: FakeSite) -> tuple[object, ...]:
    s = site.stores
    return (
        s.quotas.all(),
        s.state.get_float(STATE_OPERATOR_CAP),
        s.maintenance.all(),
        s.audit.query(limit=1000),
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["audit fails", "read-only"])
@pytest.mark.parametrize(("name", "make"), WRITES, ids=[w[0] for w in WRITES])
async def test_storage_failure_writes_nothing(
    site: FakeSite, fault: str, name: str, make: Any
) -> None:
    q = await execute(service(site), SetQuota(500.0, GRID, API, end_s=START_S + 3600))
    await execute(service(site), PinRig("r2", "ops"))
    await execute(
        service(site),
        ReplaceSchedule((ScheduleBlock(80.0, START_S + 300, START_S + 900),), "sched"),
    )
    site.calls.clear()
    before = store_contents(site)
    if fault == "audit fails":
        fail_audit(site)
    else:
        site.stores.db.query("PRAGMA query_only = ON")
    with pytest.raises(NotDurable) as err:
        await execute(service(site), make({"q": q.quota.quota_id}))
    # The error the API answers with 503, saying why and that nothing was accepted.
    assert isinstance(err.value, StorageError)
    assert "cannot be stored durably" in str(err.value) and "not accepted" in str(err.value)
    if fault == "read-only":
        site.stores.db.query("PRAGMA query_only = OFF")
    assert store_contents(site) == before, name
    assert site.calls == [], name


class Probe:
    """A command that notes where its parts run."""

    what: ClassVar[str] = "probe"
    kept: ClassVar[str] = "nothing"

    def __init__(self) -> None:
        self.applied_on: int | None = None
        self.notified_on: int | None = None

    def apply(self, stores: Stores, now_s: float) -> Applied[float]:
        self.applied_on = threading.get_ident()
        return Applied(now_s, changed=True)

    def notify(self, service: SiteService, value: float) -> None:
        self.notified_on = threading.get_ident()


@pytest.mark.asyncio
async def test_execute_writes_off_the_loop_and_notifies_on_it(site: FakeSite) -> None:
    loop_thread = threading.get_ident()
    probe = Probe()
    assert await execute(service(site), probe) == START_S
    assert probe.applied_on is not None and probe.applied_on != loop_thread
    assert probe.notified_on == loop_thread
    # The real quota command too: the site hears of it on the loop's thread.
    await execute(service(site), SetQuota(100.0, GRID, API))
    assert site.threads == [loop_thread]


@pytest.mark.asyncio
async def test_concurrent_repeats_store_one_quota(site: FakeSite) -> None:
    """Requests with one key racing each other: one stored, the rest answered with it."""
    outs = await asyncio.gather(
        *(
            execute(service(site), SetQuota(250.0, GRID, API, idempotency_key="race"))
            for _ in range(8)
        )
    )
    assert sum(o.created for o in outs) == 1
    assert len({o.quota.quota_id for o in outs}) == 1
    assert site.calls == [("quotas",)]
    assert audit_actions(site) == [("quota.create", outs[0].quota.quota_id)]


def test_cap_key_is_the_cycles() -> None:
    assert cmds.STATE_OPERATOR_CAP == STATE_OPERATOR_CAP
