"""Channel connection management: states, backoff reconnects, fail-fast and
wait-for-ready, GOAWAY, transparent retry.

Backoff settings are small so that reconnects are quick; no test asserts on
timing except generous upper bounds, and every polling loop is bounded.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import pytest

import rpc
import rpc.core
from rpc import BackoffConfig, ConnectivityState, RpcError, StatusCode
from rpc.http2 import ErrorCodes
from rpc.protocol.framing import MessageDecoder, encode_frame

from ..tcp_proxy import TcpProxy
from .echo import H2rpcEcho, methods

TIMEOUT = 10
FAST = BackoffConfig(initial_backoff=0.05, multiplier=1.6, jitter=0.2, max_backoff=0.3)

IDLE = ConnectivityState.IDLE
CONNECTING = ConnectivityState.CONNECTING
READY = ConnectivityState.READY
TRANSIENT_FAILURE = ConnectivityState.TRANSIENT_FAILURE
SHUTDOWN = ConnectivityState.SHUTDOWN


def _unused_port() -> int:
    """A port nothing listens on (connections to it are refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _messages(data: bytes) -> list[bytes]:
    decoder = MessageDecoder()
    decoder.feed(data)
    messages = []
    while (message := decoder.next_message()) is not None:
        messages.append(message[1])
    return messages


async def _echo_server(pb2: ModuleType, port: int = 0) -> rpc.Server:
    server = rpc.Server([H2rpcEcho(pb2)])
    await server.start("127.0.0.1", port)
    return server


async def _states_until(
    channel: rpc.Channel, wanted: ConnectivityState, limit: int = 50
) -> list[ConnectivityState]:
    """The states the channel goes through until ``wanted`` (bounded)."""
    seen = [channel.get_state()]
    for _ in range(limit):
        if seen[-1] is wanted:
            return seen
        await asyncio.wait_for(channel.wait_for_state_change(seen[-1]), TIMEOUT)
        seen.append(channel.get_state())
    raise AssertionError(f"never reached {wanted}: {seen}")


async def _eventually(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in 5 s")


# --- states ------------------------------------------------------------------------------


async def test_states_idle_connecting_ready_shutdown(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    server = await _echo_server(pb2)
    channel = rpc.Channel(f"127.0.0.1:{server.port}", backoff=FAST)
    assert channel.get_state() is IDLE
    assert channel.get_state(try_to_connect=True) is CONNECTING
    await asyncio.wait_for(channel.wait_for_state_change(CONNECTING), TIMEOUT)
    assert channel.get_state() is READY
    await asyncio.wait_for(channel.channel_ready(), TIMEOUT)  # already READY
    reply = await channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest(message="hi"))
    assert reply.message == "hi"
    waiter = asyncio.create_task(channel.wait_for_state_change(READY))
    await channel.close()
    await asyncio.wait_for(waiter, TIMEOUT)
    assert channel.get_state(try_to_connect=True) is SHUTDOWN
    with pytest.raises(RpcError) as info:
        await channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest())
    assert info.value.code is StatusCode.UNAVAILABLE
    with pytest.raises(RpcError):
        await channel.channel_ready()
    await server.stop()


async def test_the_first_call_connects(echo_modules: tuple[ModuleType, ModuleType]) -> None:
    pb2, _ = echo_modules
    server = await _echo_server(pb2)
    async with rpc.Channel(f"127.0.0.1:{server.port}", backoff=FAST) as channel:
        observed = asyncio.create_task(_states_until(channel, READY))
        await asyncio.sleep(0)
        await channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest())
        assert await asyncio.wait_for(observed, TIMEOUT) == [IDLE, CONNECTING, READY]
    await server.stop()


async def test_failed_connects_alternate_transient_failure_and_connecting() -> None:
    async with rpc.Channel(f"127.0.0.1:{_unused_port()}", backoff=FAST) as channel:
        channel.get_state(try_to_connect=True)
        seen = await _states_until(channel, TRANSIENT_FAILURE)
        assert seen == [CONNECTING, TRANSIENT_FAILURE]
        # The background task tries again after the backoff delay, and fails again.
        assert await _states_until(channel, CONNECTING) == [TRANSIENT_FAILURE, CONNECTING]
        assert await _states_until(channel, TRANSIENT_FAILURE) == [CONNECTING, TRANSIENT_FAILURE]
        (subchannel,) = channel._balancer.subchannels
        connector = subchannel._connector
        assert connector is not None and not connector.done()
    # close() stops the retrying task: nothing is left running.
    assert connector.done()
    assert channel.get_state() is SHUTDOWN


async def test_lost_connection_goes_idle_and_the_next_call_reconnects(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    server = await _echo_server(pb2)
    proxy = await TcpProxy("127.0.0.1", server.port).start()
    async with rpc.Channel(f"127.0.0.1:{proxy.port}", backoff=FAST) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        await unary(pb2.EchoRequest())
        assert channel.get_state() is READY
        proxy.cut()
        assert await _states_until(channel, IDLE) == [READY, IDLE]
        # Lost is not failed: the channel waits, IDLE, for the next call.
        await asyncio.sleep(0.2)
        assert channel.get_state() is IDLE
        assert proxy.connections == 1
        reply = await unary(pb2.EchoRequest(message="again"), timeout=TIMEOUT)
        assert reply.message == "again"
        assert proxy.connections == 2
    await proxy.close()
    await server.stop()


async def test_server_stop_with_grace_lets_the_call_finish_and_the_channel_goes_idle(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    server = await _echo_server(pb2)
    async with rpc.Channel(f"127.0.0.1:{server.port}", backoff=FAST) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        await unary(pb2.EchoRequest())
        call = channel.unary_stream(methods(pb2)["ServerStream"])(
            pb2.EchoRequest(message="slow", delay_ms=300, repeat=1),
            metadata=[("x-echo-initial", "1")],
            timeout=TIMEOUT,
        )
        await call.initial_metadata()  # the handler is running
        stopping = asyncio.create_task(server.stop(grace=TIMEOUT))
        await _eventually(lambda: channel.get_state() is IDLE)  # GOAWAY noticed
        assert [reply.message async for reply in call] == ["slow"]
        await asyncio.wait_for(stopping, TIMEOUT)


# --- fail-fast and wait-for-ready --------------------------------------------------------


async def test_server_restart_fail_fast_fails_while_wait_for_ready_waits(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    server = await _echo_server(pb2)
    port = server.port
    async with rpc.Channel(f"127.0.0.1:{port}", backoff=FAST) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        await unary(pb2.EchoRequest())
        await server.stop()
        await _states_until(channel, IDLE)
        channel.get_state(try_to_connect=True)
        await _states_until(channel, TRANSIENT_FAILURE)

        waiting = asyncio.create_task(
            unary(pb2.EchoRequest(message="waited"), timeout=30, wait_for_ready=True)
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RpcError) as info:
            await unary(pb2.EchoRequest(), timeout=30)
        assert info.value.code is StatusCode.UNAVAILABLE
        assert loop.time() - started < 5  # at once, not after the 30 s deadline
        assert "cannot connect" in info.value.details
        await asyncio.sleep(0.2)  # a few more failed attempts
        assert not waiting.done()

        server = await _echo_server(pb2, port)  # same port: the backoff reconnects
        reply = await asyncio.wait_for(waiting, TIMEOUT)
        assert reply.message == "waited"
        assert channel.get_state() is READY
        # Connected: the backoff sequence starts over (white-box check).
        (subchannel,) = channel._balancer.subchannels
        assert subchannel.backoff.next_delay() == FAST.initial_backoff
    await server.stop()


async def _call(
    channel: rpc.Channel,
    kind: str,
    method: Any,
    request: Any,
    *,
    unary_with_call: bool = False,
    **options: Any,
) -> None:
    """One call of the given kind, up to its first response."""
    if kind == "Unary":
        unary = channel.unary_unary(method)
        await (unary.with_call if unary_with_call else unary)(request, **options)
    elif kind == "ServerStream":
        await channel.unary_stream(method)(request, **options).read()
    elif kind == "ClientStream":
        await channel.stream_unary(method)([request], **options)
    else:
        await channel.stream_stream(method)([request], **options).read()


@pytest.mark.parametrize("kind", ["Unary", "ServerStream", "ClientStream", "Bidi"])
async def test_wait_for_ready_is_bounded_by_the_deadline(
    echo_modules: tuple[ModuleType, ModuleType], kind: str
) -> None:
    pb2, _ = echo_modules
    async with rpc.Channel(f"127.0.0.1:{_unused_port()}", backoff=FAST) as channel:
        method = methods(pb2)[kind]
        request = pb2.EchoRequest()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RpcError) as info:
            await _call(channel, kind, method, request, timeout=0.5, wait_for_ready=True)
        assert info.value.code is StatusCode.DEADLINE_EXCEEDED
        assert loop.time() - started < 5
        # Meanwhile the channel kept trying.
        assert channel.get_state() in (CONNECTING, TRANSIENT_FAILURE)


@pytest.mark.parametrize("kind", ["Unary", "ServerStream", "ClientStream", "Bidi"])
async def test_fail_fast_is_unavailable_on_every_callable(
    echo_modules: tuple[ModuleType, ModuleType], kind: str
) -> None:
    pb2, _ = echo_modules
    async with rpc.Channel(f"127.0.0.1:{_unused_port()}", backoff=FAST) as channel:
        method = methods(pb2)[kind]
        request = pb2.EchoRequest()
        with pytest.raises(RpcError) as info:
            await _call(channel, kind, method, request, timeout=30, unary_with_call=True)
        assert info.value.code is StatusCode.UNAVAILABLE


async def test_channel_wide_wait_for_ready_and_per_call_override(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    port = _unused_port()
    async with rpc.Channel(f"127.0.0.1:{port}", backoff=FAST, wait_for_ready=True) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        waiting = asyncio.create_task(unary(pb2.EchoRequest(message="w"), timeout=30))
        await _states_until(channel, TRANSIENT_FAILURE)
        with pytest.raises(RpcError) as info:
            await unary(pb2.EchoRequest(), timeout=30, wait_for_ready=False)
        assert info.value.code is StatusCode.UNAVAILABLE
        assert not waiting.done()
        server = await _echo_server(pb2, port)
        assert (await asyncio.wait_for(waiting, TIMEOUT)).message == "w"
    await server.stop()


async def test_close_fails_wait_for_ready_calls_and_leaves_no_task() -> None:
    channel = rpc.Channel(f"127.0.0.1:{_unused_port()}", backoff=FAST)
    method = _bytes_method(rpc.MethodKind.UNARY_UNARY)
    waiting = asyncio.create_task(channel.unary_unary(method)(b"", wait_for_ready=True))
    await _states_until(channel, TRANSIENT_FAILURE)
    before = asyncio.all_tasks()
    await channel.close()
    with pytest.raises(RpcError) as info:
        await asyncio.wait_for(waiting, TIMEOUT)
    assert info.value.code is StatusCode.UNAVAILABLE
    left = {task for task in before if not task.done()} - {asyncio.current_task()}
    assert left == set()


# --- GOAWAY ------------------------------------------------------------------------------

GRPC_OK_HEADERS = {":status": "200", "content-type": "application/grpc"}


async def _respond(conn: rpc.core.Connection, stream_id: int, body: bytes) -> None:
    await conn.start_response(stream_id, GRPC_OK_HEADERS)
    await conn.send_data(stream_id, encode_frame(body))
    await conn.send_trailers(stream_id, {"grpc-status": "0"})


async def _raw_server(
    handler: Callable[[rpc.core.Connection], Any],
) -> tuple[Any, int]:
    server = await rpc.core.start_server(handler, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    return server, port


async def test_goaway_lets_the_call_in_flight_finish_and_new_calls_use_a_new_connection(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    connections: list[rpc.core.Connection] = []
    streams_per_connection: list[int] = []
    goaway_sent = asyncio.Event()
    release_first = asyncio.Event()

    async def on_connected(conn: rpc.core.Connection) -> None:
        connections.append(conn)
        index = len(connections) - 1
        streams_per_connection.append(0)
        closing = None
        while True:
            try:
                stream_id, _ = await conn.recv_request()
            except rpc.core.ConnectionClosedError:
                break
            streams_per_connection[index] += 1
            (payload,) = _messages(await conn.read_stream(stream_id, -1))
            request = pb2.EchoRequest.FromString(payload)
            if index == 0:
                # GOAWAY while this call is in flight; it is answered afterwards.
                closing = asyncio.ensure_future(conn.close_connection(timeout=TIMEOUT))
                goaway_sent.set()
                await release_first.wait()
            reply = pb2.EchoResponse(message=f"{request.message}@{index}")
            await _respond(conn, stream_id, reply.SerializeToString())
        if closing is not None:
            await closing

    server, port = await _raw_server(on_connected)
    async with rpc.Channel(f"127.0.0.1:{port}", backoff=FAST) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        first = asyncio.create_task(unary(pb2.EchoRequest(message="first"), timeout=TIMEOUT))
        await asyncio.wait_for(goaway_sent.wait(), TIMEOUT)
        # The client notices the GOAWAY: the connection takes no new calls.
        await _eventually(lambda: channel.get_state() is IDLE)
        second = await unary(pb2.EchoRequest(message="second"), timeout=TIMEOUT)
        assert second.message == "second@1"
        assert not first.done()
        release_first.set()
        assert (await asyncio.wait_for(first, TIMEOUT)).message == "first@0"
        assert streams_per_connection == [1, 1]
        assert channel.get_state() is READY
    server.close()
    await server.wait_closed()


async def test_stream_above_goaway_last_stream_id_is_retried_on_a_new_connection(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    seen: list[tuple[int, int]] = []  # (connection index, stream id)
    connections = 0

    async def on_connected(conn: rpc.core.Connection) -> None:
        nonlocal connections
        index = connections
        connections += 1
        pending = []
        while True:
            try:
                stream_id, _ = await conn.recv_request()
            except rpc.core.ConnectionClosedError:
                return
            seen.append((index, stream_id))
            pending.append(stream_id)
            if index == 0 and len(pending) < 2:
                continue
            if index == 0:
                # Both streams arrived; GOAWAY says only the first will be processed.
                # (The core's close_connection() would name the highest stream seen.)
                conn.send_goaway(ErrorCodes.NO_ERROR, last_stream_id=pending[0])
                pending = pending[:1]
            for sid in pending:
                await conn.read_stream(sid, -1)
                await _respond(conn, sid, pb2.EchoResponse(message=f"{index}").SerializeToString())
            pending = []

    server, port = await _raw_server(on_connected)
    async with rpc.Channel(f"127.0.0.1:{port}", backoff=FAST) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        await channel.channel_ready()
        replies = await asyncio.wait_for(
            asyncio.gather(unary(pb2.EchoRequest()), unary(pb2.EchoRequest())), TIMEOUT
        )
        assert sorted(reply.message for reply in replies) == ["0", "1"]
        assert seen == [(0, 1), (0, 3), (1, 1)]
    server.close()
    await server.wait_closed()


# --- transparent retry for REFUSED_STREAM ------------------------------------------------


class RefusingServer:
    """Refuses the first ``refusals`` streams with RST_STREAM(REFUSED_STREAM) once
    their request is complete; answers the others with the request messages joined."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.streams = 0
        self.requests: list[list[bytes]] = []
        self.server: Any = None
        self.port = 0

    async def start(self) -> RefusingServer:
        self.server, self.port = await _raw_server(self.on_connected)
        return self

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def on_connected(self, conn: rpc.core.Connection) -> None:
        while True:
            try:
                stream_id, _ = await conn.recv_request()
            except rpc.core.ConnectionClosedError:
                return
            self.streams += 1
            messages = _messages(await conn.read_stream(stream_id, -1))
            self.requests.append(messages)
            if self.streams <= self.refusals:
                conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
                continue
            await _respond(conn, stream_id, b"|".join(messages))


def _bytes_method(kind: rpc.MethodKind) -> rpc.Method[bytes, bytes]:
    def same(data: bytes) -> bytes:
        return data

    return rpc.Method("/t.Raw/Call", kind, same, same, same, same)


@pytest.fixture
async def refusing_once() -> AsyncIterator[RefusingServer]:
    server = await RefusingServer(refusals=1).start()
    yield server
    await server.stop()


async def test_refused_stream_is_retried_once_transparently(
    refusing_once: RefusingServer,
) -> None:
    async with rpc.Channel(f"127.0.0.1:{refusing_once.port}", backoff=FAST) as channel:
        unary = channel.unary_unary(_bytes_method(rpc.MethodKind.UNARY_UNARY))
        assert await unary(b"hello", timeout=TIMEOUT) == b"hello"
    assert refusing_once.streams == 2
    assert refusing_once.requests == [[b"hello"], [b"hello"]]


async def test_refused_server_streaming_call_is_retried(
    refusing_once: RefusingServer,
) -> None:
    async with rpc.Channel(f"127.0.0.1:{refusing_once.port}", backoff=FAST) as channel:
        call = channel.unary_stream(_bytes_method(rpc.MethodKind.UNARY_STREAM))(
            b"abc", timeout=TIMEOUT
        )
        assert [reply async for reply in call] == [b"abc"]
    assert refusing_once.streams == 2


@pytest.mark.parametrize("kind", [rpc.MethodKind.STREAM_UNARY, rpc.MethodKind.STREAM_STREAM])
async def test_refused_client_streaming_call_with_one_message_is_replayed(
    refusing_once: RefusingServer, kind: rpc.MethodKind
) -> None:
    async with rpc.Channel(f"127.0.0.1:{refusing_once.port}", backoff=FAST) as channel:
        method = _bytes_method(kind)
        if kind is rpc.MethodKind.STREAM_UNARY:
            call = channel.stream_unary(method)(timeout=TIMEOUT)
        else:
            call = channel.stream_stream(method)(timeout=TIMEOUT)
        await call.write(b"only")
        await call.done_writing()
        assert await call.read() == b"only"
    assert refusing_once.requests == [[b"only"], [b"only"]]


@pytest.mark.parametrize("kind", [rpc.MethodKind.STREAM_UNARY, rpc.MethodKind.STREAM_STREAM])
async def test_refused_client_streaming_call_with_two_messages_is_not_replayed(
    refusing_once: RefusingServer, kind: rpc.MethodKind
) -> None:
    async with rpc.Channel(f"127.0.0.1:{refusing_once.port}", backoff=FAST) as channel:
        method = _bytes_method(kind)
        requests = [b"one", b"two"]
        if kind is rpc.MethodKind.STREAM_UNARY:
            call = channel.stream_unary(method)(requests, timeout=TIMEOUT)
        else:
            call = channel.stream_stream(method)(requests, timeout=TIMEOUT)
        with pytest.raises(RpcError) as info:
            await call.read()
        assert info.value.code is StatusCode.UNAVAILABLE
    assert refusing_once.requests == [[b"one", b"two"]]


async def test_a_second_refusal_is_unavailable() -> None:
    server = await RefusingServer(refusals=2).start()
    async with rpc.Channel(f"127.0.0.1:{server.port}", backoff=FAST) as channel:
        unary = channel.unary_unary(_bytes_method(rpc.MethodKind.UNARY_UNARY))
        with pytest.raises(RpcError) as info:
            await unary(b"x", timeout=TIMEOUT)
        assert info.value.code is StatusCode.UNAVAILABLE
        assert "REFUSED_STREAM" in info.value.details
        assert server.streams == 2
        # Each call gets its own retry: the third stream is refused no more.
        assert await unary(b"y", timeout=TIMEOUT) == b"y"
        assert server.streams == 3
    await server.stop()
