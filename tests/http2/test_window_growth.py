"""Engine.grow_receive_windows: the frames it queues and the windows it opens, on each engine."""

from __future__ import annotations

import pytest

from rpc.http2 import ConnectionSettings, ErrorCodes

from . import frames as fr
from .conftest import Peer, open_client, open_server

E = ErrorCodes
SMALL = ConnectionSettings(stream_window_size=10_000, connection_window_size=65_535)


def open_stream(s: Peer) -> int:
    stream_id = s.new_stream_id()
    s.send(s.request(stream_id, end_stream=False))
    assert s.error is None and stream_id in s.handler.streams("request"), s.describe()
    return stream_id


def test_growth_queues_settings_and_a_connection_window_update(engine_name: str) -> None:
    s = open_server(engine_name, SMALL, auto_acknowledge=False)
    s.engine.grow_receive_windows(20_000, 100_000)
    out = s.new_output()
    settings = [fr.decode_settings(f.payload) for f in out if f.type == fr.SETTINGS]
    assert settings == [[(fr.INITIAL_WINDOW_SIZE, 20_000)]], s.describe()
    updates = [
        (f.stream_id, fr.decode_window_update(f.payload)) for f in out if f.type == fr.WINDOW_UPDATE
    ]
    assert updates == [(0, 100_000 - 65_535)], s.describe()
    s.send(fr.settings_ack())
    assert s.engine.local_settings[fr.INITIAL_WINDOW_SIZE] == 20_000


def test_grown_windows_take_what_the_old_ones_refused(engine_name: str) -> None:
    s = open_server(engine_name, SMALL, auto_acknowledge=False)
    before = open_stream(s)  # its window moves by the delta (RFC 9113 6.9.2)
    s.engine.grow_receive_windows(20_000, 100_000)
    s.send(fr.settings_ack())
    after = open_stream(s)
    third = open_stream(s)
    # 60,000 bytes, nothing read: past both old windows (10,000 and 65,535).
    s.send(fr.data(before, b"a" * 20_000), fr.data(after, b"b" * 20_000))
    s.send(fr.data(third, b"c" * 20_000))
    assert s.error is None and not s.resets(), s.describe()
    assert len(s.handler.body(before)) == len(s.handler.body(after)) == 20_000
    # The new stream window is a limit too.
    s.send(fr.data(after, b"!"))
    s.expect_stream_or_connection_error(after, E.FLOW_CONTROL_ERROR)


def test_the_grown_connection_window_is_a_limit(engine_name: str) -> None:
    s = open_server(engine_name, SMALL, auto_acknowledge=False)
    s.engine.grow_receive_windows(20_000, 70_000)
    s.send(fr.settings_ack())
    streams = [open_stream(s) for _ in range(4)]
    for stream_id in streams[:3]:
        s.send(fr.data(stream_id, b"x" * 20_000))
    s.send(fr.data(streams[3], b"y" * 10_000))
    assert s.error is None, s.describe()
    s.send(fr.data(streams[3], b"z"))
    s.expect_connection_error(E.FLOW_CONTROL_ERROR)


def test_credit_returns_up_to_the_grown_window(engine_name: str) -> None:
    s = open_server(engine_name, SMALL, auto_acknowledge=False)
    stream_id = open_stream(s)
    s.engine.grow_receive_windows(20_000, 100_000)
    s.send(fr.settings_ack())
    s.new_output()
    for _ in range(5):  # several windows' worth, read as it comes
        s.send(fr.data(stream_id, b"r" * 20_000))
        assert s.error is None, s.describe()
        s.engine.acknowledge_received(stream_id, 20_000)
    credit = sum(
        fr.decode_window_update(f.payload)
        for f in s.new_output()
        if f.type == fr.WINDOW_UPDATE and f.stream_id == stream_id
    )
    assert credit == 100_000, s.describe()


def test_smaller_or_equal_sizes_change_nothing(engine_name: str) -> None:
    s = open_server(engine_name, SMALL)
    s.engine.grow_receive_windows(10_000, 65_535)
    s.engine.grow_receive_windows(5_000, 1_000)
    assert s.new_output() == []
    assert s.engine.local_settings[fr.INITIAL_WINDOW_SIZE] == 10_000


def test_sizes_beyond_the_protocol_maximum_are_refused(engine_name: str) -> None:
    s = open_server(engine_name, SMALL)
    with pytest.raises(ValueError):
        s.engine.grow_receive_windows(2**31, 100_000)
    with pytest.raises(ValueError):
        s.engine.grow_receive_windows(20_000, 2**31)
    assert s.new_output() == []


def test_growth_before_our_first_settings_are_acknowledged(engine_name: str) -> None:
    """Both SETTINGS in flight: from the first ACK the larger window may be in use."""
    settings = ConnectionSettings(stream_window_size=1_000)
    s = open_server(engine_name, settings, ack=False, auto_acknowledge=False)
    s.engine.grow_receive_windows(3_000, 65_535)
    s.send(fr.settings_ack())
    stream_id = open_stream(s)
    s.send(fr.data(stream_id, b"w" * 3_000))
    assert s.error is None and not s.resets(), s.describe()
    s.send(fr.settings_ack())
    s.send(fr.data(stream_id, b"!"))
    s.expect_stream_or_connection_error(stream_id, E.FLOW_CONTROL_ERROR)


def test_client_side_growth(engine_name: str) -> None:
    c = open_client(engine_name, SMALL, auto_acknowledge=False)
    stream_id = c.engine.next_stream_id()
    request = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"t")]
    c.engine.send_headers(stream_id, request, end_stream=True)
    c.engine.grow_receive_windows(30_000, 100_000)
    c.send(fr.settings_ack())
    c.send(fr.headers(stream_id, c.block(fr.response())), fr.data(stream_id, b"d" * 30_000))
    assert c.error is None and len(c.handler.body(stream_id)) == 30_000, c.describe()
