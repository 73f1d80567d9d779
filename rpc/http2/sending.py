"""What the owner asks the engine to send: the outbound half of :class:`Engine`.

Every method validates against the stream's state *before* touching
anything (HPACK included), so a :class:`StreamStateError` leaves the engine
exactly as it was.
"""

from __future__ import annotations

from . import frames
from .engine_core import ENDED, RESET_BY_US, EngineCore
from .errors import StreamStateError
from .headers import WireHeaders
from .interface import Buffer
from .settings import MAX_WINDOW_SIZE, SettingCodes
from .streams import CLOSED, LOCAL_OPEN, OPEN, REMOTE_OPEN, SEND_END_STREAM, TRANSITIONS, Stream

MAX_STREAM_ID = 2**31 - 1
_INITIAL_WINDOW_SIZE = int(SettingCodes.INITIAL_WINDOW_SIZE)


def _informational(headers: WireHeaders) -> bool:
    """A 1xx response: the final response is still to come."""
    return bool(headers) and headers[0][0] == b":status" and headers[0][1][:1] == b"1"


def _head_request(headers: WireHeaders) -> bool:
    """A HEAD request: its response announces a content-length it does not carry."""
    for name, value in headers:
        if name == b":method":
            return value == b"HEAD"
        if name[:1] != b":":
            break
    return False


class FrameSender(EngineCore):
    """Queueing HEADERS, DATA, RST_STREAM, PING, GOAWAY, PRIORITY and credit."""

    def next_stream_id(self) -> int:
        if not self.client_side:
            raise StreamStateError("only the client side opens streams")
        if self._goaway_received_last is not None:
            raise StreamStateError("the peer sent GOAWAY: no new streams")
        stream_id = self._next_local_id
        if stream_id > MAX_STREAM_ID:
            raise StreamStateError("stream ids are exhausted")
        return stream_id

    def send_headers(self, stream_id: int, headers: WireHeaders, end_stream: bool = False) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id != self.next_stream_id():
                raise StreamStateError(f"stream {stream_id} cannot send headers")
        elif stream.state not in LOCAL_OPEN:
            raise StreamStateError(f"stream {stream_id} has ended its side")
        elif stream.local_final_sent and not end_stream:
            raise StreamStateError("trailers must end the stream")
        block = self._encoder.encode(headers)
        self._queue(frames.headers_frames(stream_id, block, end_stream, self._max_outbound_frame))
        if stream is None:
            stream = self._new_stream(stream_id, OPEN, remote=False)
            self._next_local_id = stream_id + 2
            stream.local_final_sent = True
            stream.length_exempt = _head_request(headers)
        elif not stream.local_final_sent and not _informational(headers):
            stream.local_final_sent = True
        if end_stream:
            self._end_local(stream)

    def send_data(
        self, stream_id: int, data: Buffer | list[Buffer], end_stream: bool = False
    ) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.state not in LOCAL_OPEN or not stream.local_final_sent:
            raise StreamStateError(f"stream {stream_id} cannot send data")
        size = sum(map(len, data)) if type(data) is list else len(data)
        if size:
            window = stream.send_window
            if size > window.available or size > self._send_window.available:
                raise StreamStateError(f"{size} bytes exceed the send window of {stream_id}")
            window.available -= size
            self._send_window.available -= size
        max_frame = self._max_outbound_frame
        self._output.extend(frames.data_frames(stream_id, data, end_stream, max_frame))
        count = -(-size // max_frame) or 1
        self._output_size += size + frames.FRAME_HEADER_SIZE * count
        if end_stream:
            self._end_local(stream)

    def _end_local(self, stream: Stream) -> None:
        state = TRANSITIONS[stream.state, SEND_END_STREAM]
        stream.state = state
        if state == CLOSED:
            self._forget(stream, ENDED)

    def send_reset(self, stream_id: int, error_code: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        self._queue(frames.rst_stream_frame(stream_id, error_code))
        self._forget(stream, RESET_BY_US)

    def acknowledge_received(self, stream_id: int, nbytes: int) -> None:
        if nbytes <= 0:
            return
        stream = self._streams.get(stream_id)
        if stream is not None and stream.state not in REMOTE_OPEN:
            stream = None  # the peer sends no more on it: no stream credit is due
        self._return_credit(stream, nbytes)

    def acknowledge_connection(self, nbytes: int) -> None:
        if nbytes > 0:
            increment = self._recv_window.acknowledge(nbytes)
            if increment:
                self._queue(frames.window_update_frame(0, increment))

    def acknowledge_stream(self, stream_id: int, nbytes: int) -> None:
        if nbytes <= 0:
            return
        stream = self._streams.get(stream_id)
        if stream is not None and stream.state in REMOTE_OPEN:
            increment = stream.recv_window.acknowledge(nbytes)
            if increment:
                self._queue(frames.window_update_frame(stream_id, increment))

    def send_ping(self, payload: bytes) -> None:
        if len(payload) != 8:
            raise ValueError("a PING payload is 8 bytes")
        self._queue(frames.ping_frame(payload, ack=False))

    def grow_receive_windows(self, stream_window: int, connection_window: int) -> None:
        if max(stream_window, connection_window) > MAX_WINDOW_SIZE:
            raise ValueError(f"a window cannot exceed {MAX_WINDOW_SIZE} bytes")
        if stream_window > self._local_settings[_INITIAL_WINDOW_SIZE]:
            self._local_settings[_INITIAL_WINDOW_SIZE] = stream_window
            self._queue(frames.settings_frame({_INITIAL_WINDOW_SIZE: stream_window}))
            self._unacked_stream_windows.append(stream_window)
            # The peer may use it as soon as it reads the frame.
            self._resize_stream_windows(max(stream_window, self._stream_window_available))
        increment = self._recv_window.enlarge(connection_window)
        if increment:
            self._queue(frames.window_update_frame(0, increment))

    def send_goaway(
        self, error_code: int, last_stream_id: int | None = None, debug_data: bytes = b""
    ) -> None:
        last = self._highest_peer_id if last_stream_id is None else last_stream_id
        if self._goaway_sent_last is not None:
            last = min(last, self._goaway_sent_last)
        self._goaway_sent_last = last
        self._queue(frames.goaway_frame(last, error_code, debug_data))

    def send_priority(
        self, stream_id: int, weight: int, depends_on: int = 0, exclusive: bool = False
    ) -> None:
        if not 1 <= weight <= 256:
            raise ValueError("a priority weight is between 1 and 256")
        if not 0 < stream_id <= MAX_STREAM_ID or depends_on == stream_id:
            raise ValueError("invalid stream or dependency for PRIORITY")
        self._queue(frames.priority_frame(stream_id, weight, depends_on, exclusive))
