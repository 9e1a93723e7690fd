"""Simulated Braiins OS+ gRPC `bos.v1` on 50051, one grpc.aio server per rig on its own
loopback address. Reference: firmware-apis.md sections 6 and 6.1.

- AuthenticationService/Login: the token in the reply body and in the `authorization`
  initial-metadata header (pyasic reads only the header); wrong login -> UNAUTHENTICATED.
  A token ends after TOKEN_TIMEOUT_S of sim time without use; every call refreshes it.
- Every other call but ApiVersionService/GetApiVersion needs `authorization: <token>`
  (bare) or is refused UNAUTHENTICATED.
- ActionsService/PauseMining, ResumeMining -> rig.command_sleep / command_wake;
  PerformanceService/SetPowerTarget -> rig.command_power_limit (the firmware clamps to the
  model's range and echoes the target); SetQuickRamping kept and echoed.
- Reads: MinerService/GetMinerStats, GetMinerDetails; PerformanceService/
  GetActivePerformanceMode.
Faults: hung (never answers), slow (answers after SLOW_REPLY_S wall), ignores_commands (answers
success, the rig does nothing: RigSim ignores it); offline is the fleet closing the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable

import grpc
import grpc.aio

from minerd.clock import Clock
from minerd.sim.family_base import SIM_LOGINS, FamilyListeners
from minerd.sim.rig import RigSim
from minerd.sim.rigserver import HUNG_HOLD_S, SLOW_REPLY_S
from minerd.transports.bos_messages import (
    PACKAGE,
    ActionResponse,
    ApiVersion,
    LoginRequest,
    LoginResponse,
    MinerDetails,
    MinerStats,
    MinerStatus,
    PowerTargetMode,
    QuickRamping,
    SetPowerTargetRequest,
    SetQuickRampingRequest,
)
from minerd.transports.protowire import WireError

__all__ = ["API_VERSION", "TOKEN_TIMEOUT_S", "BraiinsListeners", "BraiinsServer", "listeners"]

TOKEN_TIMEOUT_S = 3600  # firmware: a session token ends after an hour without use
API_VERSION = ApiVersion(1, 5, 0)
BOS_VERSION = "2025-03-18-0-5a1c0d2e-25.03-plus"  # date-n-commit-version-plus, as firmware sends
DEFAULT_RAMPING = QuickRamping(up_s=30, down_s=5)

Handler = Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]


def _identity(data: bytes) -> bytes:
    return data


class BraiinsServer:
    """The bos.v1 API of one simulated rig."""

    def __init__(self, rig: RigSim, clock: Clock) -> None:
        self.rig = rig
        self.clock = clock
        self.tokens: dict[str, float] = {}  # token -> sim time of last use
        self.ramping = DEFAULT_RAMPING
        self.logins = 0
        self.server: grpc.aio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers(self._handlers())
        try:
            bound = server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:  # grpcio raises here where older releases returned 0
            raise OSError(f"braiins sim: cannot bind {host}:{port}: {exc}") from exc
        if bound == 0:
            raise OSError(f"braiins sim: cannot bind {host}:{port}")
        await server.start()
        self.server = server
        return bound

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop(grace=None)

    def _handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        def service(
            name: str, methods: dict[str, Handler], *, package: str = PACKAGE
        ) -> grpc.GenericRpcHandler:
            return grpc.method_handlers_generic_handler(
                f"{package}.{name}",
                {
                    m: grpc.unary_unary_rpc_method_handler(
                        self._wrap(
                            fn, public=name in ("AuthenticationService", "ApiVersionService")
                        ),
                        request_deserializer=_identity,
                        response_serializer=_identity,
                    )
                    for m, fn in methods.items()
                },
            )

        return (
            service("AuthenticationService", {"Login": self.login}),
            service(
                "ApiVersionService", {"GetApiVersion": self.api_version}, package="braiins.bos"
            ),
            service("ActionsService", {"PauseMining": self.pause, "ResumeMining": self.resume}),
            service(
                "PerformanceService",
                {
                    "SetPowerTarget": self.set_power_target,
                    "SetQuickRamping": self.set_quick_ramping,
                    "GetActivePerformanceMode": self.active_mode,
                },
            ),
            service(
                "MinerService",
                {"GetMinerStats": self.miner_stats, "GetMinerDetails": self.miner_details},
            ),
            # pyasic's get_data fails without it; the sim has no pool/cooling/tuner config
            # to report, so the reply is the empty message (every field at its default).
            service("ConfigurationService", {"GetMinerConfiguration": self.empty}),
        )

    def _wrap(self, fn: Handler, *, public: bool) -> Handler:
        async def handle(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            faults = self.rig.faults
            if "hung" in faults:
                await asyncio.sleep(HUNG_HOLD_S)
                await context.abort(grpc.StatusCode.UNAVAILABLE, "hung")
            if "slow" in faults:
                await asyncio.sleep(SLOW_REPLY_S)
            if not public and not self._authorized(context):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid or expired token")
            try:
                return await fn(request, context)
            except WireError as e:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad request: {e}")
                raise  # abort raises; this line keeps mypy sure nothing returns

        return handle

    def _authorized(self, context: grpc.aio.ServicerContext[bytes, bytes]) -> bool:
        token = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                token = value.decode() if isinstance(value, bytes) else value
        now = self.clock.now_s()
        for known, used in list(self.tokens.items()):
            if now - used >= TOKEN_TIMEOUT_S:
                del self.tokens[known]
        if not token or token not in self.tokens:
            return False
        self.tokens[token] = now
        return True

    # ------------------------------------------------------------ RPCs

    async def login(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        req = LoginRequest.decode(request)
        user, password = SIM_LOGINS["braiins"]
        ok_user = secrets.compare_digest(req.username, user)
        if not (ok_user and secrets.compare_digest(req.password, password)):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid username or password")
        token = secrets.token_urlsafe(16)
        self.tokens[token] = self.clock.now_s()
        self.logins += 1
        await context.send_initial_metadata((("authorization", token),))
        return LoginResponse(token, TOKEN_TIMEOUT_S).encode()

    async def empty(self, request: bytes, context: object) -> bytes:
        return b""

    async def api_version(self, request: bytes, context: object) -> bytes:
        return API_VERSION.encode()

    async def pause(self, request: bytes, context: object) -> bytes:
        already = not self.rig.awake
        self.rig.command_sleep(self.clock.now_s())
        return ActionResponse(already).encode()

    async def resume(self, request: bytes, context: object) -> bytes:
        already = self.rig.awake
        self.rig.command_wake(self.clock.now_s())
        return ActionResponse(already).encode()

    async def set_power_target(self, request: bytes, context: object) -> bytes:
        req = SetPowerTargetRequest.decode(request)
        self.rig.command_power_limit(float(req.watt), self.clock.now_s())
        m = self.rig.model
        # The firmware answers with the target it took: the request clamped to the range.
        echoed = round(min(m.max_power_w, max(m.min_power_w, float(req.watt))))
        return PowerTargetMode(echoed).encode()

    async def set_quick_ramping(self, request: bytes, context: object) -> bytes:
        req = SetQuickRampingRequest.decode(request)
        if "ignores_commands" not in self.rig.faults:
            self.ramping = QuickRamping(req.up_s, req.down_s)
        return QuickRamping(req.up_s, req.down_s).encode()

    async def active_mode(self, request: bytes, context: object) -> bytes:
        limit = self.rig.power_limit_w
        watt = round(limit if limit is not None else self.rig.model.nominal_power_w)
        return PowerTargetMode(watt).encode_performance_mode()

    async def miner_stats(self, request: bytes, context: object) -> bytes:
        v = self.rig.view(self.clock.now_s())
        ghs = v.hashrate_ths * 1000.0
        return MinerStats(
            power_w=round(v.power_w),
            hashrate_5s_ghs=ghs,
            hashrate_1m_ghs=ghs,
            nominal_ghs=self.rig.model.nominal_hashrate_ths * 1000.0,
        ).encode()

    async def miner_details(self, request: bytes, context: object) -> bytes:
        now = self.clock.now_s()
        v = self.rig.view(now)
        rig = self.rig
        return MinerDetails(
            uid=f"sim-{rig.rig_id}",
            miner_model=rig.model.model,
            hostname=rig.rig_id,
            bos_version=BOS_VERSION,
            status=MinerStatus.NORMAL if rig.awake else MinerStatus.PAUSED,
            bosminer_uptime_s=round(v.uptime_s),
            system_uptime_s=round(max(0.0, now - rig.started_s)),
        ).encode()


class BraiinsListeners:
    """One BraiinsServer per Braiins rig (FamilyListeners)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.servers: dict[str, BraiinsServer] = {}
        self.ports: dict[str, int] = {}
        self._stopping: dict[str, asyncio.Task[None]] = {}

    async def open(self, rig: RigSim) -> int:
        stopping = self._stopping.pop(rig.rig_id, None)
        if stopping is not None:
            with contextlib.suppress(Exception):
                await stopping  # let a fixed port go before binding it again
        old = self.servers.get(rig.rig_id)
        srv = BraiinsServer(rig, self.clock)
        if old is not None:
            srv.tokens = old.tokens  # a restarted listener is the same firmware: tokens live on
        port = await srv.start(rig.plan.host, rig.plan.family_port)
        self.servers[rig.rig_id] = srv
        self.ports[rig.rig_id] = port
        return port

    def port_of(self, rig_id: str) -> int | None:
        return self.ports.get(rig_id)

    def close(self, rig_id: str) -> None:
        srv = self.servers.get(rig_id)
        self.ports.pop(rig_id, None)
        if srv is None or srv.server is None:
            return
        self._stopping[rig_id] = asyncio.get_running_loop().create_task(srv.stop())

    async def close_all(self) -> None:
        for rig_id in list(self.servers):
            self.close(rig_id)
        tasks = list(self._stopping.values())
        self._stopping.clear()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def listeners(clock: Clock) -> FamilyListeners:
    return BraiinsListeners(clock)
