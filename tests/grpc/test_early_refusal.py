"""Streaming-request calls refused before the server reads a request: the client
gets the exact status, every time.

The server answers with Trailers-Only and, as grpc core's and grpc-go's servers
do, RST_STREAM(NO_ERROR) right after it while the client has not half-closed
(RFC 9113 8.1: stop sending). grpcio's synchronous client and ours report the
server's status whatever the client was doing meanwhile.

grpc.aio's client is not tested here: while one of its writes is in flight as
the status arrives, its core closes the stream for writes (as it does on any
END_STREAM from the server, RST_STREAM or not), the write fails, and grpc.aio
replaces the status with INTERNAL "Failed execute_batch" (grpc/grpc#36066).
grpcio's own servers trigger it the same way; no server can avoid it short of
holding the status back until the client half-closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpc

from .echo import methods

Modules = tuple[ModuleType, ModuleType]
ITERATIONS = 50
TIMEOUT = 10


class RefuseAll(rpc.ServerInterceptor):
    async def intercept_service(
        self, continuation: Any, handler_call_details: rpc.HandlerCallDetails
    ) -> rpc.RpcMethodHandler | None:
        raise rpc.RpcError(rpc.StatusCode.UNAUTHENTICATED, "refused by the interceptor")


async def _refusing_server(pb2: ModuleType, by: str) -> rpc.Server:
    async def refuse(requests: Any, context: rpc.ServerContext) -> Any:
        raise rpc.RpcError(rpc.StatusCode.UNAUTHENTICATED, "refused by the handler")

    m = methods(pb2)
    # With the interceptor, the handlers are never reached.
    server = rpc.Server(interceptors=[RefuseAll()] if by == "interceptor" else [])
    server.add_method(m["Bidi"], refuse)
    server.add_method(m["ClientStream"], refuse)
    await server.start()
    return server


def _grpcio_sync_client(port: int, pb2: ModuleType, pb2_grpc: ModuleType) -> list[str]:
    def requests() -> Iterator[Any]:
        for _ in range(3):
            yield pb2.EchoRequest(message="x")

    codes = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb2_grpc.EchoStub(channel)
        for _ in range(ITERATIONS):
            for kind in ("Bidi", "ClientStream"):
                try:
                    answer = getattr(stub, kind)(requests(), timeout=TIMEOUT)
                    if kind == "Bidi":
                        list(answer)
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(f"{exc.code().name}: {exc.details()}")
    return codes


@pytest.mark.parametrize("by", ["handler", "interceptor"])
async def test_grpcio_client_gets_the_exact_status_every_time(
    echo_modules: Modules, by: str
) -> None:
    pb2, pb2_grpc = echo_modules
    server = await _refusing_server(pb2, by)
    try:
        codes = await asyncio.to_thread(_grpcio_sync_client, server.port, pb2, pb2_grpc)
    finally:
        await server.stop()
    assert codes == [f"UNAUTHENTICATED: refused by the {by}"] * (2 * ITERATIONS)


@pytest.mark.parametrize("by", ["handler", "interceptor"])
async def test_our_client_gets_the_exact_status_every_time(echo_modules: Modules, by: str) -> None:
    pb2, _ = echo_modules
    m = methods(pb2)
    server = await _refusing_server(pb2, by)

    async def requests() -> AsyncIterator[Any]:
        for _ in range(3):
            yield pb2.EchoRequest(message="x")
            await asyncio.sleep(0)

    codes = []
    try:
        async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:
            bidi = channel.stream_stream(m["Bidi"])
            client_stream = channel.stream_unary(m["ClientStream"])
            for _ in range(ITERATIONS):
                for kind in ("Bidi", "ClientStream"):
                    try:
                        if kind == "Bidi":
                            async for _ in bidi(requests(), timeout=TIMEOUT):
                                pass
                        else:
                            await client_stream(requests(), timeout=TIMEOUT)
                        codes.append("OK")
                    except rpc.RpcError as exc:
                        codes.append(f"{exc.code.name}: {exc.details}")
    finally:
        await server.stop()
    assert codes == [f"UNAUTHENTICATED: refused by the {by}"] * (2 * ITERATIONS)
