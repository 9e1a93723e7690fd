"""The LuxOS session state machine, against the simulator's firmware rules in-process.

No sockets: each request goes straight to minerd.sim's LuxOS handlers with a ManualClock that
the keeper and the "firmware" share, so 60 s of session life pass in no wall time. Another
tool is played by calling the same handlers between our requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from minerd.clock import ManualClock
from minerd.devices.luxos_session import (
    REUSE_S,
    SESSION_IDLE_S,
    STORE_KEY,
    Recovery,
    SessionKeeper,
)
from minerd.errors import CommandRejected, StorageError
from minerd.model import RigProtocol
from minerd.repeated_log import clear
from minerd.sim import cgminer
from minerd.sim.fleet import RigFleet
from minerd.sim.rig import RigSim
from minerd.sim.spec import RigGroupSpec, SiteSpec, plan_rigs
from minerd.transports.cgminer import check_status

MODEL = "bitmain-s19jpro"
Hook = Callable[[str], None]


class Firmware:
    """One simulated LuxOS rig answering in-process; records every request we send."""

    def __init__(self) -> None:
        spec = SiteSpec(groups=(RigGroupSpec(MODEL, 1, RigProtocol.LUXOS),), rig_port=0)
        self.clock = ManualClock()
        self.rig: RigSim = next(iter(RigFleet(plan_rigs(spec), self.clock).rigs.values()))
        self.sent: list[str] = []
        self.after: dict[str, Hook] = {}  # command -> what another tool does right after it

    async def send(self, command: str, parameter: str | None) -> dict[str, object]:
        self.sent.append(command)
        reply = cgminer.handle(self.rig, command, parameter or "", self.clock.now_s())
        hook = self.after.pop(command, None)
        if hook is not None:
            hook(command)
        check_status(reply, self.rig.rig_id, "in-process", command)
        return reply

    def other_tool_logs_on(self, _command: str = "") -> str:
        sid = self.rig.logon(self.clock.now_s())
        assert sid is not None
        return sid


class MemoryCache:
    def __init__(self, fail: bool = False) -> None:
        self.stored: dict[str, str] = {}
        self.fail = fail
        self.puts = 0

    def get(self, rig_id: str) -> str | None:
        return self.stored.get(rig_id)

    def put(self, rig_id: str, session: str | None) -> None:
        self.puts += 1
        if self.fail:
            raise StorageError("state database: disk I/O error")
        if session is None:
            self.stored.pop(rig_id, None)
        else:
            self.stored[rig_id] = session


def keeper(fw: Firmware, cache: MemoryCache | None = None) -> SessionKeeper:
    return SessionKeeper(fw.rig.rig_id, "in-process", fw.send, fw.clock.monotonic_s, cache=cache)


def no_recoveries(k: SessionKeeper) -> bool:
    return all(n == 0 for n in k.recoveries.values())


@pytest.mark.asyncio
async def test_first_command_asks_then_logs_on_then_reuses_without_asking() -> None:
    fw = Firmware()
    k = keeper(fw)
    await k.run("curtail", "sleep")
    assert fw.sent == ["session", "logon", "curtail"]
    assert not fw.rig.awake
    fw.clock.advance(REUSE_S - 1)
    fw.sent.clear()
    await k.run("curtail", "wakeup")
    assert fw.sent == ["curtail"], "a session used under 50 s ago is used straight away"
    assert k.logons == 1 and no_recoveries(k)


@pytest.mark.asyncio
async def test_idle_between_50_and_60_s_checks_and_keeps_the_live_session() -> None:
    fw = Firmware()
    k = keeper(fw)
    await k.run("curtail", "sleep")
    first = k.sid
    fw.clock.advance(58)
    fw.sent.clear()
    await k.run("curtail", "wakeup")
    # The old driver logged on here and got 402 (issue 12): the rig still held our session.
    assert fw.sent == ["session", "curtail"]
    assert k.sid == first and k.logons == 1 and no_recoveries(k)
    assert fw.rig.awake


@pytest.mark.asyncio
async def test_a_lapse_we_saw_coming_is_routine() -> None:
    fw = Firmware()
    k = keeper(fw)
    await k.run("curtail", "sleep")
    fw.clock.advance(SESSION_IDLE_S + 1)
    fw.sent.clear()
    await k.run("curtail", "wakeup")
    assert fw.sent == ["session", "logon", "curtail"]
    assert k.logons == 2 and no_recoveries(k)


@pytest.mark.asyncio
async def test_402_on_logon_takes_the_live_session_in_the_same_call() -> None:
    fw = Firmware()
    k = keeper(fw)
    theirs: list[str] = []
    # Another tool logs on between our `session` (none) and our `logon`.
    fw.after["session"] = lambda _c: theirs.append(fw.other_tool_logs_on())
    await k.run("curtail", "sleep")
    assert fw.sent == ["session", "logon", "session", "curtail"]
    assert k.sid == theirs[0]
    assert k.recoveries[Recovery.ANOTHER_SESSION] == 1
    assert k.logons == 0 and not fw.rig.awake


@pytest.mark.asyncio
async def test_session_ended_early_is_taken_again_in_the_same_call() -> None:
    fw = Firmware()
    k = keeper(fw)
    await k.run("curtail", "sleep")
    assert k.sid is not None
    assert fw.rig.logoff(k.sid, fw.clock.now_s())  # another tool ended it
    fw.clock.advance(10)
    fw.sent.clear()
    await k.run("curtail", "wakeup")
    assert fw.sent == ["curtail", "session", "logon", "curtail"]
    assert k.recoveries[Recovery.EXPIRED] == 1 and fw.rig.awake


@pytest.mark.asyncio
async def test_session_taken_over_by_another_tool_is_shared() -> None:
    fw = Firmware()
    k = keeper(fw)
    await k.run("curtail", "sleep")
    assert k.sid is not None
    fw.rig.logoff(k.sid, fw.clock.now_s())
    theirs = fw.other_tool_logs_on()
    fw.sent.clear()
    await k.run("curtail", "wakeup")
    assert fw.sent == ["curtail", "session", "curtail"]
    assert k.sid == theirs and k.recoveries[Recovery.ADOPTED] == 1


@pytest.mark.asyncio
async def test_another_tools_session_is_adopted_before_logging_on() -> None:
    fw = Firmware()
    theirs = fw.other_tool_logs_on()
    k = keeper(fw)
    await k.run("profileset", "-1")
    assert fw.sent == ["session", "profileset"]
    assert k.sid == theirs and k.logons == 0
    assert k.recoveries[Recovery.ADOPTED] == 1 and fw.rig.profile == "-1"


@pytest.mark.asyncio
async def test_the_rig_refusing_the_command_itself_is_raised_and_keeps_the_session() -> None:
    fw = Firmware()
    k = keeper(fw)
    await k.run("curtail", "sleep")
    sid = k.sid
    with pytest.raises(CommandRejected, match="Invalid curtail mode"):
        await k.run("curtail", "nap")
    assert k.sid == sid and no_recoveries(k)
    assert fw.sent[-2:] == ["curtail", "session"]


@pytest.mark.asyncio
async def test_recoveries_warn_once_per_rig_then_debug(caplog: pytest.LogCaptureFixture) -> None:
    fw = Firmware()
    # Its own rig id: "once" is per rig for the life of the process.
    k = SessionKeeper("warn-once-rig", "in-process", fw.send, fw.clock.monotonic_s)
    caplog.set_level(logging.DEBUG, logger="minerd.devices.luxos")
    for _ in range(3):
        theirs = fw.other_tool_logs_on()
        await k.run("curtail", "sleep")
        assert k.sid == theirs
        fw.rig.logoff(theirs, fw.clock.now_s())  # the other tool is done
    records = [r for r in caplog.records if r.getMessage() == "LuxOS session recovered"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert k.recoveries[Recovery.ADOPTED] == 3


@pytest.mark.asyncio
async def test_storage_failure_never_fails_a_command(caplog: pytest.LogCaptureFixture) -> None:
    fw = Firmware()
    cache = MemoryCache(fail=True)
    k = keeper(fw, cache)
    clear(logging.getLogger("minerd.devices.luxos"), STORE_KEY)
    caplog.set_level(logging.DEBUG, logger="minerd.devices.luxos")
    await k.run("curtail", "sleep")
    fw.clock.advance(SESSION_IDLE_S + 5)
    await k.run("curtail", "wakeup")  # a new session: a second failed write
    assert cache.puts == 2 and fw.rig.awake
    store = [r for r in caplog.records if "cannot store" in r.getMessage()]
    assert [r.levelno for r in store] == [logging.WARNING, logging.DEBUG]
    await k.close()  # the failing store does not stop the logoff either
    assert fw.rig.active_session(fw.clock.now_s()) is None


@pytest.mark.asyncio
async def test_stored_session_is_checked_then_reused_after_a_restart() -> None:
    fw = Firmware()
    cache = MemoryCache()
    await keeper(fw, cache).run("curtail", "sleep")
    stored = cache.stored[fw.rig.rig_id]
    fw.clock.advance(20)
    fw.sent.clear()
    after = keeper(fw, cache)  # a new process, same store
    await after.run("curtail", "wakeup")
    assert fw.sent == ["session", "curtail"]
    assert after.sid == stored and after.logons == 0 and no_recoveries(after)


@pytest.mark.asyncio
async def test_close_logs_off_unless_the_session_is_already_over() -> None:
    fw = Firmware()
    cache = MemoryCache()
    k = keeper(fw, cache)
    await k.run("curtail", "sleep")
    await k.close()
    assert fw.sent[-1] == "logoff" and fw.rig.active_session(fw.clock.now_s()) is None
    assert cache.stored == {}
    await k.run("curtail", "wakeup")
    fw.clock.advance(SESSION_IDLE_S)
    fw.sent.clear()
    await k.close()
    assert fw.sent == [], "no logoff for a session the rig has already ended"
