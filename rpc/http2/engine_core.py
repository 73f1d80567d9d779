"""The state of one native-engine connection and the helpers every part shares.

:class:`rpc.http2.engine.NativeEngine` is assembled from mixins that each
handle one concern (control frames, stream frames, sending); they all derive
from :class:`EngineCore`, which owns the state and the few operations with
side effects on it: queueing output, ending a stream, and the two kinds of
error (RFC 9113 5.4).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NoReturn

from . import frames
from .defences import Defences
from .errors import ErrorCodes, ProtocolError
from .hpack_cache import CachingDecoder, CachingEncoder
from .interface import Buffer, EventHandler
from .settings import (
    DEFAULT_HEADER_TABLE_SIZE,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_WINDOW_SIZE,
    ConnectionSettings,
    SettingCodes,
)
from .streams import LOCAL_OPEN, Stream
from .windows import ReceiveWindow, SendWindow

UNADVERTISED_STREAM_LIMIT = 10_000
"""Peer streams open at once when ``max_concurrent_streams`` is None.

Nothing is advertised then, but memory must stay bounded whatever the peer
does, so streams beyond this are refused (RFC 9113 5.1.2 lets an endpoint
refuse a stream at any time with REFUSED_STREAM)."""

# How a recently closed stream ended, which decides what a late frame on it means.
RESET_BY_US = 0
"""We reset or refused it: the peer may not know yet, its frames are ignored."""
RESET_BY_PEER = 1
ENDED = 2
"""Both sides sent END_STREAM."""

ABANDONED_BY_GOAWAY = RESET_BY_US
"""Our streams above a received GOAWAY's last id: tolerated like a reset."""

_REMOTE_DEFAULTS: dict[int, int] = {
    SettingCodes.HEADER_TABLE_SIZE: DEFAULT_HEADER_TABLE_SIZE,
    SettingCodes.ENABLE_PUSH: 1,
    SettingCodes.INITIAL_WINDOW_SIZE: DEFAULT_WINDOW_SIZE,
    SettingCodes.MAX_FRAME_SIZE: DEFAULT_MAX_FRAME_SIZE,
}
"""RFC 9113 6.5.2 initial values; the unlimited ones (MAX_CONCURRENT_STREAMS,
MAX_HEADER_LIST_SIZE) are absent until the peer sends a value."""

MAX_ENCODER_TABLE_SIZE = DEFAULT_HEADER_TABLE_SIZE
"""Our HPACK encoder's table never grows past this, whatever the peer allows:
it is our memory, and 4 KiB holds every header an RPC protocol repeats."""


class EngineCore:
    """Connection state and the operations shared by the engine's parts."""

    def __init__(
        self,
        *,
        client_side: bool,
        settings: ConnectionSettings,
        handler: EventHandler,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_side = client_side
        self._settings = settings
        self._handler = handler
        self._limits = settings.limits
        self._defences = Defences(settings.limits, clock)
        self._local_settings = settings.advertised(client_side=client_side)
        self._remote_settings = dict(_REMOTE_DEFAULTS)

        self._output: list[Buffer] = []
        self._output_size = 0
        self._dead = False
        """A connection error was raised: all further input is ignored."""

        # Input: at most one partial frame (or the rest of one read after
        # stopping early), kept as received chunks until enough has arrived.
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._needed = 1 if not client_side else frames.FRAME_HEADER_SIZE
        # A large DATA frame being passed on as it arrives (see _begin_data):
        # its stream, payload bytes still to come, then padding to skip.
        self._streamed: Stream | None = None
        self._streamed_left = 0
        self._streamed_padding = 0
        self._streamed_end = False
        self._awaiting_magic = not client_side
        self._awaiting_settings = True
        self._unacked_stream_windows: list[int] = []
        """The SETTINGS_INITIAL_WINDOW_SIZE of each of our SETTINGS frames not
        acknowledged yet, oldest first (every one we send carries it)."""

        self._streams: dict[int, Stream] = {}
        self._peer_streams = 0
        """How many of ``_streams`` the peer opened (what MAX_CONCURRENT_STREAMS bounds)."""
        self._closed: OrderedDict[int, int] = OrderedDict()
        """Recently closed stream ids and how they ended, oldest first, bounded."""
        self._highest_peer_id = 0
        self._next_local_id = 1 if client_side else 2
        limit = settings.max_concurrent_streams
        self._max_peer_streams = UNADVERTISED_STREAM_LIMIT if limit is None else limit

        # The header block being reassembled (HEADERS without END_HEADERS):
        # nothing but its CONTINUATION frames may arrive until it is complete.
        self._block_stream = 0
        self._block_flags = 0
        self._block_priority: int | None = None
        self._block_parts: list[bytes] = []
        self._block_size = 0
        self._block_frames = 0

        self._goaway_sent_last: int | None = None
        self._goaway_received_last: int | None = None

        # Flow control. The peer starts from the RFC defaults until it has
        # our SETTINGS; our larger values are in force at once (more
        # permissive is always safe), smaller ones only from the ACK.
        self._send_window = SendWindow(DEFAULT_WINDOW_SIZE)
        self._recv_window = ReceiveWindow(settings.connection_window_size, DEFAULT_WINDOW_SIZE)
        self._stream_window_available = max(settings.stream_window_size, DEFAULT_WINDOW_SIZE)
        self._peer_initial_window = DEFAULT_WINDOW_SIZE
        self._window_grew = False
        """Set while applying SETTINGS whose INITIAL_WINDOW_SIZE grew."""
        self._max_outbound_frame = DEFAULT_MAX_FRAME_SIZE
        self._max_inbound_frame = settings.max_frame_size
        self._max_header_block = settings.max_header_block_size

        self._encoder = CachingEncoder()
        self._decoder = CachingDecoder(settings.max_header_list_size)
        self._decoder.max_allowed_table_size = max(
            settings.header_table_size, DEFAULT_HEADER_TABLE_SIZE
        )

    # ------------------------------------------------------------------
    # Output
    # ------------------------------------------------------------------

    def _queue(self, frame: bytes) -> None:
        self._output.append(frame)
        self._output_size += len(frame)

    # ------------------------------------------------------------------
    # Streams
    # ------------------------------------------------------------------

    def _new_stream(self, stream_id: int, state: int, *, remote: bool) -> Stream:
        stream = Stream(
            stream_id,
            state,
            remote_initiated=remote,
            send_window=self._peer_initial_window,
            # The window the peer assumes now: on the ACK of our SETTINGS it
            # moves by the same delta on both sides (RFC 9113 6.9.2).
            recv_window=self._stream_window_available,
            recv_window_available=self._stream_window_available,
        )
        self._streams[stream_id] = stream
        if remote:
            self._peer_streams += 1
        return stream

    def _forget(self, stream: Stream, how: int) -> None:
        """Drop a closed stream, remembering how it ended for a while."""
        del self._streams[stream.id]
        if stream.remote_initiated:
            self._peer_streams -= 1
        self._remember(stream.id, how)

    def _remember(self, stream_id: int, how: int) -> None:
        closed = self._closed
        closed[stream_id] = how
        if len(closed) > self._limits.max_closed_streams_remembered:
            closed.popitem(last=False)

    def _is_idle(self, stream_id: int) -> bool:
        """Never opened by either side (RFC 9113 5.1.1: ids only grow)."""
        if (stream_id & 1) == (1 if self.client_side else 0):
            return stream_id >= self._next_local_id
        return stream_id > self._highest_peer_id

    def _local_side_open(self, stream: Stream) -> bool:
        return stream.state in LOCAL_OPEN

    # ------------------------------------------------------------------
    # Flow-control credit
    # ------------------------------------------------------------------

    def _return_credit(self, stream: Stream | None, nbytes: int) -> None:
        """Give ``nbytes`` of received DATA back to the peer (coalesced)."""
        increment = self._recv_window.acknowledge(nbytes)
        if increment:
            self._queue(frames.window_update_frame(0, increment))
        if stream is not None:
            increment = stream.recv_window.acknowledge(nbytes)
            if increment:
                self._queue(frames.window_update_frame(stream.id, increment))

    def _resize_stream_windows(self, size: int) -> None:
        """Make ``size`` the inbound window of every stream, open and future."""
        if self._stream_window_available != size:
            self._stream_window_available = size
            for stream in self._streams.values():
                stream.recv_window.resize(size)

    # ------------------------------------------------------------------
    # Errors (RFC 9113 5.4)
    # ------------------------------------------------------------------

    def _connection_error(self, error_code: int, message: str) -> NoReturn:
        """Queue GOAWAY, stop accepting input, raise :class:`ProtocolError`."""
        self._dead = True
        self._chunks = []
        self._buffered = 0
        last = self._highest_peer_id
        if self._goaway_sent_last is not None:
            last = min(last, self._goaway_sent_last)
        self._goaway_sent_last = last
        self._queue(frames.goaway_frame(last, error_code, message.encode()[:256]))
        raise ProtocolError(error_code, message)

    def _calm_down(self, what: str) -> NoReturn:
        self._connection_error(ErrorCodes.ENHANCE_YOUR_CALM, f"too many {what}")

    def _charge_control(self) -> None:
        if not self._defences.charge_control():
            self._calm_down("control frames")

    def _stream_error(self, stream_id: int, error_code: int, *, peer_fault: bool = True) -> None:
        """Reset a stream for the peer's error; tell the handler if it knew the stream."""
        if peer_fault and not self._defences.charge_reset():
            self._calm_down("stream errors and resets")
        self._queue(frames.rst_stream_frame(stream_id, error_code))
        stream = self._streams.get(stream_id)
        if stream is None:
            if not self._is_idle(stream_id):
                self._remember(stream_id, RESET_BY_US)
            return
        self._forget(stream, RESET_BY_US)
        self._handler.on_stream_reset(stream_id, error_code, False)
