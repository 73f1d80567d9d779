"""Rich errors (rpc.status) over the wire, h2rpc and grpcio-status on either side."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

import rpc
import rpc.status
from rpc import RpcError, StatusCode

from .echo import methods


def _retry_info() -> error_details_pb2.RetryInfo:
    info = error_details_pb2.RetryInfo()
    info.retry_delay.seconds = 7
    return info


def _rich_error() -> RpcError:
    return rpc.status.to_status(
        StatusCode.RESOURCE_EXHAUSTED, "slow down", [_retry_info()], trailing_metadata={"x-t": "1"}
    )


def _check(status: Any) -> None:
    assert status is not None
    assert status.code == StatusCode.RESOURCE_EXHAUSTED and status.message == "slow down"
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and info.retry_delay.seconds == 7


@pytest.fixture
async def rich_server(echo_modules: tuple[ModuleType, ModuleType]) -> AsyncIterator[rpc.Server]:
    """h2rpc server whose Unary raises the rich error, ServerStream aborts with it after
    one response, and ClientStream answers OK."""
    pb2, _ = echo_modules
    m = methods(pb2)

    async def unary(request: Any, context: rpc.ServerContext) -> Any:
        raise _rich_error()

    async def server_stream(request: Any, context: rpc.ServerContext) -> AsyncIterator[Any]:
        yield pb2.EchoResponse(message="first")
        await context.abort_with_status(_rich_error())

    server = rpc.Server()
    server.add_method(m["Unary"], unary)
    server.add_method(m["ServerStream"], server_stream)
    await server.start()
    yield server
    await server.stop()


async def test_h2rpc_to_h2rpc(
    rich_server: rpc.Server, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, _ = echo_modules
    m = methods(pb2)
    async with rpc.Channel(f"127.0.0.1:{rich_server.port}") as channel:
        with pytest.raises(RpcError) as info:
            await channel.unary_unary(m["Unary"])(pb2.EchoRequest())
        _check(rpc.status.from_error(info.value))
        assert info.value.trailing_metadata is not None
        assert info.value.trailing_metadata["x-t"] == "1"

        call = channel.unary_stream(m["ServerStream"])(pb2.EchoRequest())
        assert (await call.read()).message == "first"
        with pytest.raises(RpcError):
            await call.read()
        _check(await rpc.status.from_call(call))


async def test_grpcio_client_reads_h2rpc_rich_status(
    rich_server: rpc.Server, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = echo_modules
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rich_server.port}") as channel:
        stub = pb2_grpc.EchoStub(channel)
        call = stub.Unary(pb2.EchoRequest())
        with pytest.raises(grpc.aio.AioRpcError):
            await call
        _check(await rpc_status.aio.from_call(call))
        stream = stub.ServerStream(pb2.EchoRequest())
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in stream:
                pass
        _check(await rpc_status.aio.from_call(stream))


async def test_h2rpc_client_reads_grpcio_rich_status(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, pb2_grpc = echo_modules
    m = methods(pb2)

    class Rich(pb2_grpc.EchoServicer):  # type: ignore[misc, name-defined]
        async def Unary(self, request: Any, context: Any) -> Any:
            status = status_pb2.Status(code=StatusCode.RESOURCE_EXHAUSTED, message="slow down")
            status.details.add().Pack(_retry_info())
            await context.abort_with_status(rpc_status.to_status(status))

        async def ClientStream(self, request_iterator: Any, context: Any) -> Any:
            # An OK status may carry details too: they must reach the client.
            async for _ in request_iterator:
                pass
            ok = status_pb2.Status(code=0, message="")
            ok.details.add().Pack(_retry_info())
            context.set_trailing_metadata(
                ((rpc.status.STATUS_DETAILS_KEY, ok.SerializeToString()),)
            )
            return pb2.EchoResponse(message="done")

    server = grpc.aio.server()
    pb2_grpc.add_EchoServicer_to_server(Rich(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with rpc.Channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(RpcError) as info:
                await channel.unary_unary(m["Unary"])(pb2.EchoRequest())
            assert info.value.code is StatusCode.RESOURCE_EXHAUSTED
            _check(rpc.status.from_error(info.value))

            call = channel.stream_unary(m["ClientStream"])([pb2.EchoRequest()])
            assert (await call).message == "done"
            assert await call.code() is StatusCode.OK
            status = await rpc.status.from_call(call)
            assert status is not None and status.code == 0
            assert status.details[0].Is(error_details_pb2.RetryInfo.DESCRIPTOR)
    finally:
        await server.stop(0)
