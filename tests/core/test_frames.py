"""Frame-level behaviour, checked against a bare h2 state machine as the peer."""

from __future__ import annotations

import asyncio
import contextlib

import h2.events
import pytest
from h2.settings import SettingCodes

import rpc.core
from rpc.core import Connection, ConnectionClosedError
from rpc.http2 import ErrorCodes

from .helpers import LOOPBACK, TIMEOUT, RawPeer, echo_handler, raw_frame, serve, wait_until

GET = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "test")]


def _is(kind: type, **attrs: object):  # type: ignore[no-untyped-def]
    def match(event: h2.events.Event) -> bool:
        return isinstance(event, kind) and all(getattr(event, k) == v for k, v in attrs.items())

    return match


async def test_streams_beyond_concurrency_are_refused_even_before_settings_ack() -> None:
    """A client opening 10 streams at once against concurrency=3 gets 7 REFUSED_STREAM."""
    release = asyncio.Event()

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await release.wait()
        await conn.start_response(stream_id, {":status": "200"}, end_stream=True)

    async with serve(handler, concurrency=3) as server:
        peer = await RawPeer.connect(server.port)
        # Do not wait for the server's SETTINGS: h2 still believes the limit is unbounded.
        peer.h2.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 1000
        for i in range(10):
            peer.h2.send_headers(1 + 2 * i, GET, end_stream=True)
        await peer.flush()
        refused: set[int] = set()
        while len(refused) < 7:
            for event in await peer.receive_once():
                if isinstance(event, h2.events.StreamReset):
                    assert event.error_code == ErrorCodes.REFUSED_STREAM
                    refused.add(event.stream_id)
        assert refused == {7, 9, 11, 13, 15, 17, 19}
        release.set()
        for stream_id in (1, 3, 5):
            await peer.wait_for(_is(h2.events.ResponseReceived, stream_id=stream_id))
        assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in peer.events)
        # The server kept serving: a new stream after the others finished works.
        peer.h2.send_headers(21, GET, end_stream=True)
        await peer.flush()
        await peer.wait_for(_is(h2.events.ResponseReceived, stream_id=21))
        peer.close()


async def test_unknown_frames_priority_for_idle_streams_and_priority_update_are_tolerated() -> None:
    async with serve(echo_handler) as server:
        peer = await RawPeer.connect(server.port)
        await peer.wait_for(_is(h2.events.RemoteSettingsChanged))
        # An extension frame of unknown type 0xBB on stream 0 and on stream 1.
        await peer.write_raw(raw_frame(0xBB, 0, 0, b"whatever"))
        await peer.write_raw(raw_frame(0xBB, 0x5, 1, b"x" * 10))
        # PRIORITY for an idle stream (RFC 9113 allows it) ...
        peer.h2.prioritize(41, weight=100, depends_on=0, exclusive=False)
        await peer.flush()
        # ... and an RFC 9218 PRIORITY_UPDATE (type 0x10) for stream 1.
        await peer.write_raw(raw_frame(0x10, 0, 0, b"\x00\x00\x00\x01u=2, i"))
        peer.h2.send_headers(1, [(":method", "POST"), *GET[1:]])
        peer.h2.send_data(1, b"still alive", end_stream=True)
        await peer.flush()
        await peer.wait_for(_is(h2.events.StreamEnded, stream_id=1))
        body = b"".join(
            e.data
            for e in peer.events
            if isinstance(e, h2.events.DataReceived) and e.stream_id == 1
        )
        assert body == b"still alive"
        assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in peer.events)
        peer.close()


async def test_protocol_error_sends_goaway_then_closes() -> None:
    async with serve(echo_handler) as server:
        peer = await RawPeer.connect(server.port)
        await peer.wait_for(_is(h2.events.RemoteSettingsChanged))
        # DATA on stream 0 is a connection error of type PROTOCOL_ERROR.
        await peer.write_raw(raw_frame(0x0, 0, 0, b"bad"))
        events = await peer.read_until_closed()
        goaway = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert goaway and goaway[0].error_code == ErrorCodes.PROTOCOL_ERROR
        await wait_until(lambda: server.connections[0].closed)


async def test_flow_control_violation_by_peer_is_an_error(http2_engine: str) -> None:
    async with serve(echo_handler, stream_window_size=1000) as server:
        peer = await RawPeer.connect(server.port)
        await peer.wait_for(_is(h2.events.RemoteSettingsChanged))
        peer.h2.send_headers(1, [(":method", "POST"), *GET[1:]])
        await peer.flush()
        # 2000 bytes on a stream whose window is 1000 (but within the
        # connection's), written by hand.
        await peer.write_raw(raw_frame(0x0, 0, 1, b"v" * 2000))
        if http2_engine == "native":
            # RFC 9113 6.9.1 lets the receiver choose a stream or a connection
            # error; the native engine resets only the stream (its
            # receive_streams._recv_data), h2 ends the connection.
            reset = await peer.wait_for(_is(h2.events.StreamReset, stream_id=1))
            assert isinstance(reset, h2.events.StreamReset)
            assert reset.error_code == ErrorCodes.FLOW_CONTROL_ERROR
            peer.h2.send_headers(3, [(":method", "POST"), *GET[1:]])
            peer.h2.send_data(3, b"fine", end_stream=True)
            await peer.flush()
            await peer.wait_for(_is(h2.events.StreamEnded, stream_id=3))
            assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in peer.events)
            peer.close()
            return
        events = await peer.read_until_closed()
        goaway = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert goaway and goaway[0].error_code == ErrorCodes.FLOW_CONTROL_ERROR


@pytest.mark.parametrize("early_credit", [True, False])
async def test_stream_window_update_only_after_the_application_reads(early_credit: bool) -> None:
    """The stream's credit waits for reads; the connection's comes on receipt
    (unless ``max_unread_credited=0``), so unread data holds back its own
    stream only."""
    read_now = asyncio.Event()
    got: list[bytes] = []

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await read_now.wait()
        got.append(await conn.read_stream(stream_id, -1))
        await conn.start_response(stream_id, {":status": "200"}, end_stream=True)

    limit = None if early_credit else 0
    async with serve(
        handler, stream_window_size=65_535, connection_window_size=65_535,
        max_unread_credited=limit,
    ) as server:
        peer = await RawPeer.connect(server.port)
        await peer.wait_for(_is(h2.events.RemoteSettingsChanged))
        peer.h2.send_headers(1, [(":method", "POST"), *GET[1:]])
        for _ in range(4):
            peer.h2.send_data(1, b"d" * 16_000)
        await peer.flush()
        peer.events.clear()
        if early_credit:
            update = await peer.wait_for(_is(h2.events.WindowUpdated, stream_id=0))
            assert isinstance(update, h2.events.WindowUpdated) and update.delta >= 32_000
        else:
            with pytest.raises(asyncio.TimeoutError):
                await peer.wait_for(_is(h2.events.WindowUpdated), timeout=0.3)
        with pytest.raises(asyncio.TimeoutError):
            await peer.wait_for(_is(h2.events.WindowUpdated, stream_id=1), timeout=0.3)
        read_now.set()
        peer.h2.end_stream(1)
        await peer.flush()
        await peer.wait_for(_is(h2.events.ResponseReceived, stream_id=1))
        assert got == [b"d" * 64_000]
        updates = [e for e in peer.events if isinstance(e, h2.events.WindowUpdated)]
        connection = sum(u.delta for u in updates if u.stream_id == 0)
        if early_credit:
            # Credited once, on receipt (coalesced: the last 16,000 are still owed).
            assert connection == 48_000
        else:
            # Reading 64,000 of 65,535 bytes hands that credit back on the connection.
            assert connection == 64_000
        peer.close()


async def _raw_server(
    handle: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> tuple[asyncio.Server, int]:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not handle.done():
            handle.set_result((reader, writer))

    server = await asyncio.start_server(accept, LOOPBACK, 0)
    return server, server.sockets[0].getsockname()[1]


async def _raw_server_peer(
    port_future: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> RawPeer:
    reader, writer = await asyncio.wait_for(port_future, TIMEOUT)
    peer = RawPeer(reader, writer, client_side=False)
    peer.h2.initiate_connection()
    await peer.flush()
    return peer


async def test_informational_response_is_skipped() -> None:
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
    accepted = asyncio.get_running_loop().create_future()
    server, port = await _raw_server(accepted)
    conn = await rpc.core.open_connection(LOOPBACK, port)
    peer = await _raw_server_peer(accepted)
    stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
    await peer.wait_for(_is(h2.events.RequestReceived, stream_id=stream_id))
    peer.h2.send_headers(stream_id, [(":status", "103"), ("link", "</a>; rel=preload")])
    peer.h2.send_headers(stream_id, [(":status", "100")])
    peer.h2.send_headers(stream_id, [(":status", "200"), ("x", "final")])
    peer.h2.send_data(stream_id, b"body", end_stream=True)
    await peer.flush()
    assert await conn.recv_response(stream_id) == [(":status", "200"), ("x", "final")]
    assert await conn.read_stream(stream_id, -1) == b"body"
    assert await conn.recv_trailers(stream_id) == []
    peer.close()
    server.close()
    await conn.wait_closed()


async def test_dead_peer_is_detected() -> None:
    """A peer that stops answering (no PING ack, no traffic) is declared dead."""
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
    accepted = asyncio.get_running_loop().create_future()
    server, port = await _raw_server(accepted)
    timeout = 0.2
    conn = await rpc.core.open_connection(LOOPBACK, port, functional_timeout=timeout)
    peer = await _raw_server_peer(accepted)
    await peer.receive_once()  # our preface and SETTINGS; from now on the peer is silent
    stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionClosedError, match="PING"):
        await asyncio.wait_for(conn.recv_response(stream_id), TIMEOUT)
    elapsed = loop.time() - started
    # Quiet for `timeout`, then a PING with `timeout` to answer: dead after ~2x.
    assert elapsed >= timeout
    assert elapsed < 10 * timeout + 1
    with pytest.raises(ConnectionClosedError):
        await conn.wait_functional()
    peer.close()
    server.close()


async def test_goaway_fails_only_unprocessed_streams() -> None:
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
    accepted = asyncio.get_running_loop().create_future()
    server, port = await _raw_server(accepted)
    conn = await rpc.core.open_connection(LOOPBACK, port)
    peer = await _raw_server_peer(accepted)
    ids = [
        await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
        for _ in range(3)
    ]
    assert ids == [1, 3, 5]
    await peer.wait_for(_is(h2.events.RequestReceived, stream_id=5))
    peer.h2.close_connection(error_code=ErrorCodes.NO_ERROR, last_stream_id=3)
    await peer.flush()
    with pytest.raises(ConnectionClosedError) as info:
        await asyncio.wait_for(conn.recv_response(5), TIMEOUT)
    assert info.value.unprocessed and info.value.last_stream_id == 3
    with pytest.raises(ConnectionClosedError) as info:
        await conn.start_request({":method": "GET", ":path": "/"})
    assert info.value.unprocessed
    # Streams 1 and 3 were accepted before the GOAWAY and still complete.
    # (h2 refuses to send after GOAWAY, so the raw peer writes frames by hand.)
    for stream_id in (1, 3):
        peer.h2.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
        peer.h2.send_headers(stream_id, [(":status", "200")])
        peer.h2.send_data(stream_id, b"done", end_stream=True)
    await peer.flush()
    for stream_id in (1, 3):
        assert await conn.recv_response(stream_id) == [(":status", "200")]
        assert await conn.read_stream(stream_id, -1) == b"done"
        assert await conn.recv_trailers(stream_id) == []
    # The last stream done, the client closes the connection by itself.
    await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    peer.close()
    server.close()


@pytest.mark.parametrize(
    "headers",
    [
        [*GET, ("X-Upper", "1")],  # upper-case name
        [(":method", "GET"), (":path", "/"), (":authority", "test")],  # no :scheme
        [*GET, ("connection", "keep-alive")],  # connection-specific
        [*GET, ("te", "gzip")],  # te other than trailers
        [("x-first", "1"), *GET],  # pseudo-header after a regular one
        [*GET, (":status", "200")],  # response pseudo-header in a request
        [*GET, ("host", "elsewhere.example")],  # :authority and host disagree
        [(":method", "GET"), (":path", "/"), (":scheme", "http")],  # no authority at all
        [(":method", "CONNECT"), (":authority", "x:1"), (":path", "/")],  # CONNECT + :path
    ],
    ids=[
        "uppercase",
        "no-scheme",
        "connection",
        "te",
        "pseudo-late",
        "status",
        "host-mismatch",
        "no-authority",
        "connect-path",
    ],
)
async def test_a_malformed_request_is_a_stream_error_not_a_connection_error(
    headers: list[tuple[str, str]],
) -> None:
    async with serve(echo_handler) as server:
        peer = await RawPeer.connect(server.port)
        peer.h2.config.validate_outbound_headers = False
        peer.h2.config.normalize_outbound_headers = False
        peer.h2.send_headers(1, headers, end_stream=True)
        await peer.flush()
        reset = await peer.wait_for(_is(h2.events.StreamReset, stream_id=1))
        assert isinstance(reset, h2.events.StreamReset)
        assert reset.error_code == ErrorCodes.PROTOCOL_ERROR
        # The connection carries on: a well-formed request on it is answered.
        peer.h2.send_headers(3, [(":method", "POST"), *GET[1:]])
        peer.h2.send_data(3, b"fine", end_stream=True)
        await peer.flush()
        await peer.wait_for(_is(h2.events.StreamEnded, stream_id=3))
        assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in peer.events)
        peer.close()


async def test_a_malformed_response_fails_only_its_stream() -> None:
    """A server answering with an upper-case header name: the client resets that stream."""

    async def on_connected(peer: RawPeer) -> None:
        await peer.wait_for(_is(h2.events.RequestReceived, stream_id=1))
        peer.h2.send_headers(1, [(":status", "200"), ("Bad-Name", "x")])
        await peer.flush()
        await peer.wait_for(_is(h2.events.StreamReset, stream_id=1))
        await peer.wait_for(_is(h2.events.RequestReceived, stream_id=3))
        peer.h2.send_headers(3, [(":status", "200")], end_stream=True)
        await peer.flush()
        await peer.wait_for(_is(h2.events.ConnectionTerminated))

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = RawPeer(reader, writer, client_side=False)
        peer.h2.config.validate_outbound_headers = False
        peer.h2.config.normalize_outbound_headers = False
        peer.h2.initiate_connection()
        await peer.flush()
        with contextlib.suppress(Exception):
            await on_connected(peer)
        peer.close()

    server = await asyncio.start_server(accept, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await rpc.core.open_connection(LOOPBACK, port)
        first = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
        with pytest.raises(rpc.core.StreamResetError) as caught:
            await asyncio.wait_for(conn.recv_response(first), TIMEOUT)
        assert caught.value.error_code == ErrorCodes.PROTOCOL_ERROR
        second = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
        headers = await asyncio.wait_for(conn.recv_response(second), TIMEOUT)
        assert headers == [(":status", "200")]
        await conn.close_connection()
    finally:
        server.close()
        await server.wait_closed()
