"""Large DATA frames cut across reads: the body is the same on both engines;
the native engine passes a frame on as it arrives instead of joining the reads."""

from __future__ import annotations

import itertools

import pytest

from rpc.http2 import ConnectionSettings, ErrorCodes
from rpc.http2.receive_streams import STREAMED_DATA_SIZE

from . import frames as fr
from .conftest import Peer, open_server

BIG = STREAMED_DATA_SIZE * 2 + 1234


def body_of(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


def cut(data: bytes, *points: int) -> list[bytes]:
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def opened(server: Peer) -> int:
    sid = server.new_stream_id()
    server.send(server.request(sid, end_stream=False))
    server.handler.clear()
    return sid


@pytest.mark.parametrize("padding", [None, 0, 200])
@pytest.mark.parametrize("points", [(3,), (9,), (10,), (70_000,), (5, 9, 10, 100_000, 140_000)])
def test_a_large_frame_cut_anywhere_gives_the_same_body(
    server: Peer, padding: int | None, points: tuple[int, ...]
) -> None:
    sid = opened(server)
    payload = body_of(BIG)
    wire = fr.data(sid, payload, end_stream=True, padding=padding) + fr.ping(b"after.me")
    for piece in cut(wire, *points):
        server.send(piece)
    assert server.error is None, server.describe()
    assert server.handler.body(sid) == payload
    data = server.handler.of("data")
    assert [call[3] for call in data] == [False] * (len(data) - 1) + [True]
    assert server.handler.of("ping") == [("ping", b"after.me")]


def test_the_native_engine_passes_a_large_frame_on_before_it_is_complete() -> None:
    server = open_server("native")
    sid = opened(server)
    payload = body_of(BIG)
    wire = fr.data(sid, payload, end_stream=True)
    server.send(wire[: 9 + 100_000])
    assert server.handler.body(sid) == payload[:100_000]
    assert not any(call[3] for call in server.handler.of("data"))
    server.send(wire[9 + 100_000 :])
    assert server.handler.body(sid) == payload
    assert server.handler.of("data")[-1][3] is True


def test_a_frame_the_native_engine_would_refuse_is_not_passed_on_early() -> None:
    """Over the declared content-length: nothing delivered, a stream error at the end."""
    server = open_server("native")
    sid = server.new_stream_id()
    headers = fr.request(extra=[(b"content-length", b"100")])
    server.send(server.request(sid, headers, end_stream=False))
    wire = fr.data(sid, body_of(BIG), end_stream=True)
    server.send(wire[:50_000])
    assert server.handler.of("data") == []
    assert server.resets() == []
    server.send(wire[50_000:])
    server.expect_stream_error(sid, ErrorCodes.PROTOCOL_ERROR)
    assert server.handler.of("data") == []


def test_a_stream_reset_half_way_drops_the_rest_and_returns_its_credit() -> None:
    window = 4 * STREAMED_DATA_SIZE
    settings = ConnectionSettings(stream_window_size=window, connection_window_size=window)
    server = open_server("native", settings)
    sid = opened(server)
    wire = fr.data(sid, body_of(BIG), end_stream=True)
    server.send(wire[:80_000])
    server.engine.send_reset(sid, ErrorCodes.CANCEL)
    server.new_output()
    server.send(wire[80_000:], fr.ping(b"after.me"))
    assert server.error is None, server.describe()
    assert len(server.handler.body(sid)) == 80_000 - 9
    assert server.handler.of("ping") == [("ping", b"after.me")]
    returned = sum(
        fr.decode_window_update(frame.payload)
        for frame in server.new_output()
        if frame.type == fr.WINDOW_UPDATE and frame.stream_id == 0
    )
    assert returned == BIG
