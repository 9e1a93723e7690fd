"""The control cycle in phases: planning off the event loop, one cycle at a time, wakes
coalesced and never lost, the same decisions on either path; the shared counting rule; the
one owner of unresponsive rigs. Counts and the fake clock only: no wall-clock time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cycle_plant import TEST_RIG, CyclePlant

import minerd.runtime.cycle as cycle_module
from minerd.control.counting import counted_power_w, dispatched
from minerd.control.planner import Plan, PlanConstraints, PlanRig, plan
from minerd.model import RigAction, RigProtocol, RigState
from minerd.runtime.devices import RigInfo
from minerd.runtime.fleet import FleetState
from minerd.runtime.unresponsive import Unresponsive

WAIT_S = 60.0  # generous: only a hung planner thread would take this long


class GatedPlanner:
    """control.planner.plan behind a gate: the test decides when a plan may finish."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.threads: list[str] = []

    def __call__(self, budget_w: float, rigs: Any, constraints: PlanConstraints) -> Plan:
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        if not self.gate.wait(WAIT_S):
            raise AssertionError("the test never opened the planner's gate")
        return plan(budget_w, rigs, constraints)


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedPlanner]:
    g = GatedPlanner()
    monkeypatch.setattr(cycle_module, "plan", g)
    yield g
    g.gate.set()  # never leave a planner thread waiting


def _prepare_step(p: CyclePlant) -> None:
    """CyclePlant.step without its run_once: rigs move, meter and due rigs are read."""
    now = p.clock.now_s() + 1.0
    for r in p.rigs.values():
        r.advance(now, 1.0)
    p.clock.advance(1.0)
    p._tick += 1
    p.read_meter()
    p.read_due_rigs()


async def _until(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, WAIT_S)


@pytest.mark.asyncio
async def test_the_loop_runs_while_a_plan_is_in_flight_and_a_cut_meanwhile_is_not_lost(
    tmp_path: Path, gated: GatedPlanner
) -> None:
    p = CyclePlant(tmp_path, TEST_RIG, n=20)
    gated.gate.set()
    p.run(15)  # warm and settled at full load, planning on this thread
    assert not p.executor.sent or all(c.action is not RigAction.SLEEP for _, c in p.executor.sent)
    gated.gate.clear()
    gated.entered.clear()
    cycle = p.cycle
    before = len(p.results)
    two_more = asyncio.Event()

    def count(_: object) -> None:
        if len(p.results) >= before + 2:
            two_more.set()

    cycle.listeners.append(count)
    _prepare_step(p)
    runner = asyncio.create_task(cycle.run(), name="control-cycle")
    await _until(gated.entered)  # the first cycle's plan is in its thread, held there

    # The loop is free: another coroutine runs, step after step, while the plan waits.
    ticks = 0
    for _ in range(20):
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 20
    assert len(p.results) == before and not runner.done()
    assert gated.threads[-1].startswith("minerd-plan")
    # One cycle at a time: a second cannot start while this one is in flight.
    with pytest.raises(RuntimeError, match="one at a time"):
        cycle.run_once()

    # The operator cuts to a third of the import while the plan is in flight.
    cut_kw = p.true_import_kw() / 3
    cycle.set_operator_cap(cut_kw)
    cycle.set_operator_cap(cut_kw)  # twice: one cycle serves both
    assert cycle.wakes_coalesced == 2

    gated.gate.set()
    # The clock does not move: only the wake can start the next cycle.
    await asyncio.wait_for(two_more.wait(), WAIT_S)
    for _ in range(20):
        await asyncio.sleep(0)  # room for a third cycle, were one to start
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    first, second = p.results[before], p.results[before + 1]
    assert first.decision.limit.limit_kw > cut_kw  # sensed before the cut
    assert second.decision.limit.limit_kw == pytest.approx(cut_kw)
    assert second.decision.shedding
    assert second.dispatch.shed and all(c.action is RigAction.SLEEP for c in second.dispatch.shed)
    assert len(p.results) == before + 2  # no cycle beyond the coalesced one
    assert cycle._plan_pool is None  # run() shut its planner thread down


@pytest.mark.asyncio
async def test_off_the_loop_the_cycle_decides_exactly_as_on_it(tmp_path: Path) -> None:
    """Two identical plants through a settle, a cut and a raise: one plans on the caller's
    thread (run_once), the other in the worker thread (run_once_async)."""
    on = CyclePlant(tmp_path, TEST_RIG, n=20, db_name="on.sqlite")
    off = CyclePlant(tmp_path, TEST_RIG, n=20, db_name="off.sqlite")
    for second in range(60):
        if second in (15, 40):
            limit_kw = on.full_kw * (0.4 if second == 15 else 1.5)
            on.set_limit(limit_kw)
            off.set_limit(limit_kw)
        a = on.step()
        _prepare_step(off)
        b = await off.cycle.run_once_async()
        off.history.append((off.clock.now_s(), off.true_import_kw(), off.limit_kw))
        assert b.decision == a.decision, second
        assert (b.plan is None) == (a.plan is None)
        if a.plan is not None and b.plan is not None:
            assert b.plan.setpoints == a.plan.setpoints
        assert b.dispatch == a.dispatch
    assert on.history == off.history
    sheds = [c for _, c in on.executor.sent if c.action is RigAction.SLEEP]
    wakes = [c for _, c in on.executor.sent if c.action is RigAction.WAKE]
    assert sheds and wakes  # the run did cut and raise
    assert off.cycle._plan_pool is not None
    off.cycle._plan_pool.shutdown()


def _rig(**kw: Any) -> PlanRig:
    base: dict[str, Any] = {"rig_id": "r1", "model": TEST_RIG, "awake": True, "power_w": 2000.0}
    return PlanRig(**(base | kw))


@pytest.mark.parametrize(
    ("kw", "moves", "counted_w"),
    [
        ({}, True, 2000.0),
        ({"maintenance": True}, False, 2000.0),
        ({"unresponsive": True}, False, 3000.0),  # at nominal...
        ({"unresponsive": True, "power_w": 3300.0}, False, 3300.0),  # ...never below reading
        ({"dispatchable": False}, False, 2000.0),
        ({"state": RigState.OFFLINE}, False, 0.0),
    ],
    ids=["hashing", "maintenance", "unresponsive", "unresponsive-above", "fixed", "offline"],
)
def test_the_planner_counts_a_rig_it_does_not_move_as_counting_says(
    kw: dict[str, Any], moves: bool, counted_w: float
) -> None:
    r = _rig(**kw)
    assert dispatched(r) is moves
    assert counted_power_w(r) == counted_w
    sp = plan(0.0, [r], PlanConstraints()).setpoints[0]
    if not moves:  # the planner's own setpoint for it carries the counted power
        assert sp.power_w == counted_w


def test_unresponsive_rigs_have_one_owner_for_the_flag_and_the_retry_clock() -> None:
    infos = [
        RigInfo(r, TEST_RIG.name, "c1", "127.0.0.1", 0, RigProtocol.LUXOS, 1.0, 1.0, 30.0)
        for r in ("a", "b")
    ]
    fleet = FleetState(infos, [])
    u = Unresponsive(fleet)

    def flagged() -> list[bool]:
        return [s.unresponsive for s in fleet.snapshot(0.0).rigs]

    assert u.mark("a", 100.0) is True
    assert u.mark("a", 150.0) is False  # already counted: its clock keeps its start
    assert "a" in u and "b" not in u and len(u) == 1
    assert flagged() == [True, False]
    assert u.due_for_retry(219.0, 120.0) == []
    assert u.due_for_retry(220.0, 120.0) == ["a"]  # 120 s after the first mark
    assert u.due_for_retry(300.0, 120.0) == []  # its clock restarted at 220
    u.release("a")  # the planner may move it again, still tracked
    assert flagged() == [False, False] and "a" in u
    u.mark("a", 310.0)
    assert flagged() == [True, False]
    u.clear("a")
    assert flagged() == [False, False] and "a" not in u
