"""Worker processes for large sites: each owns a slice of the TCP rigs and its listeners.

One process cannot hold 50,000 listening sockets under a 20,000 open-files limit, so the
site spawns workers. Each connects back to the main process over loopback and speaks
newline-delimited JSON: it pushes its power aggregate every AGGREGATE_INTERVAL_S (every
RAMPING_INTERVAL_S while a rig ramps) and answers requests (truth, inject, clear, stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import pickle
import sys
from dataclasses import dataclass, field

from minerd.clock import ScaledClock, system_clock
from minerd.sim.faults import UnknownDevice, UnknownFault
from minerd.sim.fleet import Aggregate, RigFleet
from minerd.sim.spec import TCP_PROTOCOLS, SiteSpec, plan_rigs

log = logging.getLogger(__name__)

AGGREGATE_INTERVAL_S = 0.5
# The grid meter and the truth sum the workers' last aggregates, taken at different moments.
# 0.5 s apart while rigs ramp, a swap (cuts in one worker, wakes in another) read 6.5 kW
# above a 1,000-rig site that was falling, and swung 30 kW every 0.25 s after it.
RAMPING_INTERVAL_S = 0.05
STREAM_LIMIT = 256 * 1024 * 1024  # a truth reply of 25,000 rigs is a few MB on one line
START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 60.0


class WorkerFailed(RuntimeError):
    pass


@dataclass
class WorkerLink:
    number: int
    lo: int
    hi: int
    process: asyncio.subprocess.Process
    writer: asyncio.StreamWriter | None = None
    ports: dict[str, int] = field(default_factory=dict)
    aggregate: Aggregate | None = None
    pending: dict[int, asyncio.Future[object]] = field(default_factory=dict)
    hello: asyncio.Event = field(default_factory=asyncio.Event)
    lost: bool = False


class WorkerPool:
    def __init__(self, spec: SiteSpec, ranges: list[tuple[int, int]], clock: ScaledClock) -> None:
        self.spec = spec
        self.ranges = ranges
        self.clock = clock
        self.links: list[WorkerLink] = []
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect, "127.0.0.1", 0, limit=STREAM_LIMIT
        )
        port = int(self._server.sockets[0].getsockname()[1])
        sim_origin, wall_origin = self.clock.now_s(), system_clock.now_s()
        for n, (lo, hi) in enumerate(self.ranges):
            # a fresh interpreter per worker: no fork of a running loop, and no re-import of
            # the caller's __main__ (multiprocessing's spawn would need a __main__ guard)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "minerd.sim.workerproc", stdin=asyncio.subprocess.PIPE
            )
            assert proc.stdin is not None
            proc.stdin.write(pickle.dumps((self.spec, lo, hi, port, n, sim_origin, wall_origin)))
            await proc.stdin.drain()
            proc.stdin.close()
            self.links.append(WorkerLink(n, lo, hi, proc))
        async with asyncio.timeout(START_TIMEOUT_S):
            # ready when every worker listens and has reported its first power aggregate
            while not all(link.hello.is_set() and link.aggregate for link in self.links):
                dead = [link.number for link in self.links if link.process.returncode is not None]
                if dead:
                    raise WorkerFailed(f"simulator worker(s) {dead} exited during start")
                await asyncio.sleep(0.1)

    def link_for(self, index: int) -> WorkerLink:
        for link in self.links:
            if link.lo <= index < link.hi:
                return link
        raise UnknownDevice(f"rig index {index} belongs to no worker")

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link: WorkerLink | None = None
        try:
            while line := await reader.readline():
                msg = json.loads(line)
                kind = msg.get("kind")
                if kind == "hello":
                    link = self.links[int(msg["worker"])]
                    link.writer = writer
                    link.ports = {str(k): int(v) for k, v in msg["ports"].items()}
                    link.hello.set()
                elif link is not None and kind == "agg":
                    link.aggregate = Aggregate(
                        taken_at_s=float(msg["t"]),
                        power_w={int(k): float(v) for k, v in msg["power_w"].items()},
                        nominal_w=float(msg["nominal_w"]),
                        rigs=int(msg["rigs"]),
                    )
                elif link is not None and kind == "resp":
                    fut = link.pending.pop(int(msg["id"]), None)
                    if fut is not None and not fut.done():
                        if msg.get("ok"):
                            fut.set_result(msg.get("result"))
                        else:
                            fut.set_exception(_remote_error(str(msg.get("error_kind")), msg))
        finally:
            if link is not None:
                link.lost = True
                for fut in link.pending.values():
                    if not fut.done():
                        fut.set_exception(WorkerFailed(f"worker {link.number} went away"))
            writer.close()

    async def request(self, link: WorkerLink, op: str, **args: object) -> object:
        if link.writer is None or link.lost:
            raise WorkerFailed(f"worker {link.number} is not connected")
        req_id = next(self._ids)
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        link.pending[req_id] = fut
        link.writer.write(json.dumps({"id": req_id, "op": op, **args}).encode() + b"\n")
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            await link.writer.drain()
            return await fut

    async def truth(self) -> list[dict[str, object]]:
        results = await asyncio.gather(*(self.request(link, "truth") for link in self.links))
        rigs: list[dict[str, object]] = []
        for part in results:
            if isinstance(part, list):
                rigs.extend(part)
        return rigs

    async def close(self) -> None:
        for link in self.links:
            if link.writer is not None and not link.lost:
                with contextlib.suppress(Exception):
                    link.writer.write(b'{"id": 0, "op": "stop"}\n')
        for link in self.links:
            proc = link.process
            try:
                await asyncio.wait_for(proc.wait(), 10.0)
            except TimeoutError:
                if proc.returncode is None:
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 5.0)
                except TimeoutError:
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()
        if self._server is not None:
            self._server.close()


def _remote_error(kind: str, msg: dict[str, object]) -> Exception:
    text = str(msg.get("error", "worker error"))
    if kind == "UnknownDevice":
        return UnknownDevice(text)
    if kind == "UnknownFault":
        return UnknownFault(text)
    return WorkerFailed(text)


# ---------------------------------------------------------------- the worker side


def worker_main() -> None:
    """Entry point of a worker process: its arguments arrive pickled on stdin from the site."""
    spec, lo, hi, port, number, sim_origin, wall_origin = pickle.load(sys.stdin.buffer)
    if not isinstance(spec, SiteSpec):
        raise SystemExit("minerd.sim.workers: expected a SiteSpec on stdin")
    asyncio.run(_worker(spec, lo, hi, port, number, sim_origin, wall_origin))


async def _worker(
    spec: SiteSpec,
    lo: int,
    hi: int,
    port: int,
    number: int,
    sim_origin: float,
    wall_origin: float,
) -> None:
    clock = ScaledClock(
        spec.speed, origin_s=sim_origin + (system_clock.now_s() - wall_origin) * spec.speed
    )
    plans = [p for p in plan_rigs(spec)[lo:hi] if p.protocol in TCP_PROTOCOLS]
    fleet = RigFleet(plans, clock, spec.ambient_c)
    await fleet.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=STREAM_LIMIT)
    ports = {r.rig_id: fleet.port_of(r) for r in fleet.rigs.values()} if spec.rig_port == 0 else {}
    writer.write(json.dumps({"kind": "hello", "worker": number, "ports": ports}).encode() + b"\n")
    lock = asyncio.Lock()

    async def send(msg: dict[str, object]) -> None:
        async with lock:
            writer.write(json.dumps(msg).encode() + b"\n")
            await writer.drain()

    async def push_aggregates() -> None:
        while True:
            agg = fleet.aggregate()
            await send(
                {
                    "kind": "agg",
                    "t": agg.taken_at_s,
                    "power_w": {str(k): v for k, v in agg.power_w.items()},
                    "nominal_w": agg.nominal_w,
                    "rigs": agg.rigs,
                    "ramping": agg.ramping,
                }
            )
            await asyncio.sleep(RAMPING_INTERVAL_S if agg.ramping else AGGREGATE_INTERVAL_S)

    pusher = asyncio.create_task(push_aggregates(), name="sim-worker-aggregates")
    try:
        while line := await reader.readline():
            req = json.loads(line)
            op = req.get("op")
            if op == "stop":
                break
            reply: dict[str, object] = {"kind": "resp", "id": req.get("id"), "ok": True}
            try:
                if op == "truth":
                    reply["result"] = fleet.truth()
                elif op == "inject":
                    await fleet.inject(str(req["device"]), str(req["fault"]))
                elif op == "clear":
                    device = req.get("device")
                    await fleet.clear(None if device is None else str(device))
                else:
                    raise UnknownFault(f"unknown worker op {op!r}")
            except (UnknownDevice, UnknownFault) as exc:
                reply.update(ok=False, error=str(exc), error_kind=type(exc).__name__)
            await send(reply)
    finally:
        pusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pusher
        await fleet.close()
        writer.close()
