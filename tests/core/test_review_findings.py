"""Regression tests for bugs a review of the core found (each failed before its fix)."""

from __future__ import annotations

import asyncio

import h2.config
import h2.connection
import h2.events
import pytest

import rpc.core
from rpc.core import Connection

from .helpers import LOOPBACK, TIMEOUT, DrainingH2Connection, raw_frame, serve, wait_until

GET = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")]


async def test_settings_arriving_after_our_goaway_are_acked_not_fatal() -> None:
    """close_connection() before the server's first SETTINGS: they must still be acked."""

    async def late_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.1)  # the server's preface comes late
        # It still answers after our GOAWAY, which a stock h2 connection refuses to.
        peer = DrainingH2Connection(h2.config.H2Configuration(client_side=False))
        peer.initiate_connection()
        writer.write(peer.data_to_send())
        while data := await reader.read(65536):
            for event in peer.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    peer.send_headers(event.stream_id, [(b":status", b"200")])
                    peer.send_data(event.stream_id, b"hello", end_stream=True)
            writer.write(peer.data_to_send())
        writer.close()

    server = await asyncio.start_server(late_server, LOOPBACK, 0)
    conn = await rpc.core.open_connection(LOOPBACK, server.sockets[0].getsockname()[1])
    stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
    closing = conn.close_connection(timeout=TIMEOUT)  # our GOAWAY is out before their SETTINGS
    assert await asyncio.wait_for(conn.recv_response(stream_id), TIMEOUT) == [(":status", "200")]
    assert await conn.read_stream(stream_id, -1) == b"hello"
    await asyncio.wait_for(closing, TIMEOUT)
    server.close()


async def test_headers_and_reset_in_one_read_beyond_the_limit_do_not_kill_the_connection() -> None:
    async def slow(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        await asyncio.sleep(0.3)
        await conn.send_data(stream_id, b"done", end_stream=True)

    async with serve(slow, concurrency=1) as server:
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        peer.initiate_connection()
        peer.send_headers(1, GET, end_stream=True)  # takes the only slot
        writer.write(peer.data_to_send())
        await asyncio.sleep(0.1)
        peer.send_headers(3, GET)  # over the limit...
        peer.reset_stream(3, 8)  # ...and cancelled in the same segment
        writer.write(peer.data_to_send())
        body = b""
        ended = False
        while not ended:
            data = await asyncio.wait_for(reader.read(65536), TIMEOUT)
            assert data, "the server closed the connection"
            for event in peer.receive_data(data):
                if isinstance(event, h2.events.DataReceived) and event.stream_id == 1:
                    body += event.data
                ended = ended or (isinstance(event, h2.events.StreamEnded) and event.stream_id == 1)
            writer.write(peer.data_to_send())
        assert body == b"done"
        writer.close()


async def test_goaway_read_in_the_same_iteration_does_not_drop_queued_frames() -> None:
    done = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        # The peer's graceful GOAWAY is on the wire and gets read in the same
        # loop iteration in which this response is queued.
        writers[0].write(raw_frame(0x7, 0, 0, b"\x00\x00\x00\x00\x00\x00\x00\x00"))
        await asyncio.sleep(0)
        await conn.start_response(stream_id, {":status": "200"})
        await conn.send_data(stream_id, b"hello", end_stream=True)
        done.set()

    async with serve(handler) as server:
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        writers.append(writer)
        peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        peer.initiate_connection()
        peer.send_headers(1, GET, end_stream=True)
        writer.write(peer.data_to_send())
        received = b""
        while data := await asyncio.wait_for(reader.read(65536), TIMEOUT):
            received += data
        await done.wait()
        # Parse what arrived with a fresh h2 client (our GOAWAY made by hand is not in it).
        events = peer.receive_data(received)
        kinds = [type(e) for e in events]
        assert h2.events.ResponseReceived in kinds
        assert b"hello" in b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        writer.close()


async def test_bare_end_stream_does_not_wait_for_the_connection_window() -> None:
    order: list[int] = []

    async def one_at_a_time(conn: Connection) -> None:
        while True:
            stream_id, _ = await conn.recv_request()
            await conn.read_stream(stream_id, -1)
            order.append(stream_id)
            await conn.start_response(stream_id, {":status": "200"}, end_stream=True)

    server = await rpc.core.start_server(
        one_at_a_time, LOOPBACK, 0, connection_window_size=65_535, stream_window_size=65_535
    )
    conn = await rpc.core.open_connection(LOOPBACK, server.sockets[0].getsockname()[1])
    await conn.wait_functional()
    first = await conn.start_request({":method": "POST", ":path": "/a"})
    await conn.send_data(first, b"small")
    second = await conn.start_request({":method": "POST", ":path": "/b"})
    big = asyncio.create_task(conn.send_data(second, b"x" * 100_000, end_stream=True))
    await asyncio.sleep(0.1)  # the connection window is used up; the rest is queued
    await asyncio.wait_for(conn.end_stream(first), TIMEOUT)
    assert await asyncio.wait_for(conn.recv_response(first), TIMEOUT) == [(":status", "200")]
    await asyncio.wait_for(big, TIMEOUT)
    await conn.recv_response(second)
    assert order == [first, second]
    await conn.close_connection()
    server.close()


@pytest.mark.parametrize("early_credit", [0, 128 * 1024])
async def test_unread_closed_responses_are_kept_and_bound_the_connection_window(
    early_credit: int,
) -> None:
    """Complete responses nobody read yet are never dropped; their memory stays
    bounded by the connection window plus the credit returned early for unread
    data (``max_unread_credited``)."""
    conn_window = 256 * 1024

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        await conn.send_data(stream_id, b"d" * 10_000, end_stream=True)

    async with serve(handler, concurrency=2000) as server:
        conn = await server.connect(
            connection_window_size=conn_window, max_unread_credited=early_credit
        )
        streams = []
        for _ in range(40):  # 400 KB of responses: more than the window and the early credit
            streams.append(
                await conn.open_stream({":method": "GET", ":path": "/"}, end_stream=True)
            )
        await asyncio.sleep(0.3)
        assert conn.retained_streams > 0  # some responses are complete and unread
        buffered = sum(stream.buffered for stream in streams)
        assert buffered <= conn_window + early_credit
        for stream in streams:  # all of them arrive, in full, once read
            await conn.recv_response(stream.id)
            assert await asyncio.wait_for(conn.read_stream(stream.id, -1), TIMEOUT) == b"d" * 10_000
            assert await conn.recv_trailers(stream.id) == []
        assert conn.retained_streams == 0 and conn.open_streams == 0
        # reset_stream on a closed stream releases it (abandon without reading).
        stream = await conn.open_stream({":method": "GET", ":path": "/"}, end_stream=True)
        await wait_until(lambda: conn.open_streams == 0 and conn.retained_streams == 1)
        assert stream.buffered == 10_000
        conn.reset_stream(stream.id)
        assert conn.retained_streams == 0
        await conn.close_connection()


async def test_handler_closing_its_own_connection_is_not_cancelled_by_it() -> None:
    after: list[str] = []

    async def on_connected(conn: Connection) -> None:
        await conn.close_connection(timeout=1)
        after.append("returned")

    server = await rpc.core.start_server(on_connected, LOOPBACK, 0)
    conn = await rpc.core.open_connection(LOOPBACK, server.sockets[0].getsockname()[1])
    await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    await wait_until(lambda: after == ["returned"])
    server.close()
