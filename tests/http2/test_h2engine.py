"""H2Engine through the Engine interface: two engines talking, no sockets, no timing.

The client's and the server's output are piped into each other by hand, so
each test decides exactly which bytes arrive when (e.g. before the SETTINGS
ACK, or after a GOAWAY). Where a frame the engines cannot produce is needed
(padding, protocol errors) it is built here with :func:`frame`.
"""

from __future__ import annotations

import struct

import pytest

from rpc.http2 import ConnectionSettings, ErrorCodes, ProtocolError, StreamStateError
from rpc.http2.h2engine import H2Engine
from rpc.http2.interface import Engine

from .conftest import RecordingHandler
from .engine_harness import REQUEST, RESPONSE, TRAILERS

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, PADDED = 0x1, 0x8


class Side:
    def __init__(self, *, client_side: bool, settings: ConnectionSettings) -> None:
        self.handler = RecordingHandler()
        self.engine: Engine = H2Engine(
            client_side=client_side, settings=settings, handler=self.handler
        )

    def output(self) -> bytes:
        return b"".join(bytes(buffer) for buffer in self.engine.data_to_send())


class Pair:
    """A client and a server engine; bytes move only when a test says so."""

    def __init__(
        self,
        client_settings: ConnectionSettings | None = None,
        server_settings: ConnectionSettings | None = None,
    ) -> None:
        self.client = Side(client_side=True, settings=client_settings or ConnectionSettings())
        self.server = Side(client_side=False, settings=server_settings or ConnectionSettings())
        self.client.engine.initiate()
        self.server.engine.initiate()

    def to_server(self) -> bytes:
        data = self.client.output()
        self.server.engine.receive(data)
        return data

    def to_client(self) -> bytes:
        data = self.server.output()
        self.client.engine.receive(data)
        return data

    def pump(self) -> None:
        while self.to_server() + self.to_client():
            pass

    def connected(self) -> Pair:
        self.pump()
        self.client.handler.take()
        self.server.handler.take()
        return self


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream_id)
        + payload
    )


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each frame in ``data`` (no client preface)."""
    parsed = []
    while data:
        length = int.from_bytes(data[:3], "big")
        kind, flags = data[3], data[4]
        stream_id = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        parsed.append((kind, flags, stream_id, data[9 : 9 + length]))
        data = data[9 + length :]
    return parsed


def open_request(pair: Pair, body: bytes = b"", end_stream: bool = False) -> int:
    client = pair.client.engine
    stream_id = client.next_stream_id()
    client.send_headers(stream_id, REQUEST, end_stream=end_stream and not body)
    if body:
        client.send_data(stream_id, body, end_stream=end_stream)
    return stream_id


def test_handshake_exchanges_settings() -> None:
    server_settings = ConnectionSettings(max_concurrent_streams=7)
    pair = Pair(server_settings=server_settings)
    assert not pair.client.engine.handshake_complete
    pair.pump()
    assert pair.client.engine.handshake_complete
    assert pair.server.engine.handshake_complete
    assert pair.client.engine.remote_settings[0x3] == 7
    assert (
        dict(pair.server.engine.local_settings).items()
        >= server_settings.advertised(client_side=False).items()
    )
    assert pair.client.handler.of("settings")
    assert pair.server.handler.of("settings")
    assert pair.client.engine.max_outbound_frame_size == server_settings.max_frame_size


def test_request_response_trailers_with_bodies() -> None:
    pair = Pair().connected()
    stream_id = open_request(pair, b"hello", end_stream=True)
    pair.pump()
    assert pair.server.handler.take() == [
        ("request", stream_id, REQUEST, False),
        ("data", stream_id, b"hello", True),
    ]
    server = pair.server.engine
    server.send_headers(stream_id, RESPONSE)
    server.send_data(stream_id, b"world")
    server.send_headers(stream_id, TRAILERS, end_stream=True)
    pair.pump()
    assert pair.client.handler.take() == [
        ("response", stream_id, RESPONSE, False),
        ("data", stream_id, b"world", False),
        ("trailers", stream_id, TRAILERS),
    ]
    assert pair.client.engine.send_window(stream_id) == 0


def test_end_stream_is_folded_into_headers_and_empty_data() -> None:
    pair = Pair().connected()
    stream_id = open_request(pair, end_stream=True)
    pair.pump()
    assert pair.server.handler.take() == [("request", stream_id, REQUEST, True)]
    pair.server.engine.send_headers(stream_id, RESPONSE)
    pair.server.engine.send_data(stream_id, b"", end_stream=True)
    pair.pump()
    assert pair.client.handler.take() == [
        ("response", stream_id, RESPONSE, False),
        ("data", stream_id, b"", True),
    ]


def test_input_cut_anywhere_gives_the_same_calls() -> None:
    pair = Pair()
    stream_id = open_request(pair, b"x" * 100, end_stream=True)
    for byte in pair.client.output():
        pair.server.engine.receive(bytes([byte]))
    assert pair.server.handler.of("request") == [("request", stream_id, REQUEST, False)]
    assert pair.server.handler.of("data") == [("data", stream_id, b"x" * 100, True)]


def test_padding_is_credited_by_the_engine() -> None:
    pair = Pair(server_settings=ConnectionSettings(stream_window_size=400)).connected()
    stream_id = open_request(pair)
    pair.to_server()
    pair.server.handler.take()
    padding = 255
    payload = bytes([padding]) + b"0123456789" + bytes(padding)
    pair.server.engine.receive(frame(DATA, PADDED, stream_id, payload))
    assert pair.server.handler.take() == [("data", stream_id, b"0123456789", False)]
    updates = [
        (sid, int.from_bytes(body, "big"))
        for kind, _, sid, body in frames(pair.server.output())
        if kind == WINDOW_UPDATE
    ]
    assert updates == [(stream_id, padding + 1)]


def test_client_reset_reaches_server_and_closes_stream() -> None:
    pair = Pair().connected()
    stream_id = open_request(pair)
    pair.pump()
    pair.client.engine.send_reset(stream_id, ErrorCodes.CANCEL)
    pair.pump()
    assert pair.server.handler.take()[-1] == ("reset", stream_id, ErrorCodes.CANCEL, True)
    assert pair.client.engine.send_window(stream_id) == 0
    with pytest.raises(StreamStateError):
        pair.client.engine.send_data(stream_id, b"late")
    pair.client.engine.send_reset(stream_id, ErrorCodes.CANCEL)
    assert pair.client.output() == b""


def test_server_reset_reaches_client() -> None:
    pair = Pair().connected()
    stream_id = open_request(pair)
    pair.pump()
    pair.server.engine.send_reset(stream_id, ErrorCodes.INTERNAL_ERROR)
    pair.pump()
    assert pair.client.handler.take() == [("reset", stream_id, ErrorCodes.INTERNAL_ERROR, True)]
    with pytest.raises(StreamStateError):
        pair.server.engine.send_headers(stream_id, RESPONSE)


def test_data_of_a_stream_reset_meanwhile_credits_the_connection() -> None:
    settings = ConnectionSettings(connection_window_size=65_535, stream_window_size=65_535)
    pair = Pair(client_settings=settings).connected()
    stream_id = open_request(pair, end_stream=True)
    pair.pump()
    pair.server.engine.send_headers(stream_id, RESPONSE)
    pair.server.engine.send_data(stream_id, bytes(60_000))
    assert pair.server.engine.connection_send_window == 5_535
    pair.client.engine.send_reset(stream_id, ErrorCodes.CANCEL)
    pair.pump()
    assert pair.client.handler.of("data") == []
    assert pair.server.engine.connection_send_window == 65_535


def test_excess_streams_are_refused_before_the_settings_ack() -> None:
    pair = Pair(server_settings=ConnectionSettings(max_concurrent_streams=1))
    first = open_request(pair)
    second = open_request(pair)
    pair.to_server()  # the client has not seen the server's SETTINGS yet
    assert pair.server.handler.of("request") == [("request", first, REQUEST, False)]
    sent = frames(pair.server.output())
    assert (RST_STREAM, 0, second, struct.pack(">I", ErrorCodes.REFUSED_STREAM)) in sent
    assert not [f for f in sent if f[0] == GOAWAY]


def test_refused_stream_is_reported_to_the_client_and_the_slot_reused() -> None:
    pair = Pair(server_settings=ConnectionSettings(max_concurrent_streams=1))
    first = open_request(pair, end_stream=True)
    second = open_request(pair, end_stream=True)
    pair.pump()
    assert pair.client.handler.of("reset") == [
        ("reset", second, ErrorCodes.REFUSED_STREAM, True)
    ]
    pair.server.engine.send_headers(first, RESPONSE, end_stream=True)
    pair.pump()
    third = open_request(pair, end_stream=True)
    pair.pump()
    assert pair.server.handler.of("request") == [
        ("request", first, REQUEST, True),
        ("request", third, REQUEST, True),
    ]


def test_stream_window_blocks_and_reopens() -> None:
    pair = Pair(server_settings=ConnectionSettings(stream_window_size=1_000)).connected()
    stream_id = open_request(pair)
    client = pair.client.engine
    assert client.send_window(stream_id) == 1_000
    client.send_data(stream_id, bytes(1_000))
    assert client.send_window(stream_id) == 0
    with pytest.raises(StreamStateError):
        client.send_data(stream_id, b"x")
    pair.pump()
    pair.server.engine.acknowledge_received(stream_id, 1_000)
    pair.pump()
    assert ("window", stream_id) in pair.client.handler.take()
    assert client.send_window(stream_id) == 1_000


def test_connection_window_blocks_and_reopens() -> None:
    settings = ConnectionSettings(connection_window_size=65_535, stream_window_size=65_535)
    pair = Pair(server_settings=settings).connected()
    client = pair.client.engine
    first = open_request(pair, bytes(40_000))
    second = open_request(pair, bytes(25_535))
    assert client.connection_send_window == 0
    assert client.send_window(second) == 0
    pair.pump()
    pair.server.engine.acknowledge_received(first, 40_000)
    pair.pump()
    assert ("window", 0) in pair.client.handler.take()
    assert client.send_window(second) == 40_000


def test_server_goaway_lets_open_streams_finish_and_refuses_late_ones() -> None:
    pair = Pair().connected()
    first = open_request(pair)
    pair.to_server()
    late = open_request(pair)  # in flight when the server sends its GOAWAY
    pair.server.engine.send_goaway(ErrorCodes.NO_ERROR, debug_data=b"bye")
    pair.to_client()
    assert pair.client.handler.take() == [("goaway", ErrorCodes.NO_ERROR, first, b"bye")]
    pair.to_server()
    assert [call[1] for call in pair.server.handler.of("request")] == [first]
    refusal = (RST_STREAM, 0, late, struct.pack(">I", ErrorCodes.REFUSED_STREAM))
    assert refusal in frames(pair.to_client())
    with pytest.raises(StreamStateError):
        open_request(pair)
    pair.client.engine.send_data(first, b"body", end_stream=True)
    pair.pump()
    pair.server.engine.send_headers(first, RESPONSE)
    pair.server.engine.send_headers(first, TRAILERS, end_stream=True)
    pair.pump()
    assert pair.server.handler.of("data") == [("data", first, b"body", True)]
    assert pair.client.handler.take() == [  # the late stream was forgotten at the GOAWAY
        ("response", first, RESPONSE, False),
        ("trailers", first, TRAILERS),
    ]


def test_received_goaway_forgets_our_streams_above_its_last_id() -> None:
    pair = Pair().connected()
    first = open_request(pair)
    second = open_request(pair)
    pair.pump()
    pair.server.engine.send_goaway(ErrorCodes.NO_ERROR, last_stream_id=first)
    pair.pump()
    assert pair.client.handler.take() == [("goaway", ErrorCodes.NO_ERROR, first, b"")]
    assert pair.client.engine.send_window(second) == 0
    with pytest.raises(StreamStateError):
        pair.client.engine.send_data(second, b"x")
    pair.client.engine.send_data(first, b"x", end_stream=True)
    pair.pump()
    assert pair.server.handler.of("data") == [("data", first, b"x", True)]


def test_goaway_never_raises_its_last_stream_id() -> None:
    pair = Pair().connected()
    open_request(pair)
    pair.to_server()
    pair.server.engine.send_goaway(ErrorCodes.NO_ERROR, last_stream_id=2**31 - 1)
    pair.server.engine.send_goaway(ErrorCodes.NO_ERROR, last_stream_id=1)
    pair.server.engine.send_goaway(ErrorCodes.NO_ERROR, last_stream_id=5)
    pair.to_client()
    assert [call[2] for call in pair.client.handler.of("goaway")] == [2**31 - 1, 1, 1]


def test_client_goaway_keeps_the_servers_queued_response() -> None:
    pair = Pair().connected()
    stream_id = open_request(pair, end_stream=True)
    pair.pump()
    pair.server.engine.send_headers(stream_id, RESPONSE)  # queued, not yet taken
    pair.client.engine.send_goaway(ErrorCodes.NO_ERROR)
    pair.to_server()
    assert pair.server.handler.take()[-1] == ("goaway", ErrorCodes.NO_ERROR, 0, b"")
    pair.server.engine.send_data(stream_id, b"answer")
    pair.server.engine.send_headers(stream_id, TRAILERS, end_stream=True)
    pair.to_client()
    assert pair.client.handler.take() == [
        ("response", stream_id, RESPONSE, False),
        ("data", stream_id, b"answer", False),
        ("trailers", stream_id, TRAILERS),
    ]


@pytest.mark.parametrize(
    ("bad_frame", "code"),
    [
        (frame(DATA, 0, 0, b"x"), ErrorCodes.PROTOCOL_ERROR),
        (frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1)), ErrorCodes.FLOW_CONTROL_ERROR),
        (frame(PING, 0, 0, bytes(300_000)), ErrorCodes.FRAME_SIZE_ERROR),
    ],
    ids=["data-on-stream-0", "window-overflow", "frame-too-large"],
)
def test_protocol_error_raises_after_queueing_goaway(bad_frame: bytes, code: int) -> None:
    pair = Pair().connected()
    server = pair.server.engine
    with pytest.raises(ProtocolError) as raised:
        server.receive(bad_frame)
    assert raised.value.error_code == code
    goaways = [f for f in frames(pair.server.output()) if f[0] == GOAWAY]
    assert len(goaways) == 1
    assert struct.unpack(">II", goaways[0][3][:8])[1] == code
    assert server.receive(frame(PING, 0, 0, bytes(8))) is False
    assert pair.server.output() == b""
    assert pair.server.handler.take() == []


def test_malformed_request_is_refused_unseen() -> None:
    pair = Pair().connected()
    stream_id = pair.client.engine.next_stream_id()
    pair.client.engine.send_headers(stream_id, [(b":method", b"GET")], end_stream=True)
    pair.pump()
    assert pair.server.handler.take() == []
    assert pair.client.handler.take() == [("reset", stream_id, ErrorCodes.PROTOCOL_ERROR, True)]


def test_malformed_response_resets_the_stream_and_tells_both() -> None:
    pair = Pair().connected()
    stream_id = open_request(pair, end_stream=True)
    pair.pump()
    pair.server.engine.send_headers(stream_id, [(b":status", b"200"), (b"Upper", b"x")])
    pair.pump()
    assert pair.client.handler.take() == [("reset", stream_id, ErrorCodes.PROTOCOL_ERROR, False)]
    assert pair.server.handler.take()[-1] == ("reset", stream_id, ErrorCodes.PROTOCOL_ERROR, True)


def test_informational_response_then_final() -> None:
    pair = Pair().connected()
    stream_id = open_request(pair, end_stream=True)
    pair.pump()
    pair.server.engine.send_headers(stream_id, [(b":status", b"103")])
    pair.server.engine.send_headers(stream_id, RESPONSE, end_stream=True)
    pair.pump()
    assert pair.client.handler.take() == [
        ("informational", stream_id, [(b":status", b"103")]),
        ("response", stream_id, RESPONSE, True),
    ]


def test_pings_both_ways() -> None:
    pair = Pair().connected()
    pair.client.engine.send_ping(b"12345678")
    pair.pump()
    assert pair.server.handler.take() == [("ping", b"12345678")]
    assert pair.client.handler.take() == [("ping_ack", b"12345678")]


def test_priority_reaches_the_server() -> None:
    pair = Pair().connected()
    stream_id = open_request(pair)
    pair.client.engine.send_priority(stream_id, 32)
    pair.pump()
    assert ("priority", stream_id, 32) in pair.server.handler.take()


def test_acknowledging_closed_or_unknown_streams_credits_only_the_connection() -> None:
    settings = ConnectionSettings(connection_window_size=65_535)
    pair = Pair(server_settings=settings).connected()
    stream_id = open_request(pair, bytes(40_000))
    pair.client.engine.send_reset(stream_id, ErrorCodes.CANCEL)
    pair.to_server()
    pair.server.output()
    pair.server.engine.acknowledge_received(stream_id, 40_000)
    pair.server.engine.acknowledge_received(99, 1_000)
    updates = [(f[2], int.from_bytes(f[3], "big")) for f in frames(pair.server.output())]
    assert updates == [(0, 40_000), (0, 1_000)]


def test_stream_misuse_raises_stream_state_error() -> None:
    pair = Pair().connected()
    client = pair.client.engine
    with pytest.raises(StreamStateError):
        client.send_headers(client.next_stream_id() + 2, REQUEST)
    stream_id = open_request(pair)
    with pytest.raises(StreamStateError):
        client.send_headers(stream_id, TRAILERS)
    with pytest.raises(StreamStateError):
        pair.server.engine.send_headers(2, RESPONSE)
    assert pair.server.output() == b""
