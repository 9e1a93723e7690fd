"""CgminerClient against a real local TCP server speaking like rig firmware."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).parent))

from cgminer_fake import SUMMARY, Behaviour, FakeCgminer, Reply, refused_port, status
from waiting import wait_until

from minerd.errors import (
    CommandRejected,
    DeviceTimeout,
    DeviceUnreachable,
    ProtocolError,
)
from minerd.transports.cgminer import CgminerClient

STATS = status(
    code=70,
    msg="CGMiner stats",
    STATS=[{"BMMiner": "1.0.0"}, {"chain_acn1": 63, "chain_rate1": "33.1", "fan1": 5400}],
)

CANNED: dict[str, Reply] = {
    "summary": SUMMARY,
    "stats": STATS,
    "version": status(
        code=22, msg="CGMiner versions", VERSION=[{"CGMiner": "4.11.1", "API": "3.7"}]
    ),
    "broken": b'{"STATUS":[{"STATUS":"S","Code":1,}],"X":[{"v":inf,}{"w":nan}],}\x00',
    "glued": b'{"STATUS":[{"STATUS":"S"}],"A":[1]}{"STATUS":[{"STATUS":"S"}],"B":[2]}\x00',
    "truncated": Behaviour("no-nul", payload=b'{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"Ela'),
    "fatal": status("F", 45, "Access denied to 'restart' command"),
    "invalid": status("E", 14, "Invalid command"),
    "warn": status("W", 9, "No pools"),
    "info": status("I", 8, "Info"),
    "hang": Behaviour("hang"),
    "halfhang": Behaviour("partial-hang", payload=b'{"STATUS":[{"STATUS":"S"}],"SUM'),
    "slow": Behaviour("slow", delay_s=0.3, payload=json.dumps(SUMMARY).encode() + b"\x00"),
    "close": Behaviour("close"),
    "reset": Behaviour("reset"),
    "chunked": Behaviour("chunked", delay_s=0.001, payload=json.dumps(STATS).encode() + b"\x00"),
    "nostatus": b'{"SUMMARY":[]}\x00',
    "array": b"[1,2]\x00",
}


def batching_handler(cmd: str, param: str | None) -> Reply:
    if "+" in cmd:
        parts = cmd.split("+")
        out: dict[str, object] = {
            p: [CANNED.get(p, status("E", 14, "Invalid command"))] for p in parts
        }
        out["id"] = 1
        return out
    return CANNED.get(cmd, status("E", 14, "Invalid command"))


def s19_handler(cmd: str, param: str | None) -> Reply:
    # Stock Antminer S19 rejects joined commands as one invalid command.
    if "+" in cmd:
        return status("E", 14, "Invalid command")
    return CANNED.get(cmd, status("E", 14, "Invalid command"))


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeCgminer]:
    srv = await FakeCgminer(batching_handler).start()
    yield srv
    await srv.stop()


def client(srv: FakeCgminer, **kw: float) -> CgminerClient:
    return CgminerClient("127.0.0.1", srv.port, device="rig-7", **kw)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_summary_parsed_and_status_checked(server: FakeCgminer) -> None:
    reply = await client(server).command("summary")
    assert reply["SUMMARY"][0]["MHS 5s"] == 100_500_000.0  # type: ignore[index]
    assert server.requests == [("summary", None)]


@pytest.mark.asyncio
async def test_parameter_is_sent(server: FakeCgminer) -> None:
    await client(server).command("version", "abc,sleep")
    assert server.requests == [("version", "abc,sleep")]


@pytest.mark.asyncio
async def test_broken_json_is_repaired(server: FakeCgminer) -> None:
    reply = await client(server).command("broken")
    assert reply["X"] == [{"v": None}, {"w": None}]
    glued = await client(server).command("glued")
    assert glued["A"] == [1] and glued["B"] == [2]


@pytest.mark.asyncio
async def test_reply_in_small_chunks(server: FakeCgminer) -> None:
    reply = await client(server).command("chunked")
    assert reply["STATS"][1]["chain_acn1"] == 63  # type: ignore[index]


@pytest.mark.asyncio
async def test_truncated_reply_is_protocol_error(server: FakeCgminer) -> None:
    with pytest.raises(ProtocolError, match="truncated") as info:
        await client(server).command("truncated")
    assert info.value.device == "rig-7"
    assert info.value.endpoint == f"127.0.0.1:{server.port}"


@pytest.mark.asyncio
@pytest.mark.parametrize("cmd", ["nostatus", "array"])
async def test_reply_without_status_is_protocol_error(server: FakeCgminer, cmd: str) -> None:
    with pytest.raises(ProtocolError):
        await client(server).command(cmd)


@pytest.mark.asyncio
@pytest.mark.parametrize(("cmd", "code"), [("fatal", 45), ("invalid", 14)])
async def test_status_e_f_rejected_with_code(server: FakeCgminer, cmd: str, code: int) -> None:
    with pytest.raises(CommandRejected) as info:
        await client(server).command(cmd)
    assert info.value.code == code
    assert f"rig-7 at 127.0.0.1:{server.port}: {cmd}:" in str(info.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("cmd", ["warn", "info"])
async def test_status_w_i_accepted(server: FakeCgminer, cmd: str) -> None:
    reply = await client(server).command(cmd)
    assert reply["STATUS"][0]["STATUS"] in ("W", "I")  # type: ignore[index]


@pytest.mark.asyncio
async def test_hung_rig_times_out_and_socket_is_closed(server: FakeCgminer) -> None:
    # The server never answers: only the client's own 0.2 s timeout ends the call (the outer
    # 30 s bound turns a client that ignored it into a TimeoutError, not a DeviceTimeout).
    with pytest.raises(DeviceTimeout, match=r"no reply within 0\.2s"):
        async with asyncio.timeout(30):
            await client(server, timeout_s=0.2).command("hang")
    # Our side aborted the connection: the server sees it go away.
    await wait_until(lambda: server.open_connections == 0, 10, "the server to see the close")


@pytest.mark.asyncio
async def test_half_reply_then_silence_times_out_saying_so(server: FakeCgminer) -> None:
    with pytest.raises(DeviceTimeout, match=r"reply incomplete \(31 bytes\) within 0\.2s"):
        await client(server, timeout_s=0.2).command("halfhang")


@pytest.mark.asyncio
async def test_slow_rig_within_timeout_ok_else_timeout(server: FakeCgminer) -> None:
    assert "SUMMARY" in await client(server, timeout_s=10.0).command("slow")
    with pytest.raises(DeviceTimeout):
        await client(server, timeout_s=0.1).command("slow")


@pytest.mark.asyncio
async def test_cancel_mid_request_leaks_no_socket(server: FakeCgminer) -> None:
    tasks = [asyncio.create_task(client(server).command("hang")) for _ in range(20)]
    await wait_until(lambda: server.open_connections == 20, 10, "20 requests in flight")
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(t.cancelled() for t in tasks)
    await wait_until(lambda: server.open_connections == 0, 10, "every socket closed")


@pytest.mark.asyncio
async def test_refused_is_unreachable() -> None:
    port = refused_port()
    with pytest.raises(DeviceUnreachable, match=f"rig-1 at 127.0.0.1:{port}: summary"):
        await CgminerClient("127.0.0.1", port, device="rig-1").command("summary")


@pytest.mark.asyncio
async def test_connect_timeout_on_unroutable_backlog() -> None:
    # A listener that never accepts with a full backlog: SYNs are dropped, connect hangs.
    import socket

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            fillers.append(s)
        with pytest.raises((DeviceTimeout, DeviceUnreachable)):
            await CgminerClient("127.0.0.1", port, connect_timeout_s=0.2, timeout_s=1).command(
                "summary"
            )
    finally:
        for s in fillers:
            s.close()
        lsock.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("cmd", ["close", "reset"])
async def test_closed_or_reset_without_reply_is_unreachable(server: FakeCgminer, cmd: str) -> None:
    with pytest.raises(DeviceUnreachable):
        await client(server).command(cmd)


@pytest.mark.asyncio
async def test_batch_joined_in_one_connection(server: FakeCgminer) -> None:
    c = client(server)
    res = await c.batch(["summary", "stats", "power"])
    assert server.connections == 1
    assert res.get("summary")["SUMMARY"][0]["Elapsed"] == 3600  # type: ignore[index]
    assert "STATS" in res.get("stats")
    assert isinstance(res.errors["power"], CommandRejected)
    with pytest.raises(CommandRejected):
        res.get("power")


@pytest.mark.asyncio
async def test_batch_falls_back_and_remembers_per_host() -> None:
    srv = await FakeCgminer(s19_handler).start()
    try:
        c = CgminerClient("127.0.0.1", srv.port, device="s19")
        res = await c.batch(["summary", "stats"])
        assert set(res.replies) == {"summary", "stats"}
        assert [r[0] for r in srv.requests] == ["summary+stats", "summary", "stats"]
        # A new client for the same endpoint does not try batching again.
        res2 = await CgminerClient("127.0.0.1", srv.port).batch(["summary", "stats"])
        assert set(res2.replies) == {"summary", "stats"}
        assert [r[0] for r in srv.requests][3:] == ["summary", "stats"]
        assert not c.batching
        CgminerClient.reset_batching(c.endpoint)
        assert c.batching
    finally:
        CgminerClient.reset_batching(c.endpoint)
        await srv.stop()


@pytest.mark.asyncio
async def test_many_concurrent_requests(server: FakeCgminer) -> None:
    c = client(server)
    replies = await asyncio.gather(*(c.command("summary") for _ in range(300)))
    assert len(replies) == 300 and all("SUMMARY" in r for r in replies)
