"""End to end: a client NativeEngine and a server NativeEngine, bytes piped between them."""

from __future__ import annotations

import pytest

from rpc.http2 import ConnectionSettings, ErrorCodes, SettingCodes, StreamStateError
from rpc.http2.frames import settings_frame

from .engine_harness import REQUEST, RESPONSE, TRAILERS, Pair


def test_handshake_completes_and_settings_are_reported() -> None:
    pair = Pair()
    assert pair.client.handshake_complete and pair.server.handshake_complete
    assert pair.server_events.of("settings")
    assert pair.client.remote_settings[SettingCodes.MAX_FRAME_SIZE] == 256 << 10
    assert pair.server.remote_settings[SettingCodes.ENABLE_PUSH] == 0
    # The connection window was opened to the configured size by initiate().
    assert pair.client.connection_send_window == 16 << 20


def test_unary_exchange_with_trailers() -> None:
    pair = Pair()
    sid = pair.client.next_stream_id()
    assert sid == 1
    pair.client.send_headers(sid, REQUEST)
    pair.client.send_data(sid, b"x" * 64, end_stream=True)
    pair.pump()
    assert pair.server_events.of("request") == [("request", 1, REQUEST, False)]
    assert pair.server_events.of("data")[0][1:4] == (1, b"x" * 64, True)
    pair.server.send_headers(sid, RESPONSE)
    pair.server.send_data(sid, b"y" * 64)
    pair.server.send_headers(sid, TRAILERS, end_stream=True)
    pair.pump()
    assert pair.client_events.names()[-3:] == ["response", "data", "trailers"]
    assert pair.client_events.of("trailers") == [("trailers", 1, TRAILERS)]
    # Both sides forgot the stream.
    assert pair.client.send_window(1) == 0 and pair.server.send_window(1) == 0
    assert pair.client.next_stream_id() == 3
    with pytest.raises(StreamStateError):
        pair.server.send_data(1, b"late")


def test_large_body_is_split_evenly() -> None:
    pair = Pair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    body = bytes(range(256)) * 1024  # 256 KiB, one frame at the peer's 256 KiB maximum
    assert pair.client.send_window(sid) == ConnectionSettings().stream_window_size
    pair.client.send_data(sid, body + b"tail", end_stream=True)
    pair.pump()
    data = pair.server_events.of("data")
    # Two equal frames, not a full one and a 4-byte tail.
    assert [len(event[2]) for event in data] == [(256 << 10) // 2 + 2] * 2
    assert b"".join(event[2] for event in data) == body + b"tail"


def test_flow_control_credit_returns_only_when_acknowledged() -> None:
    pair = Pair(server_settings=ConnectionSettings(stream_window_size=65_535))
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.client.send_data(sid, b"a" * 65_535)
    pair.pump()
    assert pair.client.send_window(sid) == 0
    pair.server.acknowledge_received(sid, 10_000)  # under half the window: coalesced
    pair.pump()
    assert pair.client.send_window(sid) == 0
    pair.server.acknowledge_received(sid, 30_000)
    pair.pump()
    assert pair.client.send_window(sid) == 40_000
    assert ("window", sid) in pair.client_events.calls


def test_peer_reset_reaches_the_handler() -> None:
    pair = Pair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.pump()
    pair.client.send_reset(sid, ErrorCodes.CANCEL)
    pair.pump()
    assert pair.server_events.of("reset") == [("reset", sid, ErrorCodes.CANCEL, True)]
    # A reset stream is forgotten; resetting again does nothing.
    pair.client.send_reset(sid, ErrorCodes.CANCEL)
    assert pair.client.data_to_send() == []


def test_goaway_from_server_refuses_new_streams_and_lets_old_ones_finish() -> None:
    pair = Pair()
    first = pair.client.next_stream_id()
    pair.client.send_headers(first, REQUEST)
    pair.pump()
    pair.server.send_goaway(ErrorCodes.NO_ERROR)
    second = pair.client.next_stream_id()
    pair.client.send_headers(second, REQUEST, end_stream=True)  # crosses the GOAWAY
    pair.pump()
    assert pair.client_events.of("goaway") == [("goaway", 0, first, b"")]
    # The server refused the stream above its last id without telling its handler.
    assert [e[1] for e in pair.server_events.of("request")] == [first]
    with pytest.raises(StreamStateError):
        pair.client.next_stream_id()
    pair.client.send_data(first, b"body", end_stream=True)
    pair.server.send_headers(first, RESPONSE, end_stream=True)
    pair.pump()
    assert pair.client_events.of("response")[0][1] == first


def test_ping_round_trip() -> None:
    pair = Pair()
    pair.client.send_ping(b"12345678")
    pair.pump()
    assert pair.server_events.of("ping") == [("ping", b"12345678")]
    assert pair.client_events.of("ping_ack") == [("ping_ack", b"12345678")]


def test_informational_then_final_response() -> None:
    pair = Pair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST, end_stream=True)
    pair.pump()
    pair.server.send_headers(sid, [(b":status", b"103"), (b"link", b"</a>")])
    pair.server.send_headers(sid, [(b":status", b"204")], end_stream=True)
    pair.pump()
    assert pair.client_events.names()[-2:] == ["informational", "response"]


def test_send_rules_are_enforced_before_anything_is_queued() -> None:
    pair = Pair()
    with pytest.raises(StreamStateError):
        pair.client.send_headers(5, REQUEST)  # not the next id
    with pytest.raises(StreamStateError):
        pair.server.next_stream_id()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    with pytest.raises(StreamStateError):
        pair.client.send_headers(sid, TRAILERS)  # trailers must end the stream
    with pytest.raises(StreamStateError):
        window = pair.client.send_window(sid)
        pair.client.send_data(sid, b"x" * (window + 1))  # beyond the window
    pair.client.send_data(sid, b"", end_stream=True)
    with pytest.raises(StreamStateError):
        pair.client.send_data(sid, b"x")


def test_initial_window_change_applies_to_open_streams() -> None:
    pair = Pair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.pump()
    before = pair.client.send_window(sid)
    initial = ConnectionSettings().stream_window_size
    pair.client.receive(settings_frame({SettingCodes.INITIAL_WINDOW_SIZE: initial + 100}))
    assert pair.client.send_window(sid) == before + 100
    assert ("window", 0) in pair.client_events.calls


def test_pending_output_counts_queued_bytes() -> None:
    pair = Pair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.client.send_data(sid, b"z" * 1000)
    pending = pair.client.pending_output
    assert pending == sum(len(b) for b in pair.client.data_to_send())
    assert pair.client.pending_output == 0
