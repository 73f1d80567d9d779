"""The read side of a connection (rpc.core.reader): feed the engine, dispatch, write once.

Driven through :class:`rpc.core.Connection`'s protocol methods with a transport
that records what is written and whether reading is paused.
"""

from __future__ import annotations

import asyncio

import hpack
import pytest

from rpc.core import Connection, ConnectionClosedError, Stream
from rpc.core.liveness import Liveness
from rpc.http2 import ConnectionSettings, ErrorCodes
from rpc.http2.frames import frame_header, ping_frame, settings_frame
from rpc.http2.settings import Limits

from .helpers import RecordingTransport

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x4, 0x6, 0x7
ACK = END_STREAM = 0x1
END_HEADERS = 0x4


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of every frame in ``data``."""
    out = []
    offset = 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 3], "big")
        frame_type, flags = data[offset + 3], data[offset + 4]
        stream_id = int.from_bytes(data[offset + 5 : offset + 9], "big") & 0x7FFF_FFFF
        out.append((frame_type, flags, stream_id, data[offset + 9 : offset + 9 + length]))
        offset += 9 + length
    return out


def request(stream_id: int = 1) -> bytes:
    block = hpack.Encoder().encode(
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "x")]
    )
    return frame_header(len(block), HEADERS, END_STREAM | END_HEADERS, stream_id) + block


def server(settings: ConnectionSettings | None = None) -> tuple[Connection, RecordingTransport]:
    conn = Connection(client_side=False, settings=settings)
    transport = RecordingTransport()
    conn.connection_made(transport)
    transport.writes.clear()  # our preface
    return conn, transport


async def test_a_read_is_answered_in_one_write() -> None:
    conn, transport = server()
    conn.data_received(PREFACE + settings_frame({}) + ping_frame(b"pingpong", ack=False))
    [written] = transport.writes
    assert [(t, f) for t, f, _, _ in frames(written)] == [(SETTINGS, ACK), (PING, ACK)]


async def test_requests_reach_the_handler_before_the_read_is_answered() -> None:
    """The handler answers within the read: its response leaves with the ACKs."""
    conn, transport = server()
    conn.set_request_handler(lambda stream: stream.send_headers({":status": "200"}, True))
    conn.data_received(PREFACE + settings_frame({}) + request(1))
    [written] = transport.writes
    assert [(t, s) for t, _, s, _ in frames(written)] == [(SETTINGS, 0), (HEADERS, 1)]


async def test_requests_are_queued_without_a_handler() -> None:
    conn, _ = server()
    conn.data_received(PREFACE + settings_frame({}) + request(1) + request(3))
    first: Stream = await conn.accept_stream()
    second: Stream = await conn.accept_stream()
    assert (first.id, second.id) == (1, 3)


async def test_a_protocol_error_ends_the_connection_with_its_code() -> None:
    conn, transport = server()
    data_on_stream_0 = frame_header(1, DATA, 0, 0) + b"x"
    conn.data_received(PREFACE + settings_frame({}) + data_on_stream_0)
    assert transport.closing
    goaways = [p for t, _, _, p in frames(b"".join(transport.writes)) if t == GOAWAY]
    assert [int.from_bytes(p[4:8], "big") for p in goaways] == [ErrorCodes.PROTOCOL_ERROR]
    with pytest.raises(ConnectionClosedError) as info:
        await conn.accept_stream()
    assert info.value.error_code == ErrorCodes.PROTOCOL_ERROR
    conn.connection_lost(None)


async def test_a_bug_of_ours_while_reading_is_goaway_internal_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing may be left half-processed: the peer is told, every waiter wakes."""

    def bug(self: Liveness) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Liveness, "peer_pinged", bug)
    conn, transport = server()
    waiter = asyncio.ensure_future(conn.accept_stream())
    await asyncio.sleep(0)
    conn.data_received(PREFACE + settings_frame({}) + ping_frame(b"pingpong", ack=False))
    assert transport.closing
    goaways = [p for t, _, _, p in frames(b"".join(transport.writes)) if t == GOAWAY]
    assert [int.from_bytes(p[4:8], "big") for p in goaways] == [ErrorCodes.INTERNAL_ERROR]
    assert "closing the connection" in caplog.text
    conn.connection_lost(None)
    with pytest.raises(ConnectionClosedError, match="internal error"):
        await asyncio.wait_for(waiter, 5)


def ping_acks(transport: RecordingTransport) -> int:
    return sum(t == PING and f == ACK for t, f, _, _ in frames(b"".join(transport.writes)))


async def test_reading_pauses_after_the_engines_share_of_frames(http2_engine: str) -> None:
    if http2_engine != "native":
        pytest.skip("the h2 engine does not apply max_frames_per_receive")
    conn, transport = server(ConnectionSettings(limits=Limits(max_frames_per_receive=4)))
    pings = b"".join(ping_frame(b"%08d" % n, ack=False) for n in range(10))
    conn.data_received(PREFACE + settings_frame({}) + pings)
    assert not transport.reading  # other connections get their turn
    assert 0 < ping_acks(transport) < 10  # what was processed is answered already
    for _ in range(10):
        await asyncio.sleep(0)
    assert transport.reading and transport.resumed == 1
    assert ping_acks(transport) == 10


async def test_a_paused_read_does_not_go_on_once_the_connection_is_gone(
    http2_engine: str,
) -> None:
    if http2_engine != "native":
        pytest.skip("the h2 engine does not apply max_frames_per_receive")
    conn, transport = server(ConnectionSettings(limits=Limits(max_frames_per_receive=4)))
    pings = b"".join(ping_frame(b"%08d" % n, ack=False) for n in range(10))
    conn.data_received(PREFACE + settings_frame({}) + pings)
    acks = ping_acks(transport)
    conn.connection_lost(None)
    for _ in range(10):
        await asyncio.sleep(0)
    assert transport.resumed == 0
    assert ping_acks(transport) == acks
