"""Stream states (RFC 9113 5.1) as a transition table, and the per-stream record.

The table is the single statement of which frames a stream may send or
receive in which state; the engine looks a transition up and treats a
missing entry as the error the RFC names for that case. States and events
are stored as plain ints (the enum values), so the per-frame path compares
and hashes ints only.

The reserved states exist only so that the table is the RFC's: this engine
never enters them, because it refuses PUSH_PROMISE (we advertise
ENABLE_PUSH=0 as a client, and a server never receives one legitimately).
"""

from __future__ import annotations

import enum

from .windows import ReceiveWindow, SendWindow


class StreamState(enum.IntEnum):
    IDLE = 0
    RESERVED_LOCAL = 1
    RESERVED_REMOTE = 2
    OPEN = 3
    HALF_CLOSED_LOCAL = 4
    HALF_CLOSED_REMOTE = 5
    CLOSED = 6


class StreamEvent(enum.IntEnum):
    SEND_HEADERS = 0
    SEND_END_STREAM = 1
    SEND_PUSH_PROMISE = 2
    SEND_RST_STREAM = 3
    RECV_HEADERS = 4
    RECV_END_STREAM = 5
    RECV_PUSH_PROMISE = 6
    RECV_RST_STREAM = 7


IDLE = int(StreamState.IDLE)
OPEN = int(StreamState.OPEN)
HALF_CLOSED_LOCAL = int(StreamState.HALF_CLOSED_LOCAL)
HALF_CLOSED_REMOTE = int(StreamState.HALF_CLOSED_REMOTE)
CLOSED = int(StreamState.CLOSED)

SEND_HEADERS = int(StreamEvent.SEND_HEADERS)
SEND_END_STREAM = int(StreamEvent.SEND_END_STREAM)
RECV_HEADERS = int(StreamEvent.RECV_HEADERS)
RECV_END_STREAM = int(StreamEvent.RECV_END_STREAM)

_S = StreamState
_E = StreamEvent
_TABLE: dict[tuple[StreamState, StreamEvent], StreamState] = {
    (_S.IDLE, _E.SEND_HEADERS): _S.OPEN,
    (_S.IDLE, _E.RECV_HEADERS): _S.OPEN,
    (_S.IDLE, _E.SEND_PUSH_PROMISE): _S.RESERVED_LOCAL,
    (_S.IDLE, _E.RECV_PUSH_PROMISE): _S.RESERVED_REMOTE,
    (_S.RESERVED_LOCAL, _E.SEND_HEADERS): _S.HALF_CLOSED_REMOTE,
    (_S.RESERVED_REMOTE, _E.RECV_HEADERS): _S.HALF_CLOSED_LOCAL,
    # Headers on an open side: 1xx responses, the final response, trailers.
    (_S.OPEN, _E.SEND_HEADERS): _S.OPEN,
    (_S.OPEN, _E.RECV_HEADERS): _S.OPEN,
    (_S.OPEN, _E.SEND_END_STREAM): _S.HALF_CLOSED_LOCAL,
    (_S.OPEN, _E.RECV_END_STREAM): _S.HALF_CLOSED_REMOTE,
    (_S.HALF_CLOSED_LOCAL, _E.RECV_HEADERS): _S.HALF_CLOSED_LOCAL,
    (_S.HALF_CLOSED_LOCAL, _E.RECV_END_STREAM): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _E.SEND_HEADERS): _S.HALF_CLOSED_REMOTE,
    (_S.HALF_CLOSED_REMOTE, _E.SEND_END_STREAM): _S.CLOSED,
    **{
        (state, event): _S.CLOSED
        for state in (
            _S.RESERVED_LOCAL,
            _S.RESERVED_REMOTE,
            _S.OPEN,
            _S.HALF_CLOSED_LOCAL,
            _S.HALF_CLOSED_REMOTE,
            _S.CLOSED,
        )
        for event in (_E.SEND_RST_STREAM, _E.RECV_RST_STREAM)
    },
}

TRANSITIONS: dict[tuple[int, int], int] = {
    (int(state), int(event)): int(target) for (state, event), target in _TABLE.items()
}
"""``(state, event) -> next state``; a missing key is a transition the RFC forbids."""

LOCAL_OPEN = frozenset({OPEN, HALF_CLOSED_REMOTE})
"""States in which we may still send frames that carry the stream forward."""
REMOTE_OPEN = frozenset({OPEN, HALF_CLOSED_LOCAL})
"""States in which the peer may still send DATA or HEADERS."""


def transition(state: int, event: int) -> int | None:
    """The state after ``event``, or None when the RFC forbids it in ``state``."""
    return TRANSITIONS.get((state, event))


class Stream:
    """What the engine keeps per open stream; dropped as soon as it closes."""

    __slots__ = (
        "expected_length",
        "id",
        "length_exempt",
        "local_final_sent",
        "received_length",
        "recv_window",
        "remote_final_received",
        "remote_initiated",
        "send_window",
        "state",
    )

    def __init__(
        self,
        stream_id: int,
        state: int,
        *,
        remote_initiated: bool,
        send_window: int,
        recv_window: int,
        recv_window_available: int,
    ) -> None:
        self.id = stream_id
        self.state = state
        self.remote_initiated = remote_initiated
        self.send_window = SendWindow(send_window)
        self.recv_window = ReceiveWindow(recv_window, recv_window_available)
        self.remote_final_received = remote_initiated
        """The peer's request (server) or final response (client) has arrived:
        further HEADERS from the peer can only be trailers."""
        self.local_final_sent = False
        """Our request or final response went out: further headers are trailers."""
        self.expected_length: int | None = None
        """The peer's content-length, checked against its DATA (RFC 9113 8.1.1)."""
        self.received_length = 0
        self.length_exempt = False
        """A response to HEAD (or a 304) announces a length it does not carry."""

    def __repr__(self) -> str:
        return f"<Stream {self.id} {StreamState(self.state).name}>"
