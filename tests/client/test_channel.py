"""rpc.client.Channel: what it offers its calls (the connection to use, the
user agent), through its public methods and what a server sees."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest

import rpc
import rpc.core
from rpc import BackoffConfig, ConnectivityState, RpcError, StatusCode
from rpc.http2 import ErrorCodes
from rpc.protocol.framing import encode_frame

TIMEOUT = 10
FAST = BackoffConfig(initial_backoff=0.05, multiplier=1.6, jitter=0.2, max_backoff=0.3)


async def _raw_server(handler: Callable[[rpc.core.Connection], Any]) -> tuple[Any, int]:
    server = await rpc.core.start_server(handler, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    return server, port


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _bytes_method() -> rpc.Method[bytes, bytes]:
    def same(data: bytes) -> bytes:
        return data

    return rpc.Method("/t.Raw/Call", rpc.MethodKind.UNARY_UNARY, same, same, same, same)


async def _answer_each_call(conn: rpc.core.Connection, seen: list[dict[str, str]]) -> None:
    while True:
        try:
            stream_id, headers = await conn.recv_request()
        except rpc.core.ConnectionClosedError:
            return
        seen.append(dict(headers))
        body = await conn.read_stream(stream_id, -1)
        await conn.start_response(stream_id, {":status": "200", "content-type": "application/grpc"})
        await conn.send_data(stream_id, body or encode_frame(b""))
        await conn.send_trailers(stream_id, {"grpc-status": "0"})


async def test_user_agent_puts_the_applications_before_h2rpcs() -> None:
    seen: list[dict[str, str]] = []
    server, port = await _raw_server(lambda conn: _answer_each_call(conn, seen))
    async with rpc.Channel(f"127.0.0.1:{port}", user_agent="my-app/1.2") as channel:
        assert channel.user_agent.startswith(b"my-app/1.2 grpc-python-h2rpc/")
        assert await channel.unary_unary(_bytes_method())(b"x", timeout=TIMEOUT) == b"x"
    assert seen[0]["user-agent"] == channel.user_agent.decode()
    server.close()
    await server.wait_closed()


async def test_ready_connection_is_only_a_query() -> None:
    """Asking for the ready connection never connects: an IDLE channel stays IDLE."""
    seen: list[dict[str, str]] = []
    server, port = await _raw_server(lambda conn: _answer_each_call(conn, seen))
    async with rpc.Channel(f"127.0.0.1:{port}") as channel:
        assert channel.ready_connection() is None
        assert channel.get_state() is ConnectivityState.IDLE
        conn = await asyncio.wait_for(channel.connection_for_call(wait_for_ready=False), TIMEOUT)
        assert channel.get_state() is ConnectivityState.READY
        assert channel.ready_connection() is conn
    server.close()
    await server.wait_closed()


async def test_a_connection_after_goaway_is_let_go_and_the_next_call_connects_again() -> None:
    connections: list[rpc.core.Connection] = []
    seen: list[dict[str, str]] = []

    async def on_connected(conn: rpc.core.Connection) -> None:
        connections.append(conn)
        await _answer_each_call(conn, seen)

    server, port = await _raw_server(on_connected)
    async with rpc.Channel(f"127.0.0.1:{port}", backoff=FAST) as channel:
        unary = channel.unary_unary(_bytes_method())
        assert await unary(b"1", timeout=TIMEOUT) == b"1"
        first = channel.ready_connection()
        assert first is not None
        connections[0].send_goaway(ErrorCodes.NO_ERROR)
        for _ in range(200):
            if channel.ready_connection() is None:
                break
            await asyncio.sleep(0.02)
        assert channel.ready_connection() is None
        channel.forget_closed_connection()
        assert channel.get_state() is ConnectivityState.IDLE
        assert await unary(b"2", timeout=TIMEOUT) == b"2"
        assert channel.ready_connection() not in (None, first)
        assert len(connections) == 2
    server.close()
    await server.wait_closed()


async def test_connection_for_call_fails_fast_in_transient_failure() -> None:
    async with rpc.Channel(f"127.0.0.1:{_unused_port()}", backoff=FAST) as channel:
        with pytest.raises(RpcError) as info:
            await asyncio.wait_for(channel.connection_for_call(wait_for_ready=False), TIMEOUT)
        assert info.value.code is StatusCode.UNAVAILABLE
        assert channel.get_state() is ConnectivityState.TRANSIENT_FAILURE
        waiting = asyncio.ensure_future(channel.connection_for_call(wait_for_ready=True))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
