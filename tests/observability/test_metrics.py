"""Per-call metrics: counts, statuses, sizes and latency on both sides, bounded labels."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import rpc
from rpc.observability import (
    OTHER_METHOD,
    ClientMetricsInterceptor,
    InMemoryRecorder,
    ServerMetricsInterceptor,
    Side,
)
from rpc.testing import channel_for

K = rpc.MethodKind
UNARY = rpc.Method("/test.Echo/Unary", K.UNARY_UNARY, bytes, bytes, bytes, bytes)
SERVER_STREAM = rpc.Method("/test.Echo/ServerStream", K.UNARY_STREAM, bytes, bytes, bytes, bytes)
CLIENT_STREAM = rpc.Method("/test.Echo/ClientStream", K.STREAM_UNARY, bytes, bytes, bytes, bytes)
BIDI = rpc.Method("/test.Echo/Bidi", K.STREAM_STREAM, bytes, bytes, bytes, bytes)
FAIL = rpc.Method("/test.Echo/Fail", K.UNARY_UNARY, bytes, bytes, bytes, bytes)
CRASH = rpc.Method("/test.Echo/Crash", K.UNARY_UNARY, bytes, bytes, bytes, bytes)
HANG = rpc.Method("/test.Echo/Hang", K.UNARY_STREAM, bytes, bytes, bytes, bytes)


class Echo:
    """Unary echoes; the server stream sends the request 3 times; the client
    stream answers with the joined requests; bidi echoes each request."""

    def __rpc_methods__(self) -> dict[rpc.Method[Any, Any], Callable[..., Any]]:
        return {
            UNARY: self.unary,
            SERVER_STREAM: self.server_stream,
            CLIENT_STREAM: self.client_stream,
            BIDI: self.bidi,
            FAIL: self.fail,
            CRASH: self.crash,
            HANG: self.hang,
        }

    async def unary(self, request: bytes, context: rpc.ServerContext) -> bytes:
        return request

    async def server_stream(
        self, request: bytes, context: rpc.ServerContext
    ) -> AsyncIterator[bytes]:
        for _ in range(3):
            yield request

    async def client_stream(
        self, requests: AsyncIterator[bytes], context: rpc.ServerContext
    ) -> bytes:
        return b"".join([r async for r in requests])

    async def bidi(
        self, requests: AsyncIterator[bytes], context: rpc.ServerContext
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    async def fail(self, request: bytes, context: rpc.ServerContext) -> bytes:
        await context.abort(rpc.StatusCode.NOT_FOUND, "no such thing")

    async def crash(self, request: bytes, context: rpc.ServerContext) -> bytes:
        raise ValueError("bug")

    async def hang(self, request: bytes, context: rpc.ServerContext) -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.Event().wait()


async def settled(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for the server's record: it lands one loop step after the status."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the expected record never came")


def finished(recorder: InMemoryRecorder, side: Side, method: str) -> dict[rpc.StatusCode, int]:
    return recorder.stats(side, method).finished


@pytest.fixture
def recorder() -> InMemoryRecorder:
    return InMemoryRecorder()


def metered(recorder: InMemoryRecorder, **options: Any) -> Any:
    return channel_for(
        [Echo()],
        interceptors=[ServerMetricsInterceptor(recorder, **options)],
        client_interceptors=[ClientMetricsInterceptor(recorder, **options)],
    )


async def test_all_four_kinds_counted_on_both_sides(recorder: InMemoryRecorder) -> None:
    async with metered(recorder) as channel:
        assert await channel.unary_unary(UNARY)(b"hello") == b"hello"
        assert [m async for m in channel.unary_stream(SERVER_STREAM)(b"abc")] == [b"abc"] * 3
        assert await channel.stream_unary(CLIENT_STREAM)([b"a", b"bc", b"def"]) == b"abcdef"
        assert [m async for m in channel.stream_stream(BIDI)([b"x", b"yy"])] == [b"x", b"yy"]
        path = BIDI.path
        await settled(lambda: sum(finished(recorder, Side.SERVER, path).values()) == 1)

    # (method, requests, request bytes, responses, response bytes)
    expected = [
        (UNARY, 1, 5, 1, 5),
        (SERVER_STREAM, 1, 3, 3, 9),
        (CLIENT_STREAM, 3, 6, 1, 6),
        (BIDI, 2, 3, 2, 3),
    ]
    for method, requests, request_bytes, responses, response_bytes in expected:
        server = recorder.stats(Side.SERVER, method.path)
        client = recorder.stats(Side.CLIENT, method.path)
        for stats in (server, client):
            assert stats.started == 1, method.path
            assert stats.finished == {rpc.StatusCode.OK: 1}, method.path
            assert stats.in_flight == 0
            assert stats.latency.count == 1
            assert stats.latency.sum > 0
        assert (server.received_messages, server.received_bytes) == (requests, request_bytes)
        assert (server.sent_messages, server.sent_bytes) == (responses, response_bytes)
        assert (client.sent_messages, client.sent_bytes) == (requests, request_bytes)
        assert (client.received_messages, client.received_bytes) == (responses, response_bytes)


async def test_write_and_read_calls_are_counted(recorder: InMemoryRecorder) -> None:
    async with metered(recorder) as channel:
        call = channel.stream_stream(BIDI)()
        await call.write(b"one")
        assert await call.read() == b"one"
        await call.write(b"three")
        await call.done_writing()
        assert await call.read() == b"three"
        assert await call.read() is None
        await settled(lambda: bool(finished(recorder, Side.SERVER, BIDI.path)))
    client = recorder.stats(Side.CLIENT, BIDI.path)
    assert client.finished == {rpc.StatusCode.OK: 1}
    assert (client.sent_messages, client.sent_bytes) == (2, 8)
    assert recorder.stats(Side.SERVER, BIDI.path).received_bytes == 8


@pytest.mark.parametrize(
    ("method", "code"),
    [(FAIL, rpc.StatusCode.NOT_FOUND), (CRASH, rpc.StatusCode.UNKNOWN)],
)
async def test_handler_errors_recorded_with_their_status(
    recorder: InMemoryRecorder, method: rpc.Method[bytes, bytes], code: rpc.StatusCode
) -> None:
    async with metered(recorder) as channel:
        with pytest.raises(rpc.RpcError) as raised:
            await channel.unary_unary(method)(b"x")
        assert raised.value.code is code
        await settled(lambda: bool(finished(recorder, Side.SERVER, method.path)))
    for side in Side:
        stats = recorder.stats(side, method.path)
        assert stats.finished == {code: 1}, side
        assert stats.sent_messages + stats.received_messages == 1  # the request only


async def test_deadline_recorded_on_both_sides(recorder: InMemoryRecorder) -> None:
    async with metered(recorder) as channel:
        with pytest.raises(rpc.RpcError) as raised:
            async for _ in channel.unary_stream(HANG)(b"x", timeout=0.2):
                pass
        assert raised.value.code is rpc.StatusCode.DEADLINE_EXCEEDED
        await settled(lambda: bool(finished(recorder, Side.SERVER, HANG.path)))
    assert finished(recorder, Side.CLIENT, HANG.path) == {rpc.StatusCode.DEADLINE_EXCEEDED: 1}
    # The server's own timer or the client's reset, whichever comes first.
    server = finished(recorder, Side.SERVER, HANG.path)
    assert set(server) <= {rpc.StatusCode.DEADLINE_EXCEEDED, rpc.StatusCode.CANCELLED}
    assert recorder.stats(Side.SERVER, HANG.path).sent_messages == 1


async def test_cancelled_call_recorded_on_both_sides(recorder: InMemoryRecorder) -> None:
    async with metered(recorder) as channel:
        call = channel.unary_stream(HANG)(b"x")
        assert await call.read() == b"first"
        assert call.cancel()
        await settled(lambda: bool(finished(recorder, Side.SERVER, HANG.path)))
    assert finished(recorder, Side.CLIENT, HANG.path) == {rpc.StatusCode.CANCELLED: 1}
    assert finished(recorder, Side.SERVER, HANG.path) == {rpc.StatusCode.CANCELLED: 1}
    assert recorder.stats(Side.CLIENT, HANG.path).received_messages == 1


async def test_request_too_large_recorded_before_the_handler_runs(
    recorder: InMemoryRecorder,
) -> None:
    """The server's status comes from the call itself, not from the handler."""
    async with channel_for(
        [Echo()],
        interceptors=[ServerMetricsInterceptor(recorder)],
        client_interceptors=[ClientMetricsInterceptor(recorder)],
        server_options={"max_receive_message_length": 10},
    ) as channel:
        with pytest.raises(rpc.RpcError) as raised:
            await channel.unary_unary(UNARY)(b"x" * 100)
        assert raised.value.code is rpc.StatusCode.RESOURCE_EXHAUSTED
        await settled(lambda: bool(finished(recorder, Side.SERVER, UNARY.path)))
    assert finished(recorder, Side.SERVER, UNARY.path) == {rpc.StatusCode.RESOURCE_EXHAUSTED: 1}
    assert finished(recorder, Side.CLIENT, UNARY.path) == {rpc.StatusCode.RESOURCE_EXHAUSTED: 1}


async def test_unknown_methods_share_one_label(recorder: InMemoryRecorder) -> None:
    """A client sending random method names must not grow the server's tables."""
    async with metered(recorder, max_methods=3) as channel:
        assert await channel.unary_unary(UNARY)(b"x") == b"x"
        for _ in range(50):
            method = rpc.Method(
                f"/evil.S{uuid.uuid4().hex}/M", K.UNARY_UNARY, bytes, bytes, bytes, bytes
            )
            with pytest.raises(rpc.RpcError) as raised:
                await channel.unary_unary(method)(b"x")
            assert raised.value.code is rpc.StatusCode.UNIMPLEMENTED
    assert sorted(recorder.methods(Side.SERVER)) == sorted([UNARY.path, OTHER_METHOD])
    assert finished(recorder, Side.SERVER, OTHER_METHOD) == {rpc.StatusCode.UNIMPLEMENTED: 50}
    # The client labels by the paths it calls, capped: 3 labels, the rest _OTHER.
    client_methods = recorder.methods(Side.CLIENT)
    assert len(client_methods) == 4 and OTHER_METHOD in client_methods
    assert finished(recorder, Side.CLIENT, OTHER_METHOD) == {rpc.StatusCode.UNIMPLEMENTED: 48}


class RefuseAll(rpc.ServerInterceptor):
    async def intercept_service(self, continuation: Any, details: rpc.HandlerCallDetails) -> Any:
        raise rpc.RpcError(rpc.StatusCode.UNAUTHENTICATED, "no")


async def test_calls_refused_by_a_later_interceptor(recorder: InMemoryRecorder) -> None:
    async with channel_for(
        [Echo()], interceptors=[ServerMetricsInterceptor(recorder), RefuseAll()]
    ) as channel:
        for path in [UNARY.path, "/evil.S/A", "/evil.S/B"]:
            method = rpc.Method(path, K.UNARY_UNARY, bytes, bytes, bytes, bytes)
            with pytest.raises(rpc.RpcError):
                await channel.unary_unary(method)(b"x")
    # Never served, so never labelled: random paths refused cost one label too.
    assert recorder.methods(Side.SERVER) == [OTHER_METHOD]
    assert finished(recorder, Side.SERVER, OTHER_METHOD) == {rpc.StatusCode.UNAUTHENTICATED: 3}


def test_in_memory_recorder_caps_labels() -> None:
    recorder = InMemoryRecorder(max_methods=2)
    for index in range(100):
        recorder.call_started(Side.SERVER, f"/s.S/M{index}")
        recorder.call_finished(Side.SERVER, f"/s.S/M{index}", rpc.StatusCode.OK, 0.01, 1, 1, 2, 3)
    assert len(recorder.methods(Side.SERVER)) == 3  # two labels and _OTHER
    other = recorder.stats(Side.SERVER, OTHER_METHOD)
    assert other.started == 98 and other.finished == {rpc.StatusCode.OK: 98}
    assert (
        other.latency.counts[recorder.stats(Side.SERVER, "/s.S/M0").latency.bounds.index(0.01)]
        == 98
    )


def test_histogram_buckets() -> None:
    histogram = rpc.observability.Histogram([1.0, 2.0])
    for value in (0.5, 1.0, 1.5, 3.0):
        histogram.record(value)
    assert histogram.counts == [2, 1, 1]
    assert histogram.count == 4 and histogram.sum == 6.0
    with pytest.raises(ValueError):
        rpc.observability.Histogram([2.0, 1.0])


async def test_counting_wrapper_keeps_zero_copy_reading(recorder: InMemoryRecorder) -> None:
    from google.protobuf import wrappers_pb2

    from rpc.protocol.metadata import Metadata
    from rpc.server.interceptors import InterceptorChain

    method = rpc.Method.protobuf(
        "/p.S/M", K.UNARY_UNARY, wrappers_pb2.BytesValue, wrappers_pb2.BytesValue
    )
    chain = InterceptorChain([ServerMetricsInterceptor(recorder)], {method.path: (method, print)})
    first = await chain.resolve(method.path, Metadata())
    second = await chain.resolve(method.path, Metadata())
    assert first is not None and first[0].deserializers_copy
    assert second is first  # one entry per method, not one per call
