"""ServerContext: what a handler sees of its call and what it can do with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rpc
from rpc import MethodKind, StatusCode

from .helpers import exchange, method, serve

TIMEOUT = 30
UNARY = method("Unary")
BIDI = method("Bidi", MethodKind.STREAM_STREAM)
CLIENT_STREAM = method("ClientStream", MethodKind.STREAM_UNARY)


async def test_information_about_the_call() -> None:
    seen: dict[str, Any] = {}

    async def look(request: bytes, context: rpc.ServerContext) -> bytes:
        seen["method"] = context.method
        seen["metadata"] = context.invocation_metadata()
        seen["peer"] = context.peer()
        seen["deadline"] = context.deadline
        seen["remaining"] = context.time_remaining()
        seen["cancelled"] = context.cancelled()
        seen["compressed"] = context.request_compressed
        return b""

    server = await serve({UNARY: look})
    try:
        extra = [("x-user", "ada"), ("x-token-bin", "AAEC"), ("grpc-timeout", "60S")]
        answer = await asyncio.wait_for(exchange(server.port, UNARY.path, extra=extra), TIMEOUT)
    finally:
        await server.stop()
    assert answer.code == 0
    assert seen["method"] == UNARY.path
    assert seen["metadata"].get("x-user") == "ada"
    assert seen["metadata"].get("x-token-bin") == b"\x00\x01\x02"
    assert "grpc-timeout" not in seen["metadata"]
    assert seen["peer"].startswith("ipv4:127.0.0.1:")
    assert seen["deadline"] is not None
    assert 0 < seen["remaining"] <= 60
    assert seen["cancelled"] is False
    assert seen["compressed"] is False


async def test_no_deadline_without_grpc_timeout() -> None:
    seen: list[Any] = []

    async def look(request: bytes, context: rpc.ServerContext) -> bytes:
        seen.extend([context.deadline, context.time_remaining()])
        return b""

    server = await serve({UNARY: look})
    try:
        await asyncio.wait_for(exchange(server.port, UNARY.path), TIMEOUT)
    finally:
        await server.stop()
    assert seen == [None, None]


async def test_initial_metadata_once_and_compression_before_it() -> None:
    errors: list[str] = []

    async def answer(request: bytes, context: rpc.ServerContext) -> bytes:
        context.set_compression("gzip")
        await context.send_initial_metadata({"x-first": "1"})
        for late in (
            lambda: context.send_initial_metadata({"x-again": "2"}),
            lambda: _as_coroutine(context.set_compression, None),
        ):
            try:
                await late()
            except RuntimeError as exc:
                errors.append(str(exc))
        return b"z" * 1000

    server = await serve({UNARY: answer})
    try:
        accept = [("grpc-accept-encoding", "gzip")]
        result = await asyncio.wait_for(exchange(server.port, UNARY.path, extra=accept), TIMEOUT)
    finally:
        await server.stop()
    assert result.headers["x-first"] == "1" and "x-again" not in result.headers
    assert result.headers["grpc-encoding"] == "gzip"
    assert result.code == 0
    assert len(errors) == 2


async def _as_coroutine(function: Any, *args: Any) -> None:
    function(*args)


async def test_compression_only_if_the_client_accepts_it() -> None:
    async def answer(request: bytes, context: rpc.ServerContext) -> bytes:
        context.set_compression("gzip")
        return b"plain"

    server = await serve({UNARY: answer})
    try:
        result = await asyncio.wait_for(exchange(server.port, UNARY.path), TIMEOUT)
    finally:
        await server.stop()
    assert "grpc-encoding" not in result.headers
    assert result.messages == [b"plain"]


async def test_unknown_compression_is_refused_at_once() -> None:
    async def answer(request: bytes, context: rpc.ServerContext) -> bytes:
        context.set_compression("lz4-or-so")
        return b""  # pragma: no cover

    server = await serve({UNARY: answer})
    try:
        result = await asyncio.wait_for(exchange(server.port, UNARY.path), TIMEOUT)
    finally:
        await server.stop()
    assert result.code == StatusCode.UNKNOWN  # a handler error: ValueError


async def test_read_write_and_iteration() -> None:
    async def bidi(requests: AsyncIterator[bytes], context: rpc.ServerContext) -> None:
        first = await context.read()
        await context.write(b"first:" + first)
        async for request in context:
            await context.write(b"then:" + request, compress=False)
        assert await context.read() is None  # the end, again

    server = await serve({BIDI: bidi})
    try:
        result = await asyncio.wait_for(
            exchange(server.port, BIDI.path, messages=[b"a", b"b", b"c"]), TIMEOUT
        )
    finally:
        await server.stop()
    assert result.messages == [b"first:a", b"then:b", b"then:c"]
    assert result.code == 0


async def test_request_iterator_argument() -> None:
    async def count(requests: AsyncIterator[bytes], context: rpc.ServerContext) -> bytes:
        return b"%d" % len([r async for r in requests])

    server = await serve({CLIENT_STREAM: count})
    try:
        result = await asyncio.wait_for(
            exchange(server.port, CLIENT_STREAM.path, messages=[b"1", b"2", b"3"]), TIMEOUT
        )
    finally:
        await server.stop()
    assert result.messages == [b"3"]


async def test_unary_request_must_be_exactly_one_message() -> None:
    async def echo(request: bytes, context: rpc.ServerContext) -> bytes:
        return request

    server = await serve({UNARY: echo})
    try:
        none = await asyncio.wait_for(exchange(server.port, UNARY.path, messages=[]), TIMEOUT)
        two = await asyncio.wait_for(
            exchange(server.port, UNARY.path, messages=[b"1", b"2"]), TIMEOUT
        )
    finally:
        await server.stop()
    assert none.code == two.code == StatusCode.UNIMPLEMENTED
    assert "got none" in none.status["grpc-message"]
    assert "got several" in two.status["grpc-message"]


async def test_send_limit_is_resource_exhausted() -> None:
    async def big(request: bytes, context: rpc.ServerContext) -> bytes:
        return bytes(2048)

    server = await serve({UNARY: big}, max_send_message_length=1024)
    try:
        result = await asyncio.wait_for(exchange(server.port, UNARY.path), TIMEOUT)
    finally:
        await server.stop()
    assert result.code == StatusCode.RESOURCE_EXHAUSTED


async def test_server_settings_changed_after_construction_apply_to_later_calls() -> None:
    async def echo(request: bytes, context: rpc.ServerContext) -> bytes:
        return request

    server = await serve({UNARY: echo})
    try:
        server.max_receive_message_length = 4
        result = await asyncio.wait_for(
            exchange(server.port, UNARY.path, messages=[b"too long"]), TIMEOUT
        )
        with pytest.raises(ValueError):
            server.compression = "no-such-codec"
    finally:
        await server.stop()
    assert result.code == StatusCode.RESOURCE_EXHAUSTED
    assert server.max_receive_message_length == 4
