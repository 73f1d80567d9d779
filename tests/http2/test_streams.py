"""rpc.http2.streams: the RFC 9113 5.1 transition table."""

from __future__ import annotations

import pytest

from rpc.http2.streams import (
    LOCAL_OPEN,
    REMOTE_OPEN,
    Stream,
    StreamEvent,
    StreamState,
    transition,
)

S = StreamState
E = StreamEvent


@pytest.mark.parametrize(
    ("state", "event", "target"),
    [
        (S.IDLE, E.SEND_HEADERS, S.OPEN),
        (S.IDLE, E.RECV_HEADERS, S.OPEN),
        (S.OPEN, E.SEND_END_STREAM, S.HALF_CLOSED_LOCAL),
        (S.OPEN, E.RECV_END_STREAM, S.HALF_CLOSED_REMOTE),
        (S.HALF_CLOSED_LOCAL, E.RECV_END_STREAM, S.CLOSED),
        (S.HALF_CLOSED_REMOTE, E.SEND_END_STREAM, S.CLOSED),
        (S.HALF_CLOSED_LOCAL, E.RECV_HEADERS, S.HALF_CLOSED_LOCAL),
        (S.OPEN, E.RECV_RST_STREAM, S.CLOSED),
        (S.HALF_CLOSED_REMOTE, E.SEND_RST_STREAM, S.CLOSED),
        (S.IDLE, E.RECV_PUSH_PROMISE, S.RESERVED_REMOTE),
        (S.RESERVED_REMOTE, E.RECV_HEADERS, S.HALF_CLOSED_LOCAL),
    ],
)
def test_allowed_transitions(state: S, event: E, target: S) -> None:
    assert transition(state, event) == target


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.IDLE, E.RECV_END_STREAM),
        (S.IDLE, E.RECV_RST_STREAM),
        (S.HALF_CLOSED_REMOTE, E.RECV_HEADERS),
        (S.HALF_CLOSED_REMOTE, E.RECV_END_STREAM),
        (S.HALF_CLOSED_LOCAL, E.SEND_HEADERS),
        (S.CLOSED, E.RECV_HEADERS),
        (S.CLOSED, E.SEND_END_STREAM),
    ],
)
def test_forbidden_transitions(state: S, event: E) -> None:
    assert transition(state, event) is None


def test_open_sides() -> None:
    assert S.OPEN in LOCAL_OPEN and S.OPEN in REMOTE_OPEN
    assert S.HALF_CLOSED_LOCAL not in LOCAL_OPEN and S.HALF_CLOSED_LOCAL in REMOTE_OPEN
    assert S.HALF_CLOSED_REMOTE in LOCAL_OPEN and S.HALF_CLOSED_REMOTE not in REMOTE_OPEN


def test_stream_record() -> None:
    stream = Stream(
        3, S.OPEN, remote_initiated=True, send_window=10, recv_window=20, recv_window_available=30
    )
    assert stream.send_window.available == 10
    assert (stream.recv_window.size, stream.recv_window.available) == (20, 30)
    assert stream.remote_final_received and not stream.local_final_sent
    assert "OPEN" in repr(stream)
    with pytest.raises(AttributeError):
        stream.other = 1  # type: ignore[attr-defined]
