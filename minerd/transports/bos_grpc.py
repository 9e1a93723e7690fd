"""Braiins OS+ gRPC client: one HTTP/2 channel per rig, one login token reused and renewed.

The token comes from AuthenticationService/Login: in the reply body on current firmware, in
the `authorization` initial-metadata header on older builds (firmware-apis.md 6, gotcha 8);
both are read. Calls carry `authorization: <token>` (bare, no "Bearer"). The token is
renewed before its idle timeout and once on UNAUTHENTICATED; a refused login is a
CommandRejected that says so. Every call runs under the caller's timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import grpc.aio

from minerd.errors import (
    CommandRejected,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    ProtocolError,
)
from minerd.transports.bos_messages import LoginRequest, LoginResponse, method
from minerd.transports.deadline import device_deadline
from minerd.transports.protowire import WireError

__all__ = ["DEFAULT_GRPC_PORT", "BosClient"]

DEFAULT_GRPC_PORT = 50051
DEFAULT_TOKEN_TIMEOUT_S = 3600  # the firmware's idle timeout when the reply omits it
RENEW_MARGIN_S = 60.0  # renew this long before the idle timeout would end the token
LOGIN = method("AuthenticationService", "Login")


def _identity(data: bytes) -> bytes:
    return data


class BosClient:
    """Unary calls to one rig's bos.v1 API; requests and replies are raw protobuf bytes."""

    def __init__(
        self,
        device: str,
        host: str,
        port: int,
        *,
        username: str,
        password: str | None,
        timeout_s: float,
        monotonic_s: Callable[[], float],
    ) -> None:
        self.device = device
        self.endpoint = f"{host}:{port}"
        self._target = f"{host}:{port}"
        self._username = username
        self._password = password
        self._timeout_s = timeout_s
        self._monotonic_s = monotonic_s
        self._channel: grpc.aio.Channel | None = None
        self._token: str | None = None
        self._token_used_s = 0.0
        self._token_timeout_s = float(DEFAULT_TOKEN_TIMEOUT_S)
        self._login_lock = asyncio.Lock()
        self.logins = 0  # how many times a token was taken (tests, metrics)

    def _chan(self) -> grpc.aio.Channel:
        if self._channel is None:
            # One channel, kept: HTTP/2 multiplexes every call of every poll on it.
            # A local subchannel pool: a new channel really reconnects instead of sharing
            # the old one's connection in reconnect backoff (gRPC pools them per process).
            self._channel = grpc.aio.insecure_channel(
                self._target,
                options=[
                    ("grpc.enable_retries", 0),
                    ("grpc.use_local_subchannel_pool", 1),
                    ("grpc.max_reconnect_backoff_ms", 5000),
                ],
            )
        return self._channel

    async def aclose(self) -> None:
        self._token = None
        await self._drop_channel()

    async def call(
        self, path: str, request: bytes, *, auth: bool = True, timeout_s: float | None = None
    ) -> bytes:
        """One unary call; `auth` adds the token (logging in first when needed)."""
        limit_s = self._timeout_s if timeout_s is None else timeout_s
        try:
            async with device_deadline(self.device, self.endpoint, limit_s, _rpc_name(path)):
                return await self._call(path, request, auth)
        except DeviceUnreachable:
            # A channel that failed to connect waits out gRPC's reconnect backoff (up to
            # minutes) before it tries again: drop it, so the rig is reached as soon as it
            # is back. The token is kept: the rig may still know it.
            await self._drop_channel()
            raise

    async def login(self) -> None:
        """Take a token now unless a valid one is kept (a refused login raises here)."""
        async with device_deadline(self.device, self.endpoint, self._timeout_s, _rpc_name(LOGIN)):
            await self._valid_token()

    async def _drop_channel(self) -> None:
        chan, self._channel = self._channel, None
        if chan is not None:
            await chan.close()

    async def _call(self, path: str, request: bytes, auth: bool) -> bytes:
        if not auth:
            data, _ = await self._unary(path, request, ())
            return data
        token = await self._valid_token()
        try:
            data, _ = await self._unary(path, request, (("authorization", token),))
        except grpc.aio.AioRpcError as e:
            if e.code() is not grpc.StatusCode.UNAUTHENTICATED:
                raise self._error(path, e) from e
            # The rig forgot us (reboot, idle timeout): log in again, once.
            self._token = None
            token = await self._valid_token()
            try:
                data, _ = await self._unary(path, request, (("authorization", token),))
            except grpc.aio.AioRpcError as e2:
                raise self._error(path, e2) from e2
        self._token_used_s = self._monotonic_s()
        return data

    async def _unary(
        self, path: str, request: bytes, metadata: tuple[tuple[str, str], ...]
    ) -> tuple[bytes, grpc.aio.Metadata | None]:
        rpc = self._chan().unary_unary(
            path, request_serializer=_identity, response_deserializer=_identity
        )
        try:
            call = rpc(request, metadata=metadata, wait_for_ready=False)
            reply: bytes = await call
            header = await call.initial_metadata() if path == LOGIN else None
        except grpc.aio.AioRpcError as e:
            if e.code() is grpc.StatusCode.UNAUTHENTICATED and path != LOGIN and metadata:
                raise  # the caller logs in again
            raise self._error(path, e) from e
        return reply, header

    async def _valid_token(self) -> str:
        async with self._login_lock:
            now = self._monotonic_s()
            if (
                self._token is not None
                and now - self._token_used_s < self._token_timeout_s - RENEW_MARGIN_S
            ):
                return self._token
            return await self._login()

    async def _login(self) -> str:
        if self._password is None:
            raise CommandRejected(self.device, self.endpoint, "no password configured for login")
        request = LoginRequest(self._username, self._password).encode()
        try:
            reply, header = await self._unary(LOGIN, request, ())
        except CommandRejected as e:
            raise CommandRejected(
                self.device, self.endpoint, f"login as {self._username!r} refused: {e.message}"
            ) from e
        try:
            body = LoginResponse.decode(reply)
        except WireError as e:
            raise ProtocolError(self.device, self.endpoint, f"Login reply: {e}") from e
        token = body.token or _header_token(header)
        if not token:
            raise ProtocolError(self.device, self.endpoint, "Login gave no token")
        self._token = token
        self._token_used_s = self._monotonic_s()
        self._token_timeout_s = float(body.timeout_s or DEFAULT_TOKEN_TIMEOUT_S)
        self.logins += 1
        return token

    def _error(self, path: str, e: grpc.aio.AioRpcError) -> DeviceError:
        code = e.code()
        detail = f"{_rpc_name(path)}: {code.name} {e.details() or ''}".rstrip()
        # CANCELLED here is the server's: one we cancel ourselves raises CancelledError. A
        # server going down (bosminer restarting, the rig powering off) cancels every call
        # on its connection with its GOAWAY: the rig went away, as UNAVAILABLE says.
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return DeviceUnreachable(self.device, self.endpoint, detail)
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return DeviceTimeout(self.device, self.endpoint, detail)
        if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
            return ProtocolError(self.device, self.endpoint, detail)
        return CommandRejected(self.device, self.endpoint, detail)


def _rpc_name(path: str) -> str:
    """The service and method of a gRPC path, e.g. ActionsService/PauseMining."""
    return path.rsplit(".", 1)[-1]


def _header_token(header: grpc.aio.Metadata | None) -> str:
    if header is None:
        return ""
    value = header.get("authorization")
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""
