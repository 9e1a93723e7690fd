"""Throughput of CgminerClient versus a bare asyncio client, same server, same run.

1. A server process answers `summary` (about 1 KB, NUL-terminated, then close) on 8 loopback
   addresses so four-tuples stay apart. Each client runs sequentially and at concurrency
   200 for a fixed time; the figure is requests per second and the ratio to the bare client.
2. Full rig polls against the simulator (200 LuxOS rigs in another process): LuxosRig.read
   (joined summary+stats+power+profileget, repair-ready parse, RigReading) versus a bare
   asyncio request of the same joined command with json.loads only.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import statistics
import time
from collections.abc import Awaitable, Callable

from minerd.transports.cgminer import CgminerClient

SIM_RIGS = 200
SIM_MODEL = "bitmain-s19jpro"
JOINED = b'{"command": "summary+stats+power+profileget"}'

HOSTS = [f"127.0.0.{i}" for i in range(1, 9)]
RUN_S = 1.5  # per round; rounds alternate bare and ours, medians reported
ROUNDS = 3

_SUMMARY = {
    "STATUS": [
        {"STATUS": "S", "When": 1700000000, "Code": 11, "Msg": "Summary", "Description": "x"}
    ],
    "SUMMARY": [
        {
            "Elapsed": 86400,
            "MHS av": 100_000_000.0,
            "MHS 5s": 100_100_000.0,
            "MHS 1m": 100_050_000.0,
            "MHS 5m": 100_020_000.0,
            "MHS 15m": 100_010_000.0,
            "Found Blocks": 0,
            "Getworks": 4321,
            "Accepted": 12345,
            "Rejected": 12,
            "Hardware Errors": 3,
            "Utility": 8.5,
            "Discarded": 100,
            "Stale": 0,
            "Get Failures": 0,
            "Local Work": 1234567,
            "Remote Failures": 0,
            "Network Blocks": 150,
            "Total MH": 8.6e12,
            "Work Utility": 1.4e6,
            "Difficulty Accepted": 1.2e9,
            "Difficulty Rejected": 1.1e6,
            "Difficulty Stale": 0.0,
            "Best Share": 123456789,
            "Device Hardware%": 0.0001,
            "Device Rejected%": 0.09,
            "Pool Rejected%": 0.09,
            "Pool Stale%": 0.0,
            "Last getwork": 1700000000,
        }
    ],
    "id": 1,
}
_REPLY = json.dumps(_SUMMARY).encode() + b"\x00"


def _serve(port: int, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    class Rig(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def data_received(self, data: bytes) -> None:
            assert isinstance(self.t, asyncio.Transport)
            self.t.write(_REPLY)
            self.t.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for host in HOSTS:
            await loop.create_server(Rig, host, port, backlog=4096, reuse_address=True)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _serve_sim(queue: multiprocessing.Queue[list[tuple[str, str, int]]]) -> None:
    from minerd.clock import SystemClock
    from minerd.model import RigProtocol
    from minerd.sim.fleet import RigFleet
    from minerd.sim.spec import RigGroupSpec, SiteSpec, plan_rigs

    async def main() -> None:
        spec = SiteSpec(
            groups=(RigGroupSpec(SIM_MODEL, SIM_RIGS, RigProtocol.LUXOS),),
            rig_port=0,
            base_octet=201,
        )
        fleet = RigFleet(plan_rigs(spec), SystemClock())
        await fleet.start()
        queue.put([(r.rig_id, r.plan.host, fleet.port_of(r)) for r in fleet.rigs.values()])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _bare_poll(host: str, port: int) -> object:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(JOINED)
        data = await reader.read(-1)
    finally:
        writer.close()
    return json.loads(data.rstrip(b"\x00"))


def bench_sim_polls() -> None:
    from minerd.devices.rig_luxos import LuxosRig
    from minerd.profiles import load_rig_model

    queue: multiprocessing.Queue[list[tuple[str, str, int]]] = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve_sim, args=(queue,), daemon=True)
    server.start()
    try:
        rigs_at = queue.get(timeout=30)
        model = load_rig_model(SIM_MODEL)
        rigs = {
            host: LuxosRig(rid, host, model, port, timeout_s=5.0) for rid, host, port in rigs_at
        }
        ports = {host: port for _rid, host, port in rigs_at}
        hosts = list(rigs)

        async def ours(host: str) -> object:
            return await rigs[host].read(0.0)

        async def bare(host: str) -> object:
            return await _bare_poll(host, ports[host])

        async def run() -> None:
            base, mine = await _compare(bare, ours, 200, hosts)
            print(
                f"sim LuxOS rig poll ({SIM_RIGS} rigs), concurrency 200: bare asyncio "
                f"{base:7.0f} polls/s, LuxosRig.read {mine:7.0f} polls/s, ratio {mine / base:.2f}"
            )

        asyncio.run(run())
    finally:
        server.terminate()
        server.join(5)


async def _bare(host: str, port: int) -> object:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b'{"command": "summary"}')
        data = await reader.read(-1)
    finally:
        writer.close()
    return json.loads(data.rstrip(b"\x00"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _measure(
    call: Callable[[str], Awaitable[object]],
    concurrency: int,
    hosts: list[str] = HOSTS,
    run_s: float = RUN_S,
) -> float:
    deadline = time.perf_counter() + run_s
    count = 0

    async def worker(i: int) -> None:
        nonlocal count
        n = i
        while time.perf_counter() < deadline:
            await call(hosts[n % len(hosts)])
            n += 1
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return count / (time.perf_counter() - t0)


async def _compare(
    bare: Callable[[str], Awaitable[object]],
    ours: Callable[[str], Awaitable[object]],
    concurrency: int,
    hosts: list[str],
) -> tuple[float, float]:
    """Medians of alternating rounds, so load from elsewhere hits both sides alike."""
    await _measure(bare, concurrency, hosts, 0.3)  # warm up both ends
    base: list[float] = []
    mine: list[float] = []
    for _ in range(ROUNDS):
        base.append(await _measure(bare, concurrency, hosts))
        mine.append(await _measure(ours, concurrency, hosts))
    return statistics.median(base), statistics.median(mine)


def main() -> None:
    port = _free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(10):
            raise RuntimeError("benchmark server did not start")
        clients = {h: CgminerClient(h, port, timeout_s=5.0, connect_timeout_s=5.0) for h in HOSTS}

        async def ours(host: str) -> object:
            return await clients[host].command("summary")

        async def bare(host: str) -> object:
            return await _bare(host, port)

        async def run() -> None:
            for conc in (1, 200):
                base, mine = await _compare(bare, ours, conc, HOSTS)
                print(
                    f"cgminer summary, concurrency {conc:3d}: bare asyncio {base:7.0f} req/s, "
                    f"CgminerClient {mine:7.0f} req/s, ratio {mine / base:.2f}"
                )

        asyncio.run(run())
    finally:
        server.terminate()
        server.join(5)
    bench_sim_polls()


if __name__ == "__main__":
    main()
