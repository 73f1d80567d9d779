"""End-to-end exchanges between the core client and the core server over TCP."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

import rpc.core
from rpc.core import Connection
from rpc.http2 import SettingCodes

from . import helpers
from .helpers import TIMEOUT, echo_handler, request, serve

ROOT = Path(__file__).resolve().parents[2]


def test_example_prints_body_and_trailers() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "core.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Response body: b'hello, world'" in result.stdout
    assert "Response trailers: [('len', '5')]" in result.stdout
    assert "Round-trip time:" in result.stdout


async def test_echo_with_dict_and_list_headers() -> None:
    async with serve() as server:
        conn = await server.connect()
        headers, body, trailers = await request(conn, b"payload")
        assert headers == [(":status", "200")]
        assert body == b"payload"
        assert trailers == [("len", "7")]
        stream_id = await conn.start_request(
            [(":method", "POST"), (":path", "/x"), ("X-Custom", "Value")]
        )
        await conn.end_stream(stream_id)
        assert await conn.recv_response(stream_id) == [(":status", "200")]
        assert await conn.read_stream(stream_id, -1) == b""
        assert await conn.recv_trailers(stream_id) == [("len", "0")]
        await conn.close_connection()


async def test_request_defaults_and_header_case() -> None:
    seen: list[list[tuple[str, str]]] = []

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        seen.append(headers)
        await conn.start_response(stream_id, {":status": "204"}, end_stream=True)

    async with serve(handler) as server:
        conn = await server.connect()
        stream_id = await conn.start_request(
            {"X-Upper": "v", ":path": "/p", ":method": "GET"}, end_stream=True
        )
        assert await conn.recv_response(stream_id) == [(":status", "204")]
        assert await conn.recv_trailers(stream_id) == []
        await conn.close_connection()
    headers = dict(seen[0])
    assert headers[":scheme"] == "http"
    assert headers[":authority"] == f"127.0.0.1:{server.port}"
    assert headers["x-upper"] == "v"
    assert [name for name, _ in seen[0]][:4] == [":path", ":method", ":scheme", ":authority"]


async def test_invalid_headers_raise_before_anything_is_sent() -> None:
    async with serve() as server:
        conn = await server.connect()
        with pytest.raises(ValueError, match="connection-specific"):
            await conn.start_request({":method": "GET", ":path": "/", "connection": "close"})
        with pytest.raises(ValueError, match=":path"):
            await conn.start_request({":method": "GET"})
        with pytest.raises(ValueError, match="CR or LF"):
            await conn.start_request({":method": "GET", ":path": "/", "x": "a\r\nb"})
        # The connection (and its HPACK state) is still good.
        assert (await request(conn, b"ok"))[1] == b"ok"
        assert conn.open_streams == 0
        await conn.close_connection()


async def test_read_stream_sizes() -> None:
    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        for part in (b"abc", b"defg", b"hij"):
            await conn.send_data(stream_id, part)
            await asyncio.sleep(0.01)
        await conn.end_stream(stream_id)

    async with serve(handler) as server:
        conn = await server.connect()
        stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
        await conn.recv_response(stream_id)
        assert await conn.read_stream(stream_id, 0) == b""
        assert await conn.read_stream(stream_id, 5) == b"abcde"
        assert await conn.read_stream(stream_id, None) == b"fg"
        assert await conn.read_stream(stream_id, 100) == b"hij"
        assert await conn.read_stream(stream_id, 100) == b""
        assert await conn.read_stream(stream_id) == b""
        await conn.close_connection()


async def test_sequential_requests_leave_no_stream_state(
    http2_engine: str, request: pytest.FixtureRequest
) -> None:
    """100,000 requests one after another on one connection (aioh2 died at ~1,000).

    Nothing may accumulate per stream, in the connection's parts or in the
    engine: memory is measured (tracemalloc) over the last 30,000 requests,
    by when both engines' bounded memory of closed stream ids is full (h2
    keeps 65,536, the native engine ``Limits.max_closed_streams_remembered``).
    Tracing starts with the first request, so that what those bounded
    memories forget is subtracted too (tracemalloc only counts the frees of
    blocks it saw allocated).
    """
    if http2_engine == "h2":
        # Not a documented engine difference: found when this test moved from
        # counting h2's streams to measuring memory. Under the h2 engine about
        # 245 bytes per request stay allocated (7.3 MB over 30,000 requests;
        # native: under 1 MB), not yet diagnosed. Strict, so a fix shows here.
        request.applymarker(
            pytest.mark.xfail(strict=True, reason="memory grows per request under h2 (open)")
        )
    count = 100_000
    measured_from = 70_000
    last_stream_id = 0

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        nonlocal last_stream_id
        last_stream_id = stream_id
        await echo_handler(conn, stream_id, headers)

    async with serve(handler) as server:
        conn = await server.connect()
        baseline = 0
        tracemalloc.start()
        try:
            for i in range(count):
                if i == measured_from:
                    gc.collect()
                    baseline = tracemalloc.get_traced_memory()[0]
                _, body, trailers = await helpers.request(conn, b"x" * (i % 7))
                assert body == b"x" * (i % 7)
                assert trailers == [("len", str(i % 7))]
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - baseline
        finally:
            tracemalloc.stop()
        # A leak of one dict entry per stream would be ~2 MB here.
        assert grown < 1_000_000, f"{grown} bytes kept after {count - measured_from} requests"
        assert len(server.connections) == 1
        server_conn = server.connections[0]
        for side in (conn, server_conn):
            assert side.open_streams == 0
            assert side.retained_streams == 0
        assert last_stream_id == 2 * count - 1  # every request on that one connection
        await conn.close_connection()


async def test_thousand_concurrent_streams() -> None:
    async with serve(echo_handler, concurrency=1000) as server:
        conn = await server.connect()
        bodies = [f"request {i}".encode() * (1 + i % 50) for i in range(1000)]
        results = await asyncio.wait_for(
            asyncio.gather(*(request(conn, body) for body in bodies)), TIMEOUT
        )
        assert [r[1] for r in results] == bodies
        assert all(r[2] == [("len", str(len(b)))] for r, b in zip(results, bodies, strict=True))
        assert conn.open_streams == 0
        await conn.close_connection()


async def test_client_waits_for_a_free_slot() -> None:
    """More concurrent requests than the server allows: they queue, none is refused."""
    release = asyncio.Event()
    active = 0
    peak = 0

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await release.wait()
        await conn.start_response(stream_id, {":status": "200"}, end_stream=True)
        active -= 1

    async with serve(handler, concurrency=3) as server:
        conn = await server.connect()
        await conn.wait_functional()  # the server's SETTINGS have arrived by now
        assert conn.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 3

        async def one() -> list[tuple[str, str]]:
            stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
            return await conn.recv_response(stream_id)

        tasks = [asyncio.create_task(one()) for _ in range(10)]
        await asyncio.sleep(0.2)
        assert active == 3
        release.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        assert all(r == [(":status", "200")] for r in results)
        assert peak == 3
        await conn.close_connection()


async def test_large_body_through_one_send_data() -> None:
    size = 64 * 1024 * 1024
    body = bytes(range(256)) * (size // 256)

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        await conn.send_data(stream_id, body, end_stream=True)

    async with serve(handler) as server:
        conn = await server.connect()
        stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
        await conn.recv_response(stream_id)
        received = bytearray()
        while chunk := await asyncio.wait_for(conn.read_stream(stream_id), TIMEOUT):
            received += chunk
        assert len(received) == size
        assert received == body
        await conn.close_connection()


async def test_graceful_close_lets_open_streams_finish() -> None:
    started = asyncio.Event()

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        started.set()
        body = await conn.read_stream(stream_id, -1)
        await conn.send_data(stream_id, body, end_stream=True)

    async with serve(handler) as server:
        conn = await server.connect()
        stream_id = await conn.start_request({":method": "POST", ":path": "/"})
        await started.wait()
        server_conn = server.connections[0]
        closing = server_conn.close_connection(timeout=TIMEOUT)
        await asyncio.sleep(0.05)
        # GOAWAY received: no new streams, but the open one continues.
        with pytest.raises(rpc.core.ConnectionClosedError) as info:
            await conn.start_request({":method": "GET", ":path": "/"})
        assert info.value.unprocessed
        await conn.send_data(stream_id, b"late data", end_stream=True)
        assert await conn.read_stream(stream_id, -1) == b"late data"
        await asyncio.wait_for(closing, TIMEOUT)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)


async def test_any_port_on_all_addresses_is_one_port() -> None:
    """``start_server(port=0)`` without a host: IPv4 and IPv6 sockets share the port."""

    async def on_connected(conn: Connection) -> None:
        stream_id, _ = await conn.recv_request()
        await conn.start_response(stream_id, {":status": "200"}, end_stream=True)

    server = await rpc.core.start_server(on_connected, port=0)
    ports = {sock.getsockname()[1] for sock in server.sockets}
    assert len(ports) == 1
    conn = await rpc.core.open_connection("127.0.0.1", ports.pop())
    stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
    assert await conn.recv_response(stream_id) == [(":status", "200")]
    await conn.close_connection()
    server.close()
    await server.wait_closed()
