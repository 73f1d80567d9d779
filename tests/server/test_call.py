"""ServerCall: how a call ends, for every way its handler can end, as the client sees it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

import rpc
import rpc.core
from rpc import Metadata, MethodKind, RpcError, StatusCode
from rpc.http2 import ErrorCodes
from rpc.protocol.wire import RequestHead, Status, parse_request
from rpc.server.call import CallPhase, CallSettings, ServerCall, send_refusal

from .helpers import exchange, grpc_headers, method, serve

TIMEOUT = 30
UNARY = method("Unary")
SERVER_STREAM = method("ServerStream", MethodKind.UNARY_STREAM)
CLIENT_STREAM = method("ClientStream", MethodKind.STREAM_UNARY)


# --- the outcome table, through a real connection -----------------------------------------


async def _returns(request: bytes, context: rpc.ServerContext) -> bytes:
    return b"ok:" + request


async def _raises_rpc_error(request: bytes, context: rpc.ServerContext) -> bytes:
    raise RpcError(
        StatusCode.NOT_FOUND, "no such key", trailing_metadata=Metadata({"x-why": "gone"})
    )


async def _raises_rich_error(request: bytes, context: rpc.ServerContext) -> bytes:
    raise RpcError(StatusCode.FAILED_PRECONDITION, "rich", status_details=b"\x08\x09")


async def _aborts_keeping_trailing(request: bytes, context: rpc.ServerContext) -> bytes:
    context.set_trailing_metadata({"x-set": "before"})
    await context.abort(StatusCode.PERMISSION_DENIED, "nope")


async def _aborts_after_headers(request: bytes, context: rpc.ServerContext) -> bytes:
    await context.send_initial_metadata({"x-initial": "i"})
    await context.abort(StatusCode.ABORTED, "late", trailing_metadata={"x-trailing": "t"})


async def _fails(request: bytes, context: rpc.ServerContext) -> bytes:
    raise ValueError("secret internal detail")


async def _sets_code(request: bytes, context: rpc.ServerContext) -> None:
    context.set_code(StatusCode.NOT_FOUND)
    context.set_details("set, not raised")
    context.set_trailing_metadata({"x-set": "yes"})


async def _returns_nothing(request: bytes, context: rpc.ServerContext) -> None:
    return None


async def _bad_trailing_metadata(request: bytes, context: rpc.ServerContext) -> bytes:
    context.set_trailing_metadata({"grpc-reserved": "no"})
    return b"fine"


async def _unsendable_status_details(request: bytes, context: rpc.ServerContext) -> bytes:
    raise RpcError(StatusCode.ABORTED, "rich", status_details="text, not bytes")  # type: ignore[arg-type]


async def _unsendable_details(request: bytes, context: rpc.ServerContext) -> None:
    context.set_code(StatusCode.NOT_FOUND)
    context.set_details(404)  # type: ignore[arg-type]


async def _streams_then_raises(request: bytes, context: rpc.ServerContext) -> AsyncIterator[bytes]:
    yield b"one"
    raise RpcError(StatusCode.RESOURCE_EXHAUSTED, "enough")


async def _streams_nothing(request: bytes, context: rpc.ServerContext) -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover (makes this an async generator)


# (handler, kind) -> (Trailers-Only?, code, message, headers expected among the status, messages)
OUTCOMES: dict[
    str, tuple[Any, rpc.Method[Any, Any], bool, int, str | None, dict[str, str], list[bytes]]
] = {
    "return": (_returns, UNARY, False, 0, None, {}, [b"ok:hi"]),
    "rpc_error": (_raises_rpc_error, UNARY, True, 5, "no such key", {"x-why": "gone"}, []),
    "rich_error": (
        _raises_rich_error,
        UNARY,
        True,
        9,
        "rich",
        {"grpc-status-details-bin": base64.b64encode(b"\x08\x09").decode().rstrip("=")},
        [],
    ),
    "abort_keeps_trailing": (
        _aborts_keeping_trailing,
        UNARY,
        True,
        7,
        "nope",
        {"x-set": "before"},
        [],
    ),
    "abort_after_headers": (
        _aborts_after_headers,
        UNARY,
        False,
        10,
        "late",
        {"x-trailing": "t"},
        [],
    ),
    "exception": (_fails, UNARY, True, 2, "Unexpected error in the method handler", {}, []),
    "set_code": (_sets_code, UNARY, True, 5, "set, not raised", {"x-set": "yes"}, []),
    "no_response": (_returns_nothing, UNARY, True, 2, "the handler returned no response", {}, []),
    "bad_trailing": (
        _bad_trailing_metadata,
        UNARY,
        False,
        13,
        "invalid status from the method handler",
        {},
        [b"fine"],
    ),
    # A status the encoder rejects in other ways than bad metadata: still a status.
    "bad_status_details": (
        _unsendable_status_details,
        UNARY,
        True,
        13,
        "invalid status from the method handler",
        {},
        [],
    ),
    "bad_details": (
        _unsendable_details,
        UNARY,
        True,
        13,
        "invalid status from the method handler",
        {},
        [],
    ),
    "stream_then_error": (_streams_then_raises, SERVER_STREAM, False, 8, "enough", {}, [b"one"]),
    "empty_stream": (_streams_nothing, SERVER_STREAM, True, 0, None, {}, []),
}


@pytest.mark.parametrize("outcome", list(OUTCOMES))
async def test_outcome_becomes_the_status(outcome: str, caplog: pytest.LogCaptureFixture) -> None:
    handler, m, trailers_only, code, message, expected, messages = OUTCOMES[outcome]
    server = await serve({m: handler})
    try:
        answer = await asyncio.wait_for(exchange(server.port, m.path), TIMEOUT)
    finally:
        await server.stop()
    assert answer.headers[":status"] == "200"
    assert answer.trailers_only is trailers_only
    assert answer.code == code
    assert answer.status.get("grpc-message") == message
    for name, value in expected.items():
        assert answer.status[name] == value
    assert answer.messages == messages
    if outcome == "exception":
        assert "secret internal detail" in caplog.text  # logged, never sent
    if outcome == "abort_after_headers":
        assert answer.headers["x-initial"] == "i"


async def test_the_outcome_table_as_grpcio_sees_it() -> None:
    server = await serve({UNARY: _raises_rpc_error, SERVER_STREAM: _streams_then_raises})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            unary = channel.unary_unary(UNARY.path)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await asyncio.wait_for(unary(b"hi"), TIMEOUT)
            assert info.value.code() is grpc.StatusCode.NOT_FOUND
            assert info.value.details() == "no such key"
            assert ("x-why", "gone") in tuple(info.value.trailing_metadata() or ())
            stream = channel.unary_stream(SERVER_STREAM.path)(b"hi")
            received = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for message in stream:
                    received.append(message)
            assert received == [b"one"]
            assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await server.stop()


# --- deadlines ------------------------------------------------------------------------------


async def test_deadline_cancels_the_handler_and_ends_the_call() -> None:
    cancelled = asyncio.Event()

    async def forever(request: bytes, context: rpc.ServerContext) -> bytes:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b""  # pragma: no cover

    server = await serve({UNARY: forever})
    try:
        answer = await asyncio.wait_for(
            exchange(server.port, UNARY.path, extra=[("grpc-timeout", "100m")]), TIMEOUT
        )
    finally:
        await server.stop()
    assert answer.trailers_only and answer.code == StatusCode.DEADLINE_EXCEEDED
    assert answer.status["grpc-message"] == "Deadline Exceeded"
    assert cancelled.is_set()


async def test_deadline_stands_when_the_handler_swallows_the_cancellation() -> None:
    async def stubborn(request: bytes, context: rpc.ServerContext) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        assert context.cancelled()
        # Returns normally, having written nothing: still the deadline's status.

    server = await serve({SERVER_STREAM: stubborn})
    try:
        answer = await asyncio.wait_for(
            exchange(server.port, SERVER_STREAM.path, extra=[("grpc-timeout", "100m")]), TIMEOUT
        )
    finally:
        await server.stop()
    assert answer.code == StatusCode.DEADLINE_EXCEEDED
    assert answer.messages == []


async def test_deadline_as_grpcio_sees_it() -> None:
    async def forever(request: bytes, context: rpc.ServerContext) -> bytes:
        await asyncio.Event().wait()
        return b""  # pragma: no cover

    server = await serve({UNARY: forever})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary(UNARY.path)(b"hi", timeout=0.2)
            assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await server.stop()


# --- the client cancels, or never reads, or the handler never reads -------------------------


async def test_client_reset_cancels_the_handler() -> None:
    entered, cancelled = asyncio.Event(), asyncio.Event()

    async def waits(request: bytes, context: rpc.ServerContext) -> bytes:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b""  # pragma: no cover

    server = await serve({UNARY: waits})
    conn = await rpc.core.open_connection("127.0.0.1", server.port)
    try:
        stream_id = await conn.start_request(grpc_headers(UNARY.path))
        await conn.send_data(stream_id, b"\0\0\0\0\0", end_stream=True)
        await asyncio.wait_for(entered.wait(), TIMEOUT)
        conn.reset_stream(stream_id, ErrorCodes.CANCEL)
        await asyncio.wait_for(cancelled.wait(), TIMEOUT)
        # The connection is unharmed: the next call on it is served.
        other = await conn.start_request(grpc_headers("/nowhere.S/M"))
        await conn.send_data(other, b"", end_stream=True)
        headers = dict(await asyncio.wait_for(conn.recv_response(other), TIMEOUT))
        assert headers["grpc-status"] == str(StatusCode.UNIMPLEMENTED.value)
    finally:
        await conn.close_connection()
        await server.stop()


async def test_handler_that_never_reads_its_request_bounds_what_the_client_sends() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def ignores(requests: AsyncIterator[bytes], context: rpc.ServerContext) -> bytes:
        entered.set()
        await release.wait()
        return b"answered unread"

    server = await serve({CLIENT_STREAM: ignores})
    conn = await rpc.core.open_connection("127.0.0.1", server.port)
    try:
        stream_id = await conn.start_request(grpc_headers(CLIENT_STREAM.path))
        body = bytes(64 * 1024 * 1024)  # far more than any window: nobody reads it
        sending = asyncio.ensure_future(conn.send_data(stream_id, body, end_stream=True))
        await asyncio.wait_for(entered.wait(), TIMEOUT)
        release.set()
        headers = dict(await asyncio.wait_for(conn.recv_response(stream_id), TIMEOUT))
        assert headers[":status"] == "200"
        with pytest.raises(rpc.core.StreamResetError) as info:
            await asyncio.wait_for(sending, TIMEOUT)
        # The server answered and told us to stop (RFC 9113 8.1): the 64 MiB never went through.
        assert info.value.remote and info.value.error_code == ErrorCodes.NO_ERROR
    finally:
        await conn.close_connection()
        await server.stop()


async def test_client_that_never_reads_holds_the_handler_until_the_deadline() -> None:
    size = 64 * 1024
    written: list[int] = []
    ended = asyncio.Event()

    async def floods(request: bytes, context: rpc.ServerContext) -> None:
        try:
            while True:
                await context.write(bytes(size))
                written.append(size)
        finally:
            ended.set()

    server = await serve({SERVER_STREAM: floods})
    conn = await rpc.core.open_connection("127.0.0.1", server.port)
    try:
        headers = grpc_headers(SERVER_STREAM.path, [("grpc-timeout", "500m")])
        stream_id = await conn.start_request(headers)
        await conn.send_data(stream_id, b"\0\0\0\0\0", end_stream=True)
        await asyncio.wait_for(ended.wait(), TIMEOUT)
        # Flow control held the writes back: what went out is bounded by the windows.
        assert sum(written) <= 32 * 1024 * 1024
    finally:
        await conn.close_connection()
        await server.stop()


# --- ServerCall itself, on a stream that records what the call sends ----------------------


class RecordingStream:
    """What :class:`ServerCall` uses of a core stream, recording what it is asked to send."""

    def __init__(self, body: bytes = b"\0\0\0\0\0") -> None:
        self.headers = grpc_headers(UNARY.path)
        self.sent: list[tuple[str, Any]] = []
        self.on_error: Callable[[rpc.core.H2Error], None] | None = None
        self._chunks = [body]

    def set_error_callback(self, callback: Callable[[rpc.core.H2Error], None] | None) -> None:
        self.on_error = callback

    def send_headers(self, headers: Any, end_stream: bool = False) -> None:
        self.sent.append(("headers", end_stream))

    async def send_data(self, data: Any, end_stream: bool = False) -> None:
        self.sent.append(("data", end_stream))

    async def send_trailers(self, headers: Any) -> None:
        self.sent.append(("trailers", True))

    async def read_chunk(self) -> bytes:
        return self._chunks.pop() if self._chunks else b""

    def reset(self, error_code: int) -> None:
        self.sent.append(("reset", error_code))


class NoPeer:
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _call(stream: RecordingStream) -> ServerCall:
    head = parse_request(stream.headers)
    assert isinstance(head, RequestHead)
    settings = CallSettings(
        max_receive_message_length=None, max_send_message_length=None, compression=None
    )
    return ServerCall(NoPeer(), stream, UNARY, head, settings)  # type: ignore[arg-type]


async def _run(call: ServerCall, body: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    async def serve_it() -> None:
        async with call:
            await body()

    task = asyncio.ensure_future(serve_it())
    await asyncio.sleep(0)  # let it enter the call and start waiting
    return task


async def test_client_reset_sends_nothing_more() -> None:
    stream = RecordingStream()
    call = _call(stream)
    task = await _run(call, asyncio.Event().wait)
    assert stream.on_error is not None
    stream.on_error(rpc.core.StreamResetError(1, ErrorCodes.CANCEL, remote=True))
    await asyncio.wait_for(task, TIMEOUT)  # ended quietly, not cancelled
    assert stream.sent == []
    assert call.cancelled and call.phase is CallPhase.FINISHED
    assert stream.on_error is None  # the call let go of its stream


async def test_our_own_reset_does_not_cancel_the_handler() -> None:
    stream = RecordingStream()
    call = _call(stream)
    task = await _run(call, asyncio.Event().wait)
    assert stream.on_error is not None
    stream.on_error(rpc.core.StreamResetError(1, ErrorCodes.CANCEL, remote=False))
    await asyncio.sleep(0)
    assert not task.done() and not call.cancelled
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelled_from_outside_resets_with_cancel_and_goes_on() -> None:
    stream = RecordingStream()
    call = _call(stream)
    task = await _run(call, asyncio.Event().wait)
    task.cancel()  # as Server.stop() does
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.sent == [("reset", ErrorCodes.CANCEL)]
    assert call.phase is CallPhase.FINISHED


async def test_status_after_a_message_goes_as_trailers() -> None:
    stream = RecordingStream()
    call = _call(stream)

    async def answer() -> None:
        assert await call.read_single() == b""
        await call.write(b"x")

    await asyncio.wait_for(await _run(call, answer), TIMEOUT)
    assert stream.sent == [("headers", False), ("data", False), ("trailers", True)]
    with pytest.raises(RuntimeError):
        await call.write(b"after the end")


async def test_status_alone_goes_as_trailers_only() -> None:
    stream = RecordingStream()
    call = _call(stream)

    async def refuse() -> None:
        raise RpcError(StatusCode.UNAUTHENTICATED, "who are you")

    await asyncio.wait_for(await _run(call, refuse), TIMEOUT)
    assert stream.sent == [("headers", True)]


def test_system_exit_is_not_the_calls_to_handle() -> None:
    stream = RecordingStream()

    async def main() -> None:
        async with _call(stream):
            raise SystemExit(3)

    with pytest.raises(SystemExit):
        asyncio.run(main())
    assert stream.sent == []


class RefusingStream(RecordingStream):
    """A stream whose engine refuses what the call sends (a failure nobody foresaw)."""

    id = 1

    def __init__(self, refuse: str) -> None:
        super().__init__()
        self.refuse = refuse

    def send_headers(self, headers: Any, end_stream: bool = False) -> None:
        if self.refuse == "headers" or (self.refuse == "status" and end_stream):
            raise RuntimeError("the engine refused the headers")
        super().send_headers(headers, end_stream)

    async def send_trailers(self, headers: Any) -> None:
        if self.refuse == "status":
            raise RuntimeError("the engine refused the trailers")
        await super().send_trailers(headers)


@pytest.mark.parametrize("after_a_message", [False, True])
async def test_status_that_cannot_be_sent_resets_the_stream(
    after_a_message: bool, caplog: pytest.LogCaptureFixture
) -> None:
    stream = RefusingStream("status")
    call = _call(stream)

    async def answer() -> None:
        if after_a_message:
            await call.write(b"x")

    await asyncio.wait_for(await _run(call, answer), TIMEOUT)  # the task ends cleanly
    assert stream.sent[-1] == ("reset", ErrorCodes.INTERNAL_ERROR)
    assert call.phase is CallPhase.FINISHED
    assert "cannot send the status" in caplog.text


async def test_refused_response_headers_leave_the_status_trailers_only() -> None:
    stream = RefusingStream("headers")
    call = _call(stream)

    async def answer() -> None:
        await call.write(b"x")

    await asyncio.wait_for(await _run(call, answer), TIMEOUT)
    # The response headers never went out: the status must not pose as trailers.
    assert stream.sent[-1] == ("reset", ErrorCodes.INTERNAL_ERROR)
    assert ("trailers", True) not in stream.sent


async def test_refusal_that_cannot_be_sent_resets_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = RefusingStream("status")
    send_refusal(stream, Status(StatusCode.UNIMPLEMENTED, "no"), "/x.S/M")  # type: ignore[arg-type]
    assert stream.sent == [("reset", ErrorCodes.INTERNAL_ERROR)]
    assert "cannot send the status" in caplog.text
