"""The native HTTP/2 engine: RFC 9113 and RFC 7541 (via hpack), sans I/O.

:class:`NativeEngine` implements :class:`rpc.http2.interface.Engine`. It is
assembled from one part per concern, all sharing :class:`EngineCore`'s state:

* :mod:`.receive_streams`: DATA, HEADERS, CONTINUATION, messages;
* :mod:`.receive_control`: SETTINGS, PING, GOAWAY, WINDOW_UPDATE, RST_STREAM,
  PRIORITY, PUSH_PROMISE, unknown types;
* :mod:`.sending`: everything the owner queues;
* this module: the receive loop, the connection preface, and the read-only
  view of the connection.

The receive loop is the hot path: one ``struct.unpack_from`` per frame on
the received bytes, a dict lookup to the frame type's bound method, no frame
objects; payloads are sliced only by the handler that keeps them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from . import frames
from .engine_core import EngineCore
from .errors import ErrorCodes
from .interface import Buffer, EventHandler
from .receive_control import ControlFrameReceiver
from .receive_streams import STREAMED_DATA_SIZE, StreamFrameReceiver
from .sending import FrameSender
from .settings import DEFAULT_WINDOW_SIZE, ConnectionSettings
from .streams import LOCAL_OPEN

_MAGIC = frames.CLIENT_MAGIC
_MAGIC_SIZE = len(_MAGIC)
_HEADER_SIZE = frames.FRAME_HEADER_SIZE
_SETTINGS = frames.SETTINGS
_DATA = frames.DATA
_CONTINUATION = frames.CONTINUATION
_STREAM_ID_MASK = frames.STREAM_ID_MASK
_E = ErrorCodes


class NativeEngine(StreamFrameReceiver, ControlFrameReceiver, FrameSender, EngineCore):
    """One HTTP/2 connection's protocol state; see :class:`rpc.http2.interface.Engine`."""

    def __init__(
        self,
        *,
        client_side: bool,
        settings: ConnectionSettings,
        handler: EventHandler,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(client_side=client_side, settings=settings, handler=handler, clock=clock)
        self._dispatch = {
            frames.DATA: self._recv_data,
            frames.HEADERS: self._recv_headers,
            frames.PRIORITY: self._recv_priority,
            frames.RST_STREAM: self._recv_rst_stream,
            frames.SETTINGS: self._recv_settings,
            frames.PUSH_PROMISE: self._recv_push_promise,
            frames.PING: self._recv_ping,
            frames.GOAWAY: self._recv_goaway,
            frames.WINDOW_UPDATE: self._recv_window_update,
            frames.CONTINUATION: self._recv_continuation,
        }

    def initiate(self) -> None:
        if self.client_side:
            self._queue(_MAGIC)
        self._queue(frames.settings_frame(self._local_settings))
        self._unacked_stream_windows.append(self._settings.stream_window_size)
        extra = self._settings.connection_window_size - DEFAULT_WINDOW_SIZE
        if extra > 0:
            self._queue(frames.window_update_frame(0, extra))
            self._recv_window.available += extra

    # ------------------------------------------------------------------
    # Input
    # ------------------------------------------------------------------

    def receive(self, data: Buffer) -> bool:
        if self._dead:
            return False
        if data:
            # The bytes must not change under the memoryviews handed out.
            chunk = data if type(data) is bytes else bytes(data)
            if self._streamed is not None:
                # The rest of a large DATA frame: passed on as it comes, and
                # nothing else is buffered meanwhile (it began at a read's end).
                offset = self._continue_data(chunk, 0, len(chunk))
                if offset == len(chunk):
                    return False
                return self._run(chunk, offset)
            self._chunks.append(chunk)
            self._buffered += len(chunk)
        if not self._buffered or self._buffered < self._needed:
            return False
        chunks = self._chunks
        buf = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._buffered = 0
        return self._run(buf, 0)

    def _run(self, buf: bytes, offset: int) -> bool:
        """Process ``buf`` from ``offset``, keeping an incomplete frame for later."""
        offset, stopped_early = self._process(buf, offset)
        if offset < len(buf) and not self._dead:
            rest = buf[offset:]
            self._chunks.append(rest)
            self._buffered = len(rest)
        return stopped_early

    def _process(self, buf: bytes, offset: int) -> tuple[int, bool]:
        """Handle the complete frames of ``buf[offset:]``; where it stopped, and whether early.

        ``offset`` is 0 until the preface is in (only a streamed DATA frame,
        which needs the peer's SETTINGS first, leaves a read half used).
        """
        end = len(buf)
        if self._awaiting_magic:
            if end < _MAGIC_SIZE:
                if buf != _MAGIC[:end]:
                    self._connection_error(_E.PROTOCOL_ERROR, "invalid connection preface")
                self._needed = 1  # check each read: fail a non-HTTP/2 peer at once
                return 0, False
            if buf[:_MAGIC_SIZE] != _MAGIC:
                self._connection_error(_E.PROTOCOL_ERROR, "invalid connection preface")
            self._awaiting_magic = False
            offset = _MAGIC_SIZE
        unpack = frames.HEADER.unpack_from
        dispatch = self._dispatch
        ignored = self._recv_ignored
        max_frame = self._max_inbound_frame
        budget = self._limits.max_frames_per_receive
        while True:
            if end - offset < _HEADER_SIZE:
                self._needed = _HEADER_SIZE
                return offset, False
            high, low, frame_type, flags, sid = unpack(buf, offset)
            length = high << 16 | low
            if length > max_frame:
                self._connection_error(_E.FRAME_SIZE_ERROR, f"frame of {length} bytes")
            start = offset + _HEADER_SIZE
            if end - start < length:
                if (
                    frame_type == _DATA
                    and length >= STREAMED_DATA_SIZE
                    and not self._block_stream
                    and not self._awaiting_settings
                    and self._begin_data(buf, start, end, length, flags, sid & _STREAM_ID_MASK)
                ):
                    self._needed = _HEADER_SIZE
                    return end, False
                self._needed = _HEADER_SIZE + length
                return offset, False
            offset = start + length
            if self._block_stream and frame_type != _CONTINUATION:
                self._connection_error(_E.PROTOCOL_ERROR, "frame inside a header block")
            if self._awaiting_settings and (frame_type != _SETTINGS or flags & frames.FLAG_ACK):
                self._connection_error(_E.PROTOCOL_ERROR, "the preface must start with SETTINGS")
            dispatch.get(frame_type, ignored)(buf, start, length, flags, sid & _STREAM_ID_MASK)
            budget -= 1
            if not budget and offset < end:
                self._needed = 0
                return offset, True

    # ------------------------------------------------------------------
    # Output and state
    # ------------------------------------------------------------------

    def data_to_send(self) -> list[Buffer]:
        output = self._output
        self._output = []
        self._output_size = 0
        return output

    @property
    def pending_output(self) -> int:
        return self._output_size

    @property
    def handshake_complete(self) -> bool:
        return not self._awaiting_magic and not self._awaiting_settings

    @property
    def remote_settings(self) -> Mapping[int, int]:
        return self._remote_settings

    @property
    def local_settings(self) -> Mapping[int, int]:
        return self._local_settings

    @property
    def max_outbound_frame_size(self) -> int:
        return self._max_outbound_frame

    @property
    def connection_send_window(self) -> int:
        return self._send_window.available

    def send_window(self, stream_id: int) -> int:
        stream = self._streams.get(stream_id)
        if stream is None or stream.state not in LOCAL_OPEN:
            return 0
        return min(stream.send_window.available, self._send_window.available)
