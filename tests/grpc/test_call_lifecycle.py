"""Client call lifecycles found wrong in review: no hang, no leaked stream, right status.

Call semantics, not sockets: each test talks to its server in memory
(``grpc_channel_for``, :mod:`rpc.testing`), through the real client, server
and HTTP/2 engines. The TCP path is covered by the connectivity, interop,
TLS and keepalive tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

import rpc
import rpc.core
from rpc import RpcError, StatusCode
from rpc.core.memory import memory_connector
from rpc.protocol.framing import encode_frame
from rpc.testing import MEMORY_TARGET
from rpc.testing.pytest_plugin import ChannelFor

from .echo import methods

TIMEOUT = 10


def _server(pb2: ModuleType, handlers: dict[str, Any], **options: Any) -> rpc.Server:
    """A server for ``grpc_channel_for`` (not listening: it serves in memory)."""
    server = rpc.Server(**options)
    for name, handler in handlers.items():
        server.add_method(methods(pb2)[name], handler)
    return server


def _no_open_streams(channel: rpc.Channel) -> bool:
    conn = channel.ready_connection()
    return conn is None or conn.open_streams == 0


async def test_request_iterator_raising_cancels_the_call(
    echo_modules: tuple[ModuleType, ModuleType],
    grpc_channel_for: ChannelFor,
) -> None:
    pb2, _ = echo_modules

    async def collect(requests: AsyncIterator[Any], context: rpc.ServerContext) -> Any:
        async for _ in requests:
            pass
        return pb2.EchoResponse()

    server = _server(pb2, {"ClientStream": collect})
    async with grpc_channel_for(server) as channel:
        for failure in (ValueError("boom"), RpcError(StatusCode.UNAVAILABLE, "upstream")):

            async def requests(failure: Exception = failure) -> AsyncIterator[Any]:
                yield pb2.EchoRequest()
                raise failure

            call = channel.stream_unary(methods(pb2)["ClientStream"])(requests())
            with pytest.raises(RpcError) as info:
                await asyncio.wait_for(call, TIMEOUT)
            assert info.value.code is StatusCode.CANCELLED
            assert call.done()
        assert _no_open_streams(channel)
    await server.stop()


async def test_server_answering_early_is_ok_and_keeps_its_responses(
    echo_modules: tuple[ModuleType, ModuleType],
    grpc_channel_for: ChannelFor,
) -> None:
    pb2, _ = echo_modules

    async def answer_first(requests: AsyncIterator[Any], context: rpc.ServerContext) -> Any:
        first = await requests.__anext__()
        yield pb2.EchoResponse(message=f"only-{first.message}")
        yield pb2.EchoResponse(message="second")

    server = _server(pb2, {"Bidi": answer_first})
    async with grpc_channel_for(server) as channel:

        async def many() -> AsyncIterator[Any]:
            for i in range(1000):
                yield pb2.EchoRequest(message=str(i), payload=b"p" * 1000)
                await asyncio.sleep(0)

        call = channel.stream_stream(methods(pb2)["Bidi"])(many())
        messages = [r.message async for r in call]
        assert messages == ["only-0", "second"]
        assert await call.code() is StatusCode.OK
        await call.write(pb2.EchoRequest())  # dropped, not an error: the call is over
        await call.done_writing()
    await server.stop()


async def test_cancel_while_waiting_for_a_stream_slot(
    echo_modules: tuple[ModuleType, ModuleType],
    grpc_channel_for: ChannelFor,
) -> None:
    pb2, _ = echo_modules
    started: list[str] = []

    async def slow(request: Any, context: rpc.ServerContext) -> Any:
        started.append(request.message)
        await asyncio.sleep(0.5)
        return pb2.EchoResponse(message=request.message)

    server = _server(pb2, {"Unary": slow}, max_concurrent_streams=1)
    async with grpc_channel_for(server) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        first = asyncio.create_task(unary(pb2.EchoRequest(message="first")))
        await asyncio.sleep(0.1)
        stream = channel.unary_stream(methods(pb2)["ServerStream"])
        waiting = stream(pb2.EchoRequest(message="second"))
        reader = asyncio.create_task(waiting.read())
        await asyncio.sleep(0.1)
        assert waiting.cancel()
        with pytest.raises(RpcError) as info:
            await asyncio.wait_for(reader, 1)
        assert info.value.code is StatusCode.CANCELLED
        assert (await first).message == "first"
        assert (await unary(pb2.EchoRequest(message="third"), timeout=TIMEOUT)).message == "third"
        assert started == ["first", "third"]
        assert _no_open_streams(channel)
    await server.stop()


async def test_request_serializer_error_ends_the_call(
    echo_modules: tuple[ModuleType, ModuleType],
    grpc_channel_for: ChannelFor,
) -> None:
    pb2, _ = echo_modules
    server = _server(pb2, {})
    async with grpc_channel_for(server) as channel:
        call = channel.unary_stream(methods(pb2)["ServerStream"])(object())  # type: ignore[arg-type]
        for _ in range(2):
            with pytest.raises(RpcError) as info:
                await asyncio.wait_for(call.read(), TIMEOUT)
            assert info.value.code is StatusCode.INTERNAL
        assert await call.code() is StatusCode.INTERNAL
        assert _no_open_streams(channel)
    await server.stop()


async def test_cancelling_the_awaiting_task_cancels_the_call(
    echo_modules: tuple[ModuleType, ModuleType],
    grpc_channel_for: ChannelFor,
) -> None:
    pb2, _ = echo_modules
    cancelled = asyncio.Event()

    async def forever(requests: AsyncIterator[Any], context: rpc.ServerContext) -> Any:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = _server(pb2, {"ClientStream": forever})
    async with grpc_channel_for(server) as channel:
        call = channel.stream_unary(methods(pb2)["ClientStream"])()
        await call.write(pb2.EchoRequest())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call, 0.3)
        assert call.done() and await call.code() is StatusCode.CANCELLED
        await asyncio.wait_for(cancelled.wait(), TIMEOUT)
    await server.stop()


async def test_handler_swallowing_the_deadline_still_reports_it(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules

    async def stubborn(request: Any, context: rpc.ServerContext) -> Any:
        # Bad manners, but the status must still say DEADLINE_EXCEEDED.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(5)
        return pb2.EchoResponse(message="too late")

    server = _server(pb2, {"Unary": stubborn})
    # A bare HTTP/2 client with no deadline of its own shows the server's status.
    conn = await rpc.core.open_connection(
        "in-memory", 0, connector=memory_connector(server.connection_factory())
    )
    stream_id = await conn.start_request(
        {
            ":method": "POST",
            ":path": methods(pb2)["Unary"].path,
            "content-type": "application/grpc",
            "te": "trailers",
            "grpc-timeout": "300m",
        }
    )
    await conn.send_data(stream_id, encode_frame(b""), end_stream=True)
    headers = dict(await conn.recv_response(stream_id))
    assert await conn.read_stream(stream_id, -1) == b""  # no "too late" response
    trailers = dict(await conn.recv_trailers(stream_id)) or headers
    assert trailers["grpc-status"] == str(int(StatusCode.DEADLINE_EXCEEDED))
    await conn.close_connection()
    await server.stop()


async def test_ok_without_a_message_on_a_unary_call_is_reported_consistently(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules

    async def on_connected(conn: rpc.core.Connection) -> None:
        stream_id, _ = await conn.recv_request()
        await conn.read_stream(stream_id, -1)
        await conn.start_response(
            stream_id,
            {
                ":status": "200",
                "content-type": "application/grpc",
                "grpc-status": "0",
            },
            end_stream=True,
        )

    connector = memory_connector(rpc.core.server_connection_factory(on_connected))
    async with rpc.Channel(MEMORY_TARGET, connector=connector) as channel:
        call = channel.stream_unary(methods(pb2)["ClientStream"])([pb2.EchoRequest()])
        with pytest.raises(RpcError) as info:
            await call
        assert info.value.code is StatusCode.UNIMPLEMENTED
        assert await call.code() is StatusCode.UNIMPLEMENTED


async def test_grpc_timeout_tells_the_time_left_after_waiting_for_a_slot(
    echo_modules: tuple[ModuleType, ModuleType],
    grpc_channel_for: ChannelFor,
) -> None:
    pb2, _ = echo_modules
    remaining: list[float | None] = []

    async def slow(request: Any, context: rpc.ServerContext) -> Any:
        remaining.append(context.time_remaining())
        await asyncio.sleep(float(request.message or 0))
        return pb2.EchoResponse()

    server = _server(pb2, {"Unary": slow}, max_concurrent_streams=1)
    async with grpc_channel_for(server) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        await unary(pb2.EchoRequest())  # connected, and the server's limit is known
        first = asyncio.create_task(unary(pb2.EchoRequest(message="1.0")))
        await asyncio.sleep(0.1)
        await unary(pb2.EchoRequest(), timeout=5)  # waits ~0.9 s for the only slot
        await first
    assert remaining[2] is not None and remaining[2] < 4.5
    await server.stop()


async def test_closing_the_channel_while_connecting_fails_calls_with_unavailable(
    echo_modules: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    pb2, _ = echo_modules

    async def never_connects(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(60)

    monkeypatch.setattr(rpc.core, "open_connection", never_connects)
    channel = rpc.Channel("127.0.0.1:1", connect_timeout=60)
    call = asyncio.create_task(channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest()))
    await asyncio.sleep(0.05)
    await channel.close()
    with pytest.raises(RpcError) as info:
        await asyncio.wait_for(call, TIMEOUT)
    assert info.value.code is StatusCode.UNAVAILABLE


def _hold_the_only_stream(
    pb2: ModuleType,
) -> tuple[rpc.Server, asyncio.Event, asyncio.Event]:
    """A server with one stream slot and a unary handler that holds it until released."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold(request: Any, context: rpc.ServerContext) -> Any:
        holding.set()
        await release.wait()
        return pb2.EchoResponse(message=request.message)

    async def echo(requests: AsyncIterator[Any], context: rpc.ServerContext) -> Any:
        async for request in requests:
            yield pb2.EchoResponse(message=request.message)

    server = _server(pb2, {"Unary": hold, "Bidi": echo}, max_concurrent_streams=1)
    return server, holding, release


async def _let_run(steps: int = 20) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)


async def test_operations_waiting_for_the_stream_to_open_all_go_on(
    echo_modules: tuple[ModuleType, ModuleType],
    grpc_channel_for: ChannelFor,
) -> None:
    """write, read and initial_metadata issued while the stream waits for a slot
    each wait for the one opening, then proceed on that same stream."""
    pb2, _ = echo_modules
    server, holding, release = _hold_the_only_stream(pb2)
    async with grpc_channel_for(server) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        first = asyncio.create_task(unary(pb2.EchoRequest(message="first"), timeout=TIMEOUT))
        await asyncio.wait_for(holding.wait(), TIMEOUT)
        call = channel.stream_stream(methods(pb2)["Bidi"])()
        writer = asyncio.create_task(call.write(pb2.EchoRequest(message="a")))
        reader = asyncio.create_task(call.read())
        metadata = asyncio.create_task(call.initial_metadata())
        await _let_run()
        assert not (writer.done() or reader.done() or metadata.done())
        release.set()
        await asyncio.wait_for(writer, TIMEOUT)
        assert (await asyncio.wait_for(reader, TIMEOUT)).message == "a"
        assert isinstance(await asyncio.wait_for(metadata, TIMEOUT), rpc.Metadata)
        await call.done_writing()
        assert await asyncio.wait_for(call.read(), TIMEOUT) is None
        assert await call.code() is StatusCode.OK
        assert (await first).message == "first"
        assert _no_open_streams(channel)
    await server.stop()


async def test_operations_waiting_for_the_stream_share_its_failure(
    echo_modules: tuple[ModuleType, ModuleType],
    grpc_channel_for: ChannelFor,
) -> None:
    """When the opening ends without a stream (the call is cancelled while it
    waits for a slot), every operation that waited for it gets the call's status."""
    pb2, _ = echo_modules
    server, holding, release = _hold_the_only_stream(pb2)
    async with grpc_channel_for(server) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        first = asyncio.create_task(unary(pb2.EchoRequest(message="first"), timeout=TIMEOUT))
        await asyncio.wait_for(holding.wait(), TIMEOUT)
        call = channel.stream_stream(methods(pb2)["Bidi"])()
        operations = [
            asyncio.create_task(call.write(pb2.EchoRequest(message="a"))),
            asyncio.create_task(call.read()),
            asyncio.create_task(call.initial_metadata()),
        ]
        code = asyncio.create_task(call.code())
        await _let_run()
        assert not code.done()
        assert call.cancel()
        for operation in operations:
            with pytest.raises(RpcError) as info:
                await asyncio.wait_for(operation, TIMEOUT)
            assert info.value.code is StatusCode.CANCELLED
        assert await asyncio.wait_for(code, TIMEOUT) is StatusCode.CANCELLED
        assert call.done()
        release.set()
        assert (await first).message == "first"
        assert _no_open_streams(channel)
    await server.stop()
