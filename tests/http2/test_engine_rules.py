"""RFC 9113 rules the native engine enforces, driven with hand-made frames."""

from __future__ import annotations

import struct

import hpack
import pytest

from rpc.http2 import ConnectionSettings, ErrorCodes, Limits, ProtocolError, Rate
from rpc.http2 import frames as f
from rpc.http2.engine import NativeEngine
from rpc.http2.settings import SettingCodes

from .conftest import RecordingHandler
from .engine_harness import (
    REQUEST,
    RawClient,
    frame,
    goaway_code,
    joined,
    parse_frames,
    rst_codes,
)

E = ErrorCodes
EH = f.FLAG_END_HEADERS
ES = f.FLAG_END_STREAM


def expect_connection_error(raw: RawClient, data: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        raw.send(data)
    assert info.value.error_code == code
    assert goaway_code(raw.output()) == code
    assert raw.send(frame(f.PING, 0, 0, b"x" * 8)) is False  # input ignored afterwards
    assert raw.output() == []


# --- preface ---------------------------------------------------------------


def test_server_rejects_a_bad_preface() -> None:
    engine = NativeEngine(
        client_side=False, settings=ConnectionSettings(), handler=RecordingHandler()
    )
    engine.receive(b"PRI * HTTP/2.0\r\n")  # a correct prefix: wait for more
    with pytest.raises(ProtocolError) as info:
        engine.receive(b"XX")
    assert info.value.error_code == E.PROTOCOL_ERROR


def test_server_rejects_http1() -> None:
    engine = NativeEngine(
        client_side=False, settings=ConnectionSettings(), handler=RecordingHandler()
    )
    with pytest.raises(ProtocolError):
        engine.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_first_frame_must_be_settings() -> None:
    engine = NativeEngine(
        client_side=False, settings=ConnectionSettings(), handler=RecordingHandler()
    )
    with pytest.raises(ProtocolError):
        engine.receive(f.CLIENT_MAGIC + f.ping_frame(b"12345678", ack=False))
    assert not engine.handshake_complete


def test_preface_split_across_reads() -> None:
    events = RecordingHandler()
    engine = NativeEngine(client_side=False, settings=ConnectionSettings(), handler=events)
    data = f.CLIENT_MAGIC + f.settings_frame({})
    for byte in data:
        engine.receive(bytes([byte]))
    assert engine.handshake_complete
    assert events.of("settings") == [("settings", {})]


# --- SETTINGS ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "flags", "code"),
    [
        (b"\0" * 6, f.FLAG_ACK, E.FRAME_SIZE_ERROR),
        (b"\0" * 5, 0, E.FRAME_SIZE_ERROR),
        (struct.pack(">HL", SettingCodes.ENABLE_PUSH, 2), 0, E.PROTOCOL_ERROR),
        (struct.pack(">HL", SettingCodes.MAX_FRAME_SIZE, 16_383), 0, E.PROTOCOL_ERROR),
        (struct.pack(">HL", SettingCodes.MAX_FRAME_SIZE, 1 << 24), 0, E.PROTOCOL_ERROR),
        (struct.pack(">HL", SettingCodes.INITIAL_WINDOW_SIZE, 1 << 31), 0, E.FLOW_CONTROL_ERROR),
    ],
)
def test_invalid_settings(payload: bytes, flags: int, code: int) -> None:
    raw = RawClient()
    expect_connection_error(raw, frame(f.SETTINGS, flags, 0, payload), code)


def test_settings_on_a_stream_is_a_protocol_error() -> None:
    expect_connection_error(RawClient(), frame(f.SETTINGS, 0, 1), E.PROTOCOL_ERROR)


def test_settings_are_acked_and_unknown_ids_ignored() -> None:
    raw = RawClient()
    raw.send(frame(f.SETTINGS, 0, 0, struct.pack(">HLHL", 0x99, 7, 0x5, 20_000)))
    assert raw.output() == [(f.SETTINGS, f.FLAG_ACK, 0, b"")]
    assert raw.calls.of("settings")[-1] == ("settings", {SettingCodes.MAX_FRAME_SIZE: 20_000})
    assert 0x99 not in raw.engine.remote_settings
    assert raw.engine.max_outbound_frame_size == 20_000


def test_client_refuses_enable_push_from_server() -> None:
    events = RecordingHandler()
    engine = NativeEngine(client_side=True, settings=ConnectionSettings(), handler=events)
    engine.initiate()
    with pytest.raises(ProtocolError):
        engine.receive(f.settings_frame({SettingCodes.ENABLE_PUSH: 1}))


# --- frame sizes, padding ----------------------------------------------------


def test_frame_over_our_max_frame_size() -> None:
    raw = RawClient(ConnectionSettings(max_frame_size=16_384))
    expect_connection_error(
        raw, f.frame_header(16_385, f.DATA, 0, 1) + b"\0" * 10, E.FRAME_SIZE_ERROR
    )


@pytest.mark.parametrize(
    ("frame_type", "length", "sid", "code"),
    [
        (f.PING, 7, 0, E.FRAME_SIZE_ERROR),
        (f.PING, 8, 1, E.PROTOCOL_ERROR),
        (f.WINDOW_UPDATE, 3, 0, E.FRAME_SIZE_ERROR),
        (f.RST_STREAM, 5, 1, E.FRAME_SIZE_ERROR),
        (f.GOAWAY, 7, 0, E.FRAME_SIZE_ERROR),
        (f.RST_STREAM, 4, 0, E.PROTOCOL_ERROR),
        (f.DATA, 1, 0, E.PROTOCOL_ERROR),
        (f.HEADERS, 1, 0, E.PROTOCOL_ERROR),
        (f.PRIORITY, 5, 0, E.PROTOCOL_ERROR),
    ],
)
def test_fixed_frame_sizes_and_stream_zero(
    frame_type: int, length: int, sid: int, code: int
) -> None:
    expect_connection_error(RawClient(), frame(frame_type, 0, sid, b"\1" * length), code)


def test_priority_of_wrong_length_is_a_stream_error() -> None:
    raw = RawClient()
    raw.send(frame(f.PRIORITY, 0, 1, b"\0" * 4))
    assert rst_codes(raw.output()) == {1: E.FRAME_SIZE_ERROR}


def test_data_padding_exceeding_payload() -> None:
    raw = RawClient()
    raw.send(raw.headers(1))
    expect_connection_error(raw, frame(f.DATA, f.FLAG_PADDED, 1, b"\x05abcd"), E.PROTOCOL_ERROR)


def test_headers_padding_exceeding_payload() -> None:
    raw = RawClient()
    block = raw.block(REQUEST)
    payload = bytes([len(block) + 1]) + block
    expect_connection_error(raw, frame(f.HEADERS, EH | f.FLAG_PADDED, 1, payload), E.PROTOCOL_ERROR)


def test_padding_is_stripped_and_credited_back_by_the_engine() -> None:
    raw = RawClient(ConnectionSettings(stream_window_size=100, connection_window_size=65_535))
    raw.engine.receive(f.SETTINGS_ACK)
    raw.send(raw.headers(1))
    raw.send(frame(f.DATA, f.FLAG_PADDED, 1, bytes([60]) + b"abc" + b"\0" * 60))
    assert raw.calls.of("data")[0][1:4] == (1, b"abc", False)
    out = raw.output()
    updates = {sid: struct.unpack(">L", p)[0] for t, _, sid, p in out if t == f.WINDOW_UPDATE}
    assert updates == {1: 61}  # the stream's padding (half its window): credited at once
    raw.engine.acknowledge_received(1, 3)
    assert raw.output() == []  # 3 bytes of data: coalesced


# --- stream identifiers and states --------------------------------------------


def test_stream_ids_must_grow() -> None:
    raw = RawClient()
    raw.send(raw.headers(5, flags=EH | ES))
    expect_connection_error(raw, raw.headers(3), E.PROTOCOL_ERROR)


def test_client_may_not_use_even_ids() -> None:
    expect_connection_error(RawClient(), RawClient().headers(2), E.PROTOCOL_ERROR)


@pytest.mark.parametrize("frame_type", [f.DATA, f.RST_STREAM, f.WINDOW_UPDATE])
def test_frames_on_idle_streams(frame_type: int) -> None:
    payload = b"\0\0\0\1" if frame_type != f.DATA else b"x"
    expect_connection_error(RawClient(), frame(frame_type, 0, 1, payload), E.PROTOCOL_ERROR)


def test_priority_on_an_idle_stream_does_not_open_it() -> None:
    raw = RawClient()
    raw.send(frame(f.PRIORITY, 0, 7, struct.pack(">LB", 0, 15)))
    assert raw.output() == []
    raw.send(raw.headers(3))  # a lower id is still usable
    assert raw.calls.of("request")[0][1] == 3


def test_priority_self_dependency_is_a_stream_error() -> None:
    raw = RawClient()
    raw.send(raw.headers(1))
    raw.send(frame(f.PRIORITY, 0, 1, struct.pack(">LB", 1, 15)))
    assert rst_codes(raw.output()) == {1: E.PROTOCOL_ERROR}
    assert raw.calls.of("reset") == [("reset", 1, E.PROTOCOL_ERROR, False)]


def test_priority_in_headers_is_reported() -> None:
    raw = RawClient()
    block = struct.pack(">LB", 0x8000_0000, 255) + raw.block(REQUEST)
    raw.send(frame(f.HEADERS, EH | f.FLAG_PRIORITY, 1, block))
    raw.send(frame(f.PRIORITY, 0, 1, struct.pack(">LB", 0, 0)))
    assert raw.calls.of("priority") == [("priority", 1, 256), ("priority", 1, 1)]


def test_data_after_end_stream_is_stream_closed() -> None:
    raw = RawClient()
    raw.send(raw.headers(1, flags=EH | ES))
    raw.send(frame(f.DATA, 0, 1, b"late"))
    assert rst_codes(raw.output()) == {1: E.STREAM_CLOSED}
    assert raw.calls.of("reset")[0][2] == E.STREAM_CLOSED


def test_frames_for_a_stream_we_reset_are_tolerated() -> None:
    raw = RawClient()
    raw.send(raw.headers(1))
    raw.engine.send_reset(1, E.CANCEL)
    raw.output()
    raw.send(frame(f.DATA, 0, 1, b"in flight") + raw.headers(1, [(b"x", b"y")], EH | ES))
    assert raw.output() == []
    # The connection window was credited for the ignored DATA (coalesced, no frame yet).
    assert raw.engine._recv_window.available == (16 << 20) - len(b"in flight")


def test_data_on_a_forgotten_closed_stream_is_a_stream_error() -> None:
    """Late DATA on a stream closed too long ago to be remembered (in flight when
    we reset it, say): RST_STREAM(STREAM_CLOSED), and the connection goes on."""
    raw = RawClient(ConnectionSettings(limits=Limits(max_closed_streams_remembered=1)))
    raw.send(raw.headers(1, flags=EH | ES))
    raw.engine.send_headers(1, [(b":status", b"200")], end_stream=True)
    raw.send(raw.headers(3, flags=EH | ES))
    raw.engine.send_headers(3, [(b":status", b"200")], end_stream=True)
    raw.output()
    raw.send(frame(f.DATA, 0, 1, b"x"))
    assert rst_codes(raw.output()) == {1: E.STREAM_CLOSED}
    raw.send(raw.headers(5, flags=EH | ES))
    assert [call[1] for call in raw.calls.of("request")] == [1, 3, 5]


def test_a_data_view_never_pins_a_much_larger_read() -> None:
    """Large DATA is handed over as a view of what was read, unless that read is
    mostly something else: a small view would keep the whole buffer alive."""
    raw = RawClient()
    raw.send(raw.headers(1))
    raw.send(frame(f.DATA, 0, 1, b"a" * 8192))
    raw.send(frame(f.DATA, 0, 1, b"b" * 8192) + frame(0xEE, 0, 0, b"\0" * 100_000))
    assert raw.calls.data_types == [memoryview, bytes]
    assert [call[2] for call in raw.calls.of("data")] == [b"a" * 8192, b"b" * 8192]


def test_rst_stream_from_peer_reaches_handler() -> None:
    raw = RawClient()
    raw.send(raw.headers(1))
    raw.send(frame(f.RST_STREAM, 0, 1, struct.pack(">L", E.CANCEL)))
    assert raw.calls.of("reset") == [("reset", 1, E.CANCEL, True)]
    # Later DATA on it is a stream error STREAM_CLOSED (RFC 9113 5.1, closed).
    raw.send(frame(f.DATA, 0, 1, b"x"))
    assert rst_codes(raw.output()) == {1: E.STREAM_CLOSED}


def test_push_promise_is_refused() -> None:
    expect_connection_error(
        RawClient(), frame(f.PUSH_PROMISE, EH, 1, b"\0\0\0\2"), E.PROTOCOL_ERROR
    )


def test_unknown_frames_and_priority_update_are_ignored() -> None:
    raw = RawClient()
    raw.send(frame(0x10, 0, 0, b"\0\0\0\1u=1") + frame(0xEE, 0xFF, 3, b"junk"))
    assert raw.output() == []
    raw.send(raw.headers(1))
    assert raw.calls.of("request")


# --- concurrency ----------------------------------------------------------------


def test_max_concurrent_streams_refuses_before_settings_ack() -> None:
    events = RecordingHandler()
    engine = NativeEngine(
        client_side=False, settings=ConnectionSettings(max_concurrent_streams=1), handler=events
    )
    engine.initiate()
    raw = RawClient()
    engine.receive(f.CLIENT_MAGIC + f.settings_frame({}) + raw.headers(1) + raw.headers(3))
    out = parse_frames(joined(engine.data_to_send()))
    assert rst_codes(out) == {3: E.REFUSED_STREAM}
    assert [e[1] for e in events.of("request")] == [1]
    # The refused stream's DATA in flight is ignored, and a new stream fits once 1 ends.
    engine.receive(frame(f.DATA, ES, 3, b"x") + frame(f.RST_STREAM, 0, 1, b"\0\0\0\x08"))
    engine.receive(raw.headers(5))
    assert [e[1] for e in events.of("request")] == [1, 5]


# --- header blocks ----------------------------------------------------------------


def test_continuation_reassembly() -> None:
    raw = RawClient()
    block = raw.block(REQUEST)
    raw.send(
        frame(f.HEADERS, ES, 1, block[:3])
        + frame(f.CONTINUATION, 0, 1, block[3:6])
        + frame(f.CONTINUATION, EH, 1, block[6:])
    )
    assert raw.calls.of("request") == [("request", 1, REQUEST, True)]


def test_frame_interleaved_in_a_header_block() -> None:
    raw = RawClient()
    block = raw.block(REQUEST)
    data = frame(f.HEADERS, 0, 1, block[:3]) + frame(f.PING, 0, 0, b"x" * 8)
    expect_connection_error(raw, data, E.PROTOCOL_ERROR)


def test_continuation_on_another_stream() -> None:
    raw = RawClient()
    block = raw.block(REQUEST)
    data = frame(f.HEADERS, 0, 1, block[:3]) + frame(f.CONTINUATION, EH, 3, block[3:])
    expect_connection_error(raw, data, E.PROTOCOL_ERROR)


def test_continuation_flood_is_cut() -> None:
    raw = RawClient(ConnectionSettings(limits=Limits(max_continuation_frames=4)))
    data = frame(f.HEADERS, 0, 1, b"\x82") + frame(f.CONTINUATION, 0, 1, b"\x84") * 5
    expect_connection_error(raw, data, E.ENHANCE_YOUR_CALM)


def test_header_block_size_is_capped_before_buffering() -> None:
    raw = RawClient(ConnectionSettings(max_header_list_size=1024))  # block cap: 8 x 1024
    data = frame(f.HEADERS, 0, 1, b"\0" * 8000) + frame(f.CONTINUATION, 0, 1, b"\0" * 200)
    expect_connection_error(raw, data, E.ENHANCE_YOUR_CALM)


def test_hpack_garbage_is_a_compression_error() -> None:
    raw = RawClient()
    expect_connection_error(raw, frame(f.HEADERS, EH, 1, b"\xff\xff\xff\xff"), E.COMPRESSION_ERROR)


def test_hpack_bomb_costs_only_its_stream_and_keeps_the_table() -> None:
    """RFC 9113 10.5.1: a list over the limit is answered 431, its block still
    decoded whole: the entry it added serves the next request."""
    raw = RawClient(ConnectionSettings(max_header_list_size=1024))
    # One literal with incremental indexing, then many references to it.
    first = raw.block([*REQUEST, (b"x-big", b"v" * 500)])
    bomb = first + b"\xbe" * 20
    raw.send(frame(f.HEADERS, EH | ES, 1, bomb))
    out = raw.output()
    assert [(t, sid) for t, _, sid, _ in out] == [(f.HEADERS, 1)]
    assert raw.calls.of("request") == []
    raw.send(frame(f.HEADERS, EH | ES, 3, raw.block(REQUEST) + b"\xbe"))
    assert raw.calls.of("request")[0][2][-1] == (b"x-big", b"v" * 500)


def test_oversized_request_gets_the_configured_answer() -> None:
    """A gRPC server answers an oversized request with its own header block
    (Trailers-Only RESOURCE_EXHAUSTED) instead of HTTP 431."""
    answer = ((b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", b"8"))
    raw = RawClient(
        ConnectionSettings(max_header_list_size=1024, oversized_request_response=answer)
    )
    raw.send(raw.headers(1, [*REQUEST, (b"x-big", b"v" * 2000)], EH | ES))
    [(kind, flags, sid, payload)] = raw.output()
    assert (kind, sid, flags & ES) == (f.HEADERS, 1, ES)
    assert [(k.encode(), v.encode()) for k, v in hpack.Decoder().decode(payload)] == list(answer)
    assert raw.calls.of("request") == []


def test_refused_streams_still_decode_their_block() -> None:
    raw = RawClient(ConnectionSettings(max_concurrent_streams=0))
    headers = [*REQUEST, (b"x-new", b"indexed")]
    raw.send(raw.headers(1, headers, EH | ES))
    raw.send(raw.headers(3, headers, EH | ES))  # refers to the table entry added by stream 1
    assert rst_codes(raw.output()) == {1: E.REFUSED_STREAM, 3: E.REFUSED_STREAM}


@pytest.mark.parametrize(
    "headers",
    [
        [(b":method", b"GET"), (b":path", b"/")],  # no :scheme, no authority
        [*REQUEST, (b"connection", b"close")],
        [*REQUEST, (b"Upper", b"x")],
        [*REQUEST, (b":status", b"200")],
        [*REQUEST, (b"content-length", b"abc")],
    ],
)
def test_malformed_requests_are_stream_errors_unseen_by_the_handler(
    headers: list[tuple[bytes, bytes]],
) -> None:
    raw = RawClient()
    raw.send(raw.headers(1, headers))
    assert rst_codes(raw.output()) == {1: E.PROTOCOL_ERROR}
    assert raw.calls.of("request") == []
    raw.send(raw.headers(3))  # the connection lives on
    assert raw.calls.of("request")[0][1] == 3


def test_content_length_mismatch_is_a_stream_error() -> None:
    raw = RawClient()
    raw.send(raw.headers(1, [*REQUEST, (b"content-length", b"3")]))
    raw.send(frame(f.DATA, ES, 1, b"four"))
    assert rst_codes(raw.output()) == {1: E.PROTOCOL_ERROR}
    raw.send(raw.headers(3, [*REQUEST, (b"content-length", b"3")]))
    raw.send(frame(f.DATA, ES, 3, b"abc"))
    assert raw.calls.of("data")[-1][1:4] == (3, b"abc", True)


def test_trailers_must_end_the_stream() -> None:
    raw = RawClient()
    raw.send(raw.headers(1))
    raw.send(raw.headers(1, [(b"x-trailer", b"1")], EH))
    assert rst_codes(raw.output()) == {1: E.PROTOCOL_ERROR}
    assert raw.calls.of("reset") == [("reset", 1, E.PROTOCOL_ERROR, False)]


def test_trailers_with_pseudo_headers_are_malformed() -> None:
    raw = RawClient()
    raw.send(raw.headers(1))
    raw.send(raw.headers(1, [(b":path", b"/")], EH | ES))
    assert rst_codes(raw.output()) == {1: E.PROTOCOL_ERROR}


# --- WINDOW_UPDATE, flow control ------------------------------------------------------


def test_window_update_rules() -> None:
    raw = RawClient()
    raw.send(raw.headers(1))
    raw.send(frame(f.WINDOW_UPDATE, 0, 1, b"\0\0\0\0"))
    assert rst_codes(raw.output()) == {1: E.PROTOCOL_ERROR}
    raw.send(raw.headers(3))
    raw.send(frame(f.WINDOW_UPDATE, 0, 3, struct.pack(">L", 2**31 - 1)))
    assert rst_codes(raw.output()) == {3: E.FLOW_CONTROL_ERROR}
    raw.send(frame(f.WINDOW_UPDATE, 0, 0, struct.pack(">L", 10)))
    assert raw.engine.connection_send_window == 65_545
    assert raw.calls.of("window") == [("window", 0)]
    expect_connection_error(
        raw, frame(f.WINDOW_UPDATE, 0, 0, struct.pack(">L", 2**31 - 1)), E.FLOW_CONTROL_ERROR
    )


def test_connection_window_update_of_zero() -> None:
    expect_connection_error(RawClient(), frame(f.WINDOW_UPDATE, 0, 0, b"\0" * 4), E.PROTOCOL_ERROR)


def test_initial_window_size_lowered_makes_windows_negative() -> None:
    raw = RawClient()
    raw.send(raw.headers(1))
    raw.engine.send_headers(1, [(b":status", b"200")])
    raw.engine.send_data(1, b"x" * 60_000)
    raw.send(f.settings_frame({SettingCodes.INITIAL_WINDOW_SIZE: 1000}))
    assert raw.engine.send_window(1) == 1000 - 60_000


def test_data_beyond_the_stream_window() -> None:
    raw = RawClient(ConnectionSettings(stream_window_size=65_535))
    raw.send(raw.headers(1))
    raw.send(frame(f.DATA, 0, 1, b"x" * 16_384) * 4)
    raw.send(frame(f.DATA, 0, 1, b"x" * 16_384))
    assert rst_codes(raw.output()) == {1: E.FLOW_CONTROL_ERROR}


def test_data_beyond_the_connection_window() -> None:
    raw = RawClient(ConnectionSettings(connection_window_size=65_535, stream_window_size=1 << 20))
    raw.send(raw.headers(1) + raw.headers(3))
    raw.send(frame(f.DATA, 0, 1, b"x" * 16_384) * 3)
    expect_connection_error(raw, frame(f.DATA, 0, 3, b"x" * 16_384), E.FLOW_CONTROL_ERROR)


def test_smaller_stream_window_applies_only_after_ack() -> None:
    events = RecordingHandler()
    engine = NativeEngine(
        client_side=False, settings=ConnectionSettings(stream_window_size=1000), handler=events
    )
    engine.initiate()
    raw = RawClient()
    engine.receive(f.CLIENT_MAGIC + f.settings_frame({}) + raw.headers(1))
    engine.receive(frame(f.DATA, 0, 1, b"x" * 2000))  # allowed: the peer still assumes 65,535
    assert events.of("data")
    engine.receive(f.SETTINGS_ACK + raw.headers(3))
    engine.receive(frame(f.DATA, 0, 3, b"x" * 1001))
    assert events.of("reset") == [("reset", 3, E.FLOW_CONTROL_ERROR, False)]


# --- PING, GOAWAY --------------------------------------------------------------------


def test_ping_is_acked() -> None:
    raw = RawClient()
    raw.send(frame(f.PING, 0, 0, b"abcdefgh"))
    assert raw.output() == [(f.PING, f.FLAG_ACK, 0, b"abcdefgh")]
    raw.send(frame(f.PING, f.FLAG_ACK, 0, b"12345678"))
    assert raw.calls.of("ping_ack") == [("ping_ack", b"12345678")]
    assert raw.output() == []


def test_goaway_received_forgets_our_streams_above_last() -> None:
    events = RecordingHandler()
    client = NativeEngine(client_side=True, settings=ConnectionSettings(), handler=events)
    client.initiate()
    client.receive(f.settings_frame({}))
    for sid in (1, 3, 5):
        client.send_headers(sid, [(b":method", b"GET"), (b":path", b"/")])
    client.receive(f.goaway_frame(3, E.NO_ERROR, b"bye"))
    assert events.of("goaway") == [("goaway", 0, 3, b"bye")]
    assert client.send_window(5) == 0 and client.send_window(3) > 0
    with pytest.raises(Exception, match="GOAWAY"):
        client.send_headers(7, [(b":method", b"GET"), (b":path", b"/")])


def test_goaway_last_stream_id_never_grows() -> None:
    raw = RawClient()
    raw.send(raw.headers(1))
    raw.engine.send_goaway(E.NO_ERROR, 2**31 - 1)
    raw.engine.send_goaway(E.NO_ERROR)
    raw.engine.send_goaway(E.NO_ERROR, 100)
    lasts = [struct.unpack(">L", p[:4])[0] for t, _, _, p in raw.output() if t == f.GOAWAY]
    assert lasts == [2**31 - 1, 1, 1]
    raw.send(raw.headers(3))
    assert rst_codes(raw.output()) == {3: E.REFUSED_STREAM}
    assert [e[1] for e in raw.calls.of("request")] == [1]


# --- receive loop ----------------------------------------------------------------------


def test_frames_per_receive_are_bounded() -> None:
    raw = RawClient(ConnectionSettings(limits=Limits(max_frames_per_receive=3)))
    pings = b"".join(frame(f.PING, 0, 0, bytes([i]) * 8) for i in range(7))
    assert raw.send(pings) is True
    assert len(raw.calls.of("ping")) == 3
    assert raw.send(b"") is True
    assert raw.send(b"") is False
    assert len(raw.calls.of("ping")) == 7


def test_frames_split_at_every_byte() -> None:
    raw = RawClient()
    data = raw.headers(1) + frame(f.DATA, ES, 1, b"hello")
    for byte in data:
        raw.send(bytes([byte]))
    assert raw.calls.of("data")[0][1:4] == (1, b"hello", True)


def test_control_frame_flood_is_cut() -> None:
    now = [0.0]
    raw = RawClient(
        ConnectionSettings(limits=Limits(control_frames=Rate(burst=10, per_second=1.0))),
        clock=lambda: now[0],
    )
    raw.send(frame(f.PING, 0, 0, b"x" * 8) * 9)
    now[0] += 5.0  # five tokens back
    raw.send(frame(f.PING, 0, 0, b"x" * 8) * 5)
    expect_connection_error(raw, frame(f.PING, 0, 0, b"x" * 8) * 2, E.ENHANCE_YOUR_CALM)


def test_rapid_reset_is_cut() -> None:
    raw = RawClient(
        ConnectionSettings(limits=Limits(stream_resets=Rate(burst=5, per_second=0.0))),
        clock=lambda: 0.0,
    )
    data = b""
    for sid in range(1, 11, 2):
        data += raw.headers(sid) + frame(f.RST_STREAM, 0, sid, b"\0\0\0\x08")
    raw.send(data)
    assert len(raw.calls.of("reset")) == 5
    expect_connection_error(
        raw, raw.headers(11) + frame(f.RST_STREAM, 0, 11, b"\0\0\0\x08"), E.ENHANCE_YOUR_CALM
    )


def test_settings_flood_is_cut() -> None:
    raw = RawClient(
        ConnectionSettings(limits=Limits(settings_frames=Rate(burst=3, per_second=0.0))),
        clock=lambda: 0.0,
    )
    raw.send(f.settings_frame({}) * 2)  # the handshake used one token
    expect_connection_error(raw, f.settings_frame({}), E.ENHANCE_YOUR_CALM)


def test_empty_data_frames_count_as_control_frames() -> None:
    raw = RawClient(
        ConnectionSettings(limits=Limits(control_frames=Rate(burst=5, per_second=0.0))),
        clock=lambda: 0.0,
    )
    raw.send(raw.headers(1))
    expect_connection_error(raw, frame(f.DATA, 0, 1) * 10, E.ENHANCE_YOUR_CALM)
