"""The fail-safe shed before exit: every rig it orders to sleep is tried, whatever one of
them raises (a driver bug is not a reason to leave the rest of the site awake)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from minerd.clock import ManualClock, SystemClock
from minerd.control.loop import LoopConfig
from minerd.devices.rig import command_limit_s
from minerd.errors import DeviceTimeout
from minerd.model import (
    FleetSnapshot,
    RigAction,
    RigCommand,
    RigProtocol,
    RigReading,
    RigState,
    RigStatus,
)
from minerd.profiles import load_rig_model
from minerd.runtime.failsafe_shed import REASON, shed_to_failsafe
from minerd.storage import CommandJournal, Database
from minerd.storage.journal import HeldEntry

MODEL = "bitmain-s19jpro"


class _Rig:
    def __init__(self, rig_id: str, error: Exception | None = None) -> None:
        self.rig_id = rig_id
        self.error = error
        self.applied: list[RigCommand] = []

    async def read(self, now_s: float) -> RigReading:
        raise AssertionError("the shed does not read")

    async def apply(self, cmd: RigCommand) -> None:
        self.applied.append(cmd)
        if self.error is not None:
            raise self.error


def _status(rig_id: str) -> RigStatus:
    return RigStatus(
        rig_id=rig_id,
        model=MODEL,
        container="c1",
        host="127.0.0.1",
        port=4028,
        protocol=RigProtocol.LUXOS,
        reading=RigReading(rig_id, 100.0, RigState.HASHING, "", power_w=3000.0),
        fresh=True,
    )


def _loop() -> LoopConfig:
    return LoopConfig(
        margin_kw=0.0,
        aux_base_kw=0.0,
        aux_fraction=0.0,
        ramp_up_kw_per_s=1.0,
        failsafe_limit_kw=0.0,
    )


@pytest.mark.asyncio
async def test_one_rig_raising_anything_leaves_the_others_shed() -> None:
    rigs = {
        "r1": _Rig("r1", ValueError("driver bug")),
        "r2": _Rig("r2", DeviceTimeout("r2", "127.0.0.1:4028", "no answer")),
        "r3": _Rig("r3"),
        "r4": _Rig("r4"),
    }
    model = load_rig_model(MODEL)
    snap = FleetSnapshot(100.0, tuple(_status(r) for r in rigs), ())
    report = await shed_to_failsafe(
        snap,
        {r: model for r in rigs},
        rigs,
        failsafe_limit_kw=0.0,
        loop=_loop(),
        clock=SystemClock(),
    )
    assert all(len(r.applied) == 1 for r in rigs.values())
    assert all(r.applied[0].action is RigAction.SLEEP for r in rigs.values())
    assert (report.sent, report.ok, report.failed) == (4, 2, 2)


@pytest.mark.asyncio
async def test_the_journal_is_written_after_the_commands_with_their_outcomes(
    tmp_path: Path,
) -> None:
    rigs = {"r1": _Rig("r1"), "r2": _Rig("r2", DeviceTimeout("r2", "127.0.0.1:4028", "late"))}
    journal = CommandJournal(Database(tmp_path / "state.db"))
    applied_when_written: list[int] = []
    real_record = journal.record

    def record(entries: list[HeldEntry]) -> list[int]:
        applied_when_written.append(sum(len(r.applied) for r in rigs.values()))
        return real_record(entries)

    journal.record = record  # type: ignore[method-assign,assignment]
    model = load_rig_model(MODEL)
    report = await shed_to_failsafe(
        FleetSnapshot(100.0, tuple(_status(r) for r in rigs), ()),
        {r: model for r in rigs},
        rigs,
        failsafe_limit_kw=0.0,
        loop=_loop(),
        clock=SystemClock(),
        journal=journal,
    )
    assert (report.ok, report.failed) == (1, 1)
    assert applied_when_written == [2]  # one write, once both commands had gone out
    latest = journal.latest_intent_per_rig()
    assert latest["r1"].ok is True and latest["r1"].outcome_at_s is not None
    assert latest["r2"].ok is False and "late" in (latest["r2"].error or "")
    assert latest["r1"].command.reason == REASON


class _HungRig(_Rig):
    """Takes the command and never answers (a stock rig whose web server hangs)."""

    async def apply(self, cmd: RigCommand) -> None:
        self.applied.append(cmd)
        await asyncio.Event().wait()


@pytest.mark.asyncio
async def test_hung_slow_rigs_never_hold_up_the_fast_rigs_sleep() -> None:
    clock = ManualClock()
    stock: dict[str, _Rig] = {f"s{n}": _HungRig(f"s{n}") for n in range(6)}
    rigs = {**stock, "zlux": _Rig("zlux")}
    limits_s = {r: command_limit_s(40.0, 3.0) for r in stock}
    limits_s["zlux"] = command_limit_s(5.0, 3.0)
    model = load_rig_model(MODEL)
    shed = asyncio.create_task(
        shed_to_failsafe(
            FleetSnapshot(100.0, tuple(_status(r) for r in rigs), ()),
            {r: model for r in rigs},
            rigs,
            failsafe_limit_kw=0.0,
            loop=_loop(),
            clock=clock,
            rig_limits_s=limits_s,
            concurrency=4,  # fewer slots than hung rigs
        )
    )
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(rigs["zlux"].applied) == 1  # at once: no slot had to free up first
    clock.advance(limits_s["zlux"] + 1.0)  # past the fast limit: the stock rigs are not cut
    for _ in range(20):
        await asyncio.sleep(0)
    assert not shed.done()
    for _ in range(len(stock)):
        clock.advance(limits_s["s0"])
        for _ in range(20):
            await asyncio.sleep(0)
    report = await shed
    assert all(len(r.applied) == 1 for r in rigs.values())
    assert (report.sent, report.ok, report.failed) == (7, 1, 6)
