"""BosClient's gRPC status mapping against a real grpc.aio server on loopback.

A server that goes down cancels the calls on its connection (GOAWAY "Cancelling all
calls"): the client sees CANCELLED, not UNAVAILABLE, when its call races the shutdown. A
fresh-clone CI run met exactly that (test_a_rig_back_from_offline_is_commanded_at_once);
it is the rig gone away, not a rejected command."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from servers import free_port

from minerd.errors import CommandRejected, DeviceUnreachable
from minerd.transports.bos_grpc import BosClient

PATH = "/braiins.bos.v1.ActionsService/PauseMining"


def _aborting(code: grpc.StatusCode) -> grpc.GenericRpcHandler:
    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(code, "as the server says")
        return b""

    method = grpc.unary_unary_rpc_method_handler(handler)
    return grpc.method_handlers_generic_handler("braiins.bos.v1.ActionsService", {
        "PauseMining": method
    })  # fmt: skip


@pytest_asyncio.fixture(params=[grpc.StatusCode.CANCELLED, grpc.StatusCode.PERMISSION_DENIED])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[int, grpc.StatusCode]]:
    port = free_port()
    srv = grpc.aio.server()
    srv.add_generic_rpc_handlers((_aborting(request.param),))
    srv.add_insecure_port(f"127.0.0.1:{port}")
    await srv.start()
    try:
        yield port, request.param
    finally:
        await srv.stop(None)


@pytest.mark.asyncio
async def test_a_call_the_server_cancels_is_the_rig_gone_away(
    server: tuple[int, grpc.StatusCode],
) -> None:
    port, code = server
    client = BosClient(
        "r1", "127.0.0.1", port, username="root", password=None, timeout_s=5.0,
        monotonic_s=lambda: 0.0,
    )  # fmt: skip
    want = DeviceUnreachable if code is grpc.StatusCode.CANCELLED else CommandRejected
    try:
        with pytest.raises(want) as info:
            await client.call(PATH, b"", auth=False)
        assert code.name in str(info.value) and info.value.endpoint == f"127.0.0.1:{port}"
    finally:
        await client.aclose()
