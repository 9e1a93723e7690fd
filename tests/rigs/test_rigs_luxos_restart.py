"""After a crash, the restarted daemon commands LuxOS rigs with its predecessor's session.

LuxOS keeps one session per rig for a minute of idleness and refuses every other logon:
without the stored session a restarted daemon could not shed load for up to a minute.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sim_fleet import manual_fleet

from minerd.clock import ManualClock
from minerd.devices.rig_luxos import LuxosRig
from minerd.model import RigAction, RigCommand, RigProtocol, RigState
from minerd.profiles import load_rig_model
from minerd.runtime.sessions import StoredSessions
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec
from minerd.storage import Database, StateStore

MODEL = "bitmain-s19jpro"


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[RigFleet]:
    spec = SiteSpec(groups=(RigGroupSpec(MODEL, 1, RigProtocol.LUXOS),), rig_port=0, base_octet=43)
    async with manual_fleet(spec) as f:
        yield f


def _driver(fleet: RigFleet, sessions: StoredSessions | None) -> LuxosRig:
    sim = next(iter(fleet.rigs.values()))
    model = load_rig_model(MODEL)
    return LuxosRig(
        sim.rig_id, sim.plan.host, model, fleet.port_of(sim), sessions=sessions, clock=fleet.clock
    )


def _sessions(path: Path) -> StoredSessions:
    return StoredSessions(StateStore(Database(path)))


@pytest.mark.asyncio
async def test_restart_reuses_the_stored_session(fleet: RigFleet, tmp_path: Path) -> None:
    db_path = tmp_path / "state.sqlite"
    first = _sessions(db_path)
    before_crash = _driver(fleet, first)
    await before_crash.apply(RigCommand("r", RigAction.SLEEP))
    stored = first.get(before_crash.rig_id)
    assert stored

    # A new process: new driver, sessions read back from the same SQLite file.
    after = _driver(fleet, _sessions(db_path))
    await after.apply(RigCommand("r", RigAction.WAKE))
    assert after.logons == 0  # the inherited session was accepted, no logon needed
    clock = fleet.clock
    assert isinstance(clock, ManualClock)
    clock.advance(after.model.wake_time_s + 5.0)
    reading = await after.read(clock.now_s())
    assert reading.state is RigState.HASHING, reading.reason


@pytest.mark.asyncio
async def test_without_the_stored_session_the_rig_names_it(fleet: RigFleet) -> None:
    # Logging on would get 402 while the old session lives; `session` names it instead.
    crashed = _driver(fleet, None)
    await crashed.apply(RigCommand("r", RigAction.SLEEP))
    fresh = _driver(fleet, None)
    await fresh.apply(RigCommand("r", RigAction.WAKE))
    assert fresh.logons == 0 and fresh.session_recoveries["adopted"] == 1
    assert fleet.rig(fresh.rig_id).awake


def test_state_store_batches_and_prefix_reads(tmp_path: Path) -> None:
    state = StateStore(Database(tmp_path / "kv.sqlite"))
    state.set_many({"luxos.session.a": "s1", "luxos.session.b_x": "s2", "other": 1})
    assert state.with_prefix("luxos.session.") == {
        "luxos.session.a": "s1",
        "luxos.session.b_x": "s2",
    }
    state.set_many({"luxos.session.a": None})
    assert state.with_prefix("luxos.session.") == {"luxos.session.b_x": "s2"}
    # '_' is a LIKE wildcard: it must match only itself.
    assert state.with_prefix("luxos.session.b_") == {"luxos.session.b_x": "s2"}
    assert state.with_prefix("luxos_session") == {}
