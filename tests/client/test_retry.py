"""rpc.client.retry: what a call keeps for a replay, when it may be replayed,
and (through a Channel against raw HTTP/2 servers) that only a call the server
cannot have processed is ever sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

import rpc
import rpc.core
from rpc import RpcError, StatusCode
from rpc.client.call_status import CallStatus
from rpc.client.retry import StreamAttempts
from rpc.http2 import ErrorCodes
from rpc.protocol.framing import encode_frame

TIMEOUT = 10

REFUSED = rpc.core.StreamResetError(1, ErrorCodes.REFUSED_STREAM, remote=True)


def _attempts() -> StreamAttempts:
    return StreamAttempts(
        cast(rpc.Channel, None), CallStatus(), wait_for_ready=False, deadline=None
    )


def _stream(headers: Any = None) -> rpc.core.Stream:
    """Stands for the failed stream: ``can_retry`` asks it whether the server answered."""
    return cast(rpc.core.Stream, SimpleNamespace(headers=headers))


def test_a_refused_stream_that_sent_one_message_can_be_retried() -> None:
    attempts = _attempts()
    attempts.record(b"\0\0\0\0\1x", end_stream=True)
    assert attempts.can_retry(REFUSED, _stream())


def test_a_second_message_makes_the_call_unreplayable() -> None:
    attempts = _attempts()
    attempts.record([b"\0\0\0\0\1", b"a"], end_stream=False)
    attempts.record(b"\0\0\0\0\1b", end_stream=False)
    assert not attempts.can_retry(REFUSED, _stream())


def test_the_end_of_the_requests_alone_keeps_the_call_replayable() -> None:
    attempts = _attempts()
    attempts.record(b"\0\0\0\0\1a", end_stream=False)
    attempts.record(b"", end_stream=True)
    assert attempts.can_retry(REFUSED, _stream())


def test_no_retry_once_the_server_answered() -> None:
    attempts = _attempts()
    assert not attempts.can_retry(REFUSED, _stream(headers=[(":status", "200")]))
    attempts.server_answered()
    assert not attempts.can_retry(REFUSED, _stream())


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (REFUSED, True),
        (rpc.core.StreamResetError(1, ErrorCodes.REFUSED_STREAM, remote=False), False),
        (rpc.core.StreamResetError(1, ErrorCodes.CANCEL, remote=True), False),
        (rpc.core.StreamResetError(1, ErrorCodes.INTERNAL_ERROR, remote=True), False),
        (rpc.core.ConnectionClosedError("goaway", remote=True, unprocessed=True), True),
        (rpc.core.ConnectionClosedError("goaway", remote=True, unprocessed=False), False),
        (rpc.core.ConnectionClosedError("lost"), False),
        (rpc.core.StreamClosedError(1, "closed"), False),
    ],
)
def test_only_errors_that_prove_the_call_unprocessed_allow_a_retry(
    error: rpc.core.H2Error, retryable: bool
) -> None:
    assert _attempts().can_retry(error, _stream()) is retryable


# --- through a channel ---------------------------------------------------------------


def _bytes_method(kind: rpc.MethodKind) -> rpc.Method[bytes, bytes]:
    def same(data: bytes) -> bytes:
        return data

    return rpc.Method("/t.Raw/Call", kind, same, same, same, same)


async def _raw_server(handler: Callable[[rpc.core.Connection], Any]) -> tuple[Any, int]:
    server = await rpc.core.start_server(handler, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    return server, port


async def test_refused_after_response_headers_is_not_retried() -> None:
    """REFUSED_STREAM after the server answered is a lie: the server had the
    call, so it is not sent again (even if the client had not yet taken the
    headers when the reset came)."""
    streams = 0

    async def on_connected(conn: rpc.core.Connection) -> None:
        nonlocal streams
        while True:
            try:
                stream_id, _ = await conn.recv_request()
            except rpc.core.ConnectionClosedError:
                return
            streams += 1
            await conn.read_stream(stream_id, -1)
            await conn.start_response(
                stream_id, {":status": "200", "content-type": "application/grpc"}
            )
            conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)

    server, port = await _raw_server(on_connected)
    async with rpc.Channel(f"127.0.0.1:{port}") as channel:
        unary = channel.unary_unary(_bytes_method(rpc.MethodKind.UNARY_UNARY))
        with pytest.raises(RpcError) as info:
            await asyncio.wait_for(unary(b"once"), TIMEOUT)
        assert info.value.code is StatusCode.UNAVAILABLE
    assert streams == 1
    server.close()
    await server.wait_closed()


async def test_refused_streaming_call_whose_status_is_asked_first_is_retried() -> None:
    """code() on a refused server-streaming call moves it to a new stream like
    a read would, and the responses are there to read afterwards."""
    streams = 0

    async def on_connected(conn: rpc.core.Connection) -> None:
        nonlocal streams
        while True:
            try:
                stream_id, _ = await conn.recv_request()
            except rpc.core.ConnectionClosedError:
                return
            streams += 1
            body = await conn.read_stream(stream_id, -1)
            if streams == 1:
                conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
                continue
            await conn.start_response(
                stream_id, {":status": "200", "content-type": "application/grpc"}
            )
            await conn.send_data(stream_id, body + encode_frame(b"again"))
            await conn.send_trailers(stream_id, {"grpc-status": "0"})

    server, port = await _raw_server(on_connected)
    async with rpc.Channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream(_bytes_method(rpc.MethodKind.UNARY_STREAM))(b"hello")
        assert await asyncio.wait_for(call.code(), TIMEOUT) is StatusCode.OK
        assert [reply async for reply in call] == [b"hello", b"again"]
    assert streams == 2
    server.close()
    await server.wait_closed()
