"""The native engine against hyper-h2 as the peer, both ways."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events

from rpc.http2 import ConnectionSettings, ErrorCodes
from rpc.http2.engine import NativeEngine

from .conftest import RecordingHandler
from .engine_harness import REQUEST, RESPONSE, TRAILERS, joined


def h2_peer(client_side: bool) -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=client_side, header_encoding=None)
    )
    conn.initiate_connection()
    return conn


def h2_send(
    conn: h2.connection.H2Connection, sid: int, data: bytes, end_stream: bool = False
) -> None:
    step = conn.max_outbound_frame_size
    for start in range(0, len(data), step):
        last = start + step >= len(data)
        conn.send_data(sid, data[start : start + step], end_stream=end_stream and last)


def exchange(native: NativeEngine, peer: h2.connection.H2Connection) -> list[h2.events.Event]:
    events: list[h2.events.Event] = []
    for _ in range(50):
        to_peer = joined(native.data_to_send())
        to_native = peer.data_to_send()
        if not to_peer and not to_native:
            return events
        if to_peer:
            events.extend(peer.receive_data(to_peer))
        if to_native:
            native.receive(to_native)
    raise AssertionError("never went quiet")


def test_h2_client_against_native_server() -> None:
    recorder = RecordingHandler()
    server = NativeEngine(client_side=False, settings=ConnectionSettings(), handler=recorder)
    server.initiate()
    client = h2_peer(client_side=True)
    client.send_headers(1, REQUEST)
    body = b"q" * 100_000  # beyond h2's default 65,535 window: needs our WINDOW_UPDATEs
    h2_send(client, 1, body[:60_000])
    exchange(server, client)
    assert recorder.of("request")[0][1:] == (1, REQUEST, False)
    received = sum(len(e[2]) for e in recorder.of("data"))
    server.acknowledge_received(1, received)
    exchange(server, client)
    h2_send(client, 1, body[60_000:], end_stream=True)
    exchange(server, client)
    assert b"".join(e[2] for e in recorder.of("data")) == body
    server.send_headers(1, RESPONSE)
    server.send_data(1, b"r" * 60_000)
    server.send_headers(1, TRAILERS, end_stream=True)
    events = exchange(server, client)
    kinds = [type(e) for e in events]
    assert h2.events.ResponseReceived in kinds
    assert h2.events.TrailersReceived in kinds and h2.events.StreamEnded in kinds
    data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert data == b"r" * 60_000


def test_native_client_against_h2_server() -> None:
    recorder = RecordingHandler()
    client = NativeEngine(client_side=True, settings=ConnectionSettings(), handler=recorder)
    client.initiate()
    server = h2_peer(client_side=False)
    exchange(client, server)
    assert client.handshake_complete
    sid = client.next_stream_id()
    client.send_headers(sid, REQUEST)
    client.send_data(sid, b"hello", end_stream=True)
    events = exchange(client, server)
    request = next(e for e in events if isinstance(e, h2.events.RequestReceived))
    assert list(request.headers) == REQUEST
    server.send_headers(sid, RESPONSE)
    h2_send(server, sid, b"world")
    server.send_headers(sid, TRAILERS, end_stream=True)
    server.ping(b"pingpong")
    exchange(client, server)
    assert recorder.names()[-4:] == ["response", "data", "trailers", "ping"]
    # A reset from h2 reaches the handler; a GOAWAY forgets our later streams.
    sid = client.next_stream_id()
    client.send_headers(sid, REQUEST)
    exchange(client, server)
    server.reset_stream(sid, ErrorCodes.CANCEL)
    server.close_connection(last_stream_id=sid)
    exchange(client, server)
    assert recorder.of("reset")[-1] == ("reset", sid, ErrorCodes.CANCEL, True)
    assert recorder.of("goaway")[-1][:3] == ("goaway", 0, sid)
