"""rpc.client.Call through its public face: the status of a streaming call is
known as soon as the server sent it, without iterating the call.

Each test runs against h2rpc's server in memory (``rpc.testing``: the real
server and engines, no socket) and against grpcio's over TCP.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import ModuleType
from typing import Any

import pytest

import rpc
from rpc import RpcError, StatusCode
from rpc.testing.pytest_plugin import ChannelFor

from ..grpc.echo import H2rpcEcho, methods
from ..grpc.pairs import GrpcioServer

TIMEOUT = 10


OpenChannel = Callable[[], AbstractAsyncContextManager[rpc.Channel]]


@pytest.fixture(params=["h2rpc-in-memory", "grpcio"])
async def open_channel(
    request: pytest.FixtureRequest,
    echo_modules: tuple[ModuleType, ModuleType],
    grpc_channel_for: ChannelFor,
) -> AsyncIterator[OpenChannel]:
    """Opens a channel to the Echo service: h2rpc's in memory, or grpcio's over TCP."""
    pb2, pb2_grpc = echo_modules
    if request.param == "h2rpc-in-memory":
        yield lambda: grpc_channel_for([H2rpcEcho(pb2)])
        return
    server = GrpcioServer(pb2, pb2_grpc)
    await server.start()

    @asynccontextmanager
    async def tcp_channel() -> AsyncIterator[rpc.Channel]:
        async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:
            yield channel

    yield tcp_channel
    await server.stop()


def _streaming_call(
    channel: rpc.Channel, pb2: ModuleType, kind: str, *requests: Any
) -> rpc.Call[Any, Any]:
    m = methods(pb2)
    if kind == "unary_stream":
        (request,) = requests
        return channel.unary_stream(m["ServerStream"])(request)
    return channel.stream_stream(m["Bidi"])(list(requests))


async def _status(call: rpc.Call[Any, Any]) -> tuple[StatusCode, str, rpc.Metadata]:
    """code(), details() and trailing_metadata(), each bounded so a hang fails the test."""
    code = await asyncio.wait_for(call.code(), TIMEOUT)
    details = await asyncio.wait_for(call.details(), TIMEOUT)
    trailing = await asyncio.wait_for(call.trailing_metadata(), TIMEOUT)
    return code, details, trailing


@pytest.mark.parametrize("kind", ["unary_stream", "stream_stream"])
async def test_error_status_is_known_without_iterating(
    echo_modules: tuple[ModuleType, ModuleType], open_channel: OpenChannel, kind: str
) -> None:
    pb2, _ = echo_modules
    async with open_channel() as channel:
        request = pb2.EchoRequest(status_code=StatusCode.NOT_FOUND, status_message="no such key")
        call = _streaming_call(channel, pb2, kind, request)
        code, details, _ = await _status(call)
        assert (code, details) == (StatusCode.NOT_FOUND, "no such key")
        assert call.done()
        with pytest.raises(RpcError) as info:
            await asyncio.wait_for(call.read(), TIMEOUT)
        assert info.value.code is StatusCode.NOT_FOUND


@pytest.mark.parametrize("kind", ["unary_stream", "stream_stream"])
async def test_empty_ok_status_is_known_without_iterating(
    echo_modules: tuple[ModuleType, ModuleType], open_channel: OpenChannel, kind: str
) -> None:
    pb2, _ = echo_modules
    async with open_channel() as channel:
        requests = [pb2.EchoRequest(repeat=0)] if kind == "unary_stream" else []
        call = _streaming_call(channel, pb2, kind, *requests)
        code, details, trailing = await _status(call)
        assert (code, details, list(trailing)) == (StatusCode.OK, "", [])
        assert [response async for response in call] == []


@pytest.mark.parametrize("kind", ["unary_stream", "stream_stream"])
async def test_unimplemented_is_known_without_iterating(
    open_channel: OpenChannel, kind: str
) -> None:
    method = rpc.Method("/no.Such/Method", rpc.MethodKind[kind.upper()], bytes, bytes, bytes, bytes)
    async with open_channel() as channel:
        call: rpc.Call[bytes, bytes]
        if kind == "unary_stream":
            call = channel.unary_stream(method)(b"")
        else:
            call = channel.stream_stream(method)([b""])
        code, _, _ = await _status(call)
        assert code is StatusCode.UNIMPLEMENTED


async def test_ok_status_after_messages_leaves_the_messages_to_read(
    echo_modules: tuple[ModuleType, ModuleType], open_channel: OpenChannel
) -> None:
    """Responses that fit in the stream's window arrive with the trailers:
    code() resolves, and iterating afterwards still yields every response."""
    pb2, _ = echo_modules
    async with open_channel() as channel:
        call = channel.unary_stream(methods(pb2)["ServerStream"])(pb2.EchoRequest(repeat=3))
        code, _, _ = await _status(call)
        assert code is StatusCode.OK
        assert [response.index async for response in call] == [0, 1, 2]
        assert await call.read() is None


async def test_error_status_after_messages_leaves_the_messages_to_read(
    echo_modules: tuple[ModuleType, ModuleType], open_channel: OpenChannel
) -> None:
    pb2, _ = echo_modules
    async with open_channel() as channel:
        call = _streaming_call(
            channel,
            pb2,
            "stream_stream",
            pb2.EchoRequest(repeat=2),
            pb2.EchoRequest(status_code=StatusCode.FAILED_PRECONDITION, status_message="late"),
        )
        code, details, _ = await _status(call)
        assert (code, details) == (StatusCode.FAILED_PRECONDITION, "late")
        received = []
        with pytest.raises(RpcError) as info:
            async for response in call:
                received.append(response.index)
        assert received == [0, 1]
        assert info.value.code is StatusCode.FAILED_PRECONDITION


async def test_code_waits_for_a_reader_when_responses_exceed_the_window(
    echo_modules: tuple[ModuleType, ModuleType], open_channel: OpenChannel
) -> None:
    """Beyond the stream's window the server waits for the client to read (as
    with grpc.aio): code() resolves once another task has read the responses."""
    pb2, _ = echo_modules
    async with open_channel() as channel:
        call = channel.unary_stream(methods(pb2)["ServerStream"])(
            pb2.EchoRequest(repeat=100, response_size=100_000)
        )
        code = asyncio.ensure_future(call.code())
        await asyncio.sleep(0)
        count = 0
        async for _ in call:
            count += 1
        assert count == 100
        assert await asyncio.wait_for(code, TIMEOUT) is StatusCode.OK


async def test_code_of_a_streaming_call_ends_at_its_deadline_without_a_reader(
    echo_modules: tuple[ModuleType, ModuleType], open_channel: OpenChannel
) -> None:
    pb2, _ = echo_modules
    async with open_channel() as channel:
        call = channel.unary_stream(methods(pb2)["ServerStream"])(
            pb2.EchoRequest(repeat=100, response_size=100_000), timeout=0.5
        )
        assert await asyncio.wait_for(call.code(), TIMEOUT) is StatusCode.DEADLINE_EXCEEDED


async def test_initial_metadata_of_a_trailers_only_answer_is_empty(
    echo_modules: tuple[ModuleType, ModuleType], open_channel: OpenChannel
) -> None:
    pb2, _ = echo_modules
    async with open_channel() as channel:
        call = channel.unary_stream(methods(pb2)["ServerStream"])(
            pb2.EchoRequest(status_code=StatusCode.NOT_FOUND)
        )
        assert list(await asyncio.wait_for(call.initial_metadata(), TIMEOUT)) == []
        assert await asyncio.wait_for(call.code(), TIMEOUT) is StatusCode.NOT_FOUND


async def test_status_waiters_and_a_reader_share_one_outcome(
    echo_modules: tuple[ModuleType, ModuleType], open_channel: OpenChannel
) -> None:
    """code(), initial_metadata() and read() started together (each may be the
    one receiving the response headers) all see the same call."""
    pb2, _ = echo_modules
    async with open_channel() as channel:
        call = channel.unary_stream(methods(pb2)["ServerStream"])(pb2.EchoRequest(repeat=2))
        code, initial_metadata, first = await asyncio.wait_for(
            asyncio.gather(call.code(), call.initial_metadata(), call.read()), TIMEOUT
        )
        assert code is StatusCode.OK
        assert isinstance(initial_metadata, rpc.Metadata)
        assert first.index == 0
        assert [response.index async for response in call] == [1]


async def test_giving_up_on_the_status_does_not_cancel_the_call() -> None:
    """A timeout around code() while the call still waits for a connection
    leaves the call going (as with grpc.aio); cancel() then ends it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    method = rpc.Method("/t.Raw/Call", rpc.MethodKind.UNARY_STREAM, bytes, bytes, bytes, bytes)
    async with rpc.Channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream(method)(b"", wait_for_ready=True)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call.code(), 0.2)
        assert not call.done()
        assert call.cancel()
        assert await asyncio.wait_for(call.code(), TIMEOUT) is StatusCode.CANCELLED


async def test_a_finished_unary_call_is_freed_without_the_cycle_collector(
    echo_modules: tuple[ModuleType, ModuleType], open_channel: OpenChannel
) -> None:
    """A call must not point at itself through what it owns (its stream's
    owner, its status): each call would then live until the cycle collector
    runs, with its stream and buffers, and cost that collector's time."""
    pb2, _ = echo_modules
    unary = methods(pb2)["Unary"]
    async with open_channel() as channel:
        await asyncio.wait_for(channel.unary_unary(unary)(pb2.EchoRequest()), TIMEOUT)
        gc.collect()
        gc.disable()
        try:
            _, call = await asyncio.wait_for(
                channel.unary_unary(unary).with_call(pb2.EchoRequest(message="m")), TIMEOUT
            )
            assert await call.code() is StatusCode.OK
            freed = weakref.ref(call)
            del call
            assert freed() is None
        finally:
            gc.enable()
