"""Receiving the frames that carry messages: DATA, HEADERS and CONTINUATION.

Header blocks are reassembled here with their bounds checked *before* a
fragment is buffered, decoded (always, even for a stream about to be
refused, so that the HPACK table stays in step with the peer's encoder),
then validated and classified: request, 1xx, final response or trailers.

Choices the RFC leaves open, made once here:

* A header block over ``settings.max_header_block_size`` encoded bytes, or
  with more than ``limits.max_continuation_frames`` CONTINUATION frames, is
  a connection error ENHANCE_YOUR_CALM: a flood. The block cannot be skipped
  without desynchronising HPACK, and it is refused as it arrives, before it
  is buffered.
* A decoded header list over our SETTINGS_MAX_HEADER_LIST_SIZE costs only
  its stream (RFC 9113 10.5.1). The block is decoded whole, so the HPACK
  table stays in step, but nothing past the limit is kept
  (:class:`.hpack_decoder.BoundedDecoder`). A server answers the request
  HTTP 431 (Request Header Fields Too Large, as RFC 9113 10.5.1 suggests and
  Go's net/http does; a gRPC server configures a Trailers-Only
  RESOURCE_EXHAUSTED instead) and, if the request had not ended, RST_STREAM(NO_ERROR)
  so the client stops sending it (8.1); the request never reaches the
  handler. Response headers or trailers over the limit (from a server), or
  request trailers (from a client), reset their stream with
  ENHANCE_YOUR_CALM, which a gRPC client reports as RESOURCE_EXHAUSTED (the
  status grpc core gives a metadata list over its hard limit; grpc-go says
  INTERNAL). Each such block costs the peer one stream-reset token, plus one
  per ``max_header_list_size`` bytes of the block (the work of decoding it),
  so a peer that keeps sending them gets GOAWAY(ENHANCE_YOUR_CALM) like a
  rapid-reset one. grpc core and Go's x/net/http2 also decode on without
  keeping fields; Go ends the connection instead when a block goes on
  (CONTINUATION) past the limit, which the block size cap covers here.
* HEADERS or DATA on a stream that ended normally or was reset by the peer,
  and still remembered, is a stream error STREAM_CLOSED; on a stream we
  reset, it is ignored (the peer may not have seen our RST_STREAM yet); on a
  stream too old to be remembered, a connection error (STREAM_CLOSED for
  DATA, PROTOCOL_ERROR for HEADERS, which may be a reused lower id).
"""

from __future__ import annotations

from hpack.exceptions import HPACKError

from . import frames
from .engine_core import ENDED, RESET_BY_US, EngineCore
from .errors import ErrorCodes
from .headers import WireHeaders, malformed
from .interface import Buffer
from .streams import (
    CLOSED,
    HALF_CLOSED_REMOTE,
    OPEN,
    RECV_END_STREAM,
    REMOTE_OPEN,
    TRANSITIONS,
    Stream,
)

_E = ErrorCodes
_PADDED = frames.FLAG_PADDED
_END_STREAM = frames.FLAG_END_STREAM
_END_HEADERS = frames.FLAG_END_HEADERS
_PRIORITY = frames.FLAG_PRIORITY

MEMORYVIEW_THRESHOLD = 4096
"""DATA payloads at least this large are handed over as memoryview slices of
the received bytes; smaller ones are copied, which is cheaper than a view."""

STREAMED_DATA_SIZE = 64 * 1024
"""A DATA frame at least this large that a read leaves incomplete is passed on
in pieces as it arrives (when it is sure to be accepted), not buffered whole:
joining the reads that carry a 256 KiB frame would copy it into a new buffer
the size of the frame, whose pages the kernel maps afresh on every message."""

SELF_DEPENDENT = 0
"""Marks a HEADERS priority that names its own stream (weights are 1-256)."""


def content_length(headers: WireHeaders) -> int | None:
    """The content-length header's value; ValueError if it is not one number."""
    length: int | None = None
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise ValueError("invalid content-length")
            length = int(value)
    return length


class StreamFrameReceiver(EngineCore):
    """Handlers for DATA, HEADERS and CONTINUATION (RFC 9113 6.1, 6.2, 6.10, 8)."""

    def _recv_data(self, buf: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if not sid:
            self._connection_error(_E.PROTOCOL_ERROR, "DATA on stream 0")
        end = start + length
        overhead = 0
        if flags & _PADDED:
            if not length:
                self._connection_error(_E.FRAME_SIZE_ERROR, "padded DATA without pad length")
            overhead = buf[start] + 1
            if overhead > length:
                self._connection_error(_E.PROTOCOL_ERROR, "DATA padding exceeds its payload")
            start += 1
            end -= overhead - 1
        if not self._recv_window.consume(length):
            self._connection_error(_E.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        stream = self._streams.get(sid)
        if stream is None or stream.state not in REMOTE_OPEN or not stream.remote_final_received:
            self._refuse_data(sid, stream, length)
            return
        if not stream.recv_window.consume(length):
            self._return_credit(None, length)
            self._stream_error(sid, _E.FLOW_CONTROL_ERROR)
            return
        size = length - overhead
        end_stream = flags & _END_STREAM
        expected = stream.expected_length
        if expected is not None:
            received = stream.received_length + size
            stream.received_length = received
            if received > expected or (end_stream and received != expected):
                self._return_credit(None, length)
                self._stream_error(sid, _E.PROTOCOL_ERROR)
                return
        if overhead:
            self._return_credit(stream, overhead)
        if end_stream:
            self._end_remote(stream)
        elif not size:
            self._charge_control()
        # A view keeps the whole read buffer alive: only for a payload that is
        # most of it, else a peer could pin large buffers (padding, unknown
        # frames) behind small DATA frames, beyond what the windows count.
        if size >= MEMORYVIEW_THRESHOLD and size * 2 >= len(buf):
            payload: Buffer = memoryview(buf)[start:end]
        else:
            payload = buf[start:end]
        self._handler.on_data(sid, payload, bool(end_stream))

    def _begin_data(
        self, buf: bytes, start: int, end: int, length: int, flags: int, sid: int
    ) -> bool:
        """Start passing on a DATA frame of which ``buf[start:end]`` has arrived.

        Only a frame that :meth:`_recv_data` would accept whole is streamed:
        anything it would refuse or fail waits for the whole frame as before,
        so errors and their timing do not change. Once begun, nothing can
        refuse the frame's rest: other frames cannot come in between, and a
        stream that we reset meanwhile just has its rest dropped.
        """
        overhead = 0
        if flags & _PADDED:
            if start == end:
                return False
            overhead = buf[start] + 1
            if overhead > length:
                return False
        if not sid or length > self._recv_window.available:
            return False
        stream = self._streams.get(sid)
        if (
            stream is None
            or stream.state not in REMOTE_OPEN
            or not stream.remote_final_received
            or length > stream.recv_window.available
        ):
            return False
        size = length - overhead
        expected = stream.expected_length
        if expected is not None:
            received = stream.received_length + size
            if received > expected or (flags & _END_STREAM and received != expected):
                return False
            stream.received_length = received
        self._recv_window.consume(length)
        stream.recv_window.consume(length)
        if overhead:
            self._return_credit(stream, overhead)
            start += 1
        self._streamed = stream
        self._streamed_left = size
        self._streamed_padding = overhead - 1 if overhead else 0
        self._streamed_end = bool(flags & _END_STREAM)
        self._continue_data(buf, start, end)
        return True

    def _continue_data(self, buf: bytes, start: int, end: int) -> int:
        """Pass on the streamed frame's bytes in ``buf[start:end]``; where the frame ended there."""
        stream = self._streamed
        assert stream is not None
        size = min(end - start, self._streamed_left)
        self._streamed_left -= size
        stop = start + size
        done = False
        if not self._streamed_left:
            skipped = min(end - stop, self._streamed_padding)
            self._streamed_padding -= skipped
            done = not self._streamed_padding
            if done:
                self._streamed = None
            stop += skipped
        if self._streams.get(stream.id) is not stream:
            # We reset the stream meanwhile: drop the rest, as for a late frame.
            if size:
                self._return_credit(None, size)
            return stop
        end_stream = done and self._streamed_end
        if end_stream:
            self._end_remote(stream)
        if size or end_stream:
            # The same rule as for a whole frame: a view only of most of the buffer.
            if size >= MEMORYVIEW_THRESHOLD and size * 2 >= len(buf):
                payload: Buffer = memoryview(buf)[start : start + size]
            else:
                payload = buf[start : start + size]
            self._handler.on_data(stream.id, payload, end_stream)
        return stop

    def _refuse_data(self, sid: int, stream: Stream | None, length: int) -> None:
        """DATA the stream cannot take; its connection credit goes back at once."""
        self._return_credit(None, length)
        if stream is not None:
            closed = stream.state not in REMOTE_OPEN
            self._stream_error(sid, _E.STREAM_CLOSED if closed else _E.PROTOCOL_ERROR)
            return
        if self._is_idle(sid):
            self._connection_error(_E.PROTOCOL_ERROR, f"DATA on idle stream {sid}")
        how = self._closed.get(sid)
        if how == RESET_BY_US:
            return
        if how is None:
            # Closed too long ago to be remembered: most likely DATA in flight
            # when we reset it (a server answering early resets with
            # NO_ERROR), so a stream error, not the whole connection; each
            # costs the peer a control token.
            self._charge_control()
            self._stream_error(sid, _E.STREAM_CLOSED, peer_fault=False)
            return
        self._stream_error(sid, _E.STREAM_CLOSED)

    def _recv_headers(self, buf: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if not sid:
            self._connection_error(_E.PROTOCOL_ERROR, "HEADERS on stream 0")
        end = start + length
        padding = 0
        if flags & _PADDED:
            if not length:
                self._connection_error(_E.FRAME_SIZE_ERROR, "padded HEADERS without pad length")
            padding = buf[start]
            start += 1
        priority: int | None = None
        if flags & _PRIORITY:
            if end - start < 5:
                self._connection_error(_E.FRAME_SIZE_ERROR, "HEADERS too short for priority")
            depends_on, _exclusive, weight = frames.parse_priority(buf, start)
            priority = SELF_DEPENDENT if depends_on == sid else weight
            start += 5
        if padding > end - start:
            self._connection_error(_E.PROTOCOL_ERROR, "HEADERS padding exceeds its payload")
        fragment = buf[start : end - padding]
        if len(fragment) > self._max_header_block:
            self._calm_down("header block bytes")
        if flags & _END_HEADERS:
            self._header_block(sid, flags, fragment, priority)
            return
        self._block_stream = sid
        self._block_flags = flags
        self._block_priority = priority
        self._block_parts = [fragment]
        self._block_size = len(fragment)
        self._block_frames = 0

    def _recv_continuation(self, buf: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if not sid or sid != self._block_stream:
            self._connection_error(_E.PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        self._block_frames += 1
        if self._block_frames > self._limits.max_continuation_frames:
            self._calm_down("CONTINUATION frames")
        self._block_size += length
        if self._block_size > self._max_header_block:
            self._calm_down("header block bytes")
        end_headers = flags & _END_HEADERS
        if not length and not end_headers:
            self._charge_control()
        self._block_parts.append(buf[start : start + length])
        if end_headers:
            block = b"".join(self._block_parts)
            self._block_parts = []
            self._block_stream = 0
            self._header_block(sid, self._block_flags, block, self._block_priority)

    def _header_block(self, sid: int, flags: int, block: bytes, priority: int | None) -> None:
        """A complete header block: decode it, then act on what it is."""
        try:
            headers: WireHeaders | None = self._decoder.decode_block(block)
        except (HPACKError, IndexError, ValueError) as exc:
            self._connection_error(_E.COMPRESSION_ERROR, f"HPACK: {exc}")
        if headers is None:
            self._charge_oversized_block(len(block))
        end_stream = bool(flags & _END_STREAM)
        stream = self._streams.get(sid)
        if stream is None:
            self._headers_without_stream(sid, headers, end_stream, priority)
            return
        if stream.state not in REMOTE_OPEN:
            self._stream_error(sid, _E.STREAM_CLOSED)
            return
        if priority == SELF_DEPENDENT:
            self._stream_error(sid, _E.PROTOCOL_ERROR)
            return
        if headers is None:
            self._stream_error(sid, _E.ENHANCE_YOUR_CALM, peer_fault=False)  # charged above
            return
        if stream.remote_final_received:
            self._trailers(stream, headers, end_stream)
        else:
            self._response(stream, headers, end_stream)
        if priority and sid in self._streams:
            self._handler.on_priority(sid, priority)

    def _charge_oversized_block(self, size: int) -> None:
        """A header list over our limit: its stream error costs one stream-reset
        token, the decoding work one more per max_header_list_size bytes of the block."""
        if not self._defences.charge_reset(1 + size // self._settings.max_header_list_size):
            self._calm_down("header lists over the limit")

    def _headers_without_stream(
        self, sid: int, headers: WireHeaders | None, end_stream: bool, priority: int | None
    ) -> None:
        if self._is_idle(sid):
            if (sid & 1) == (0 if self.client_side else 1):
                self._highest_peer_id = sid
                self._request(sid, headers, end_stream, priority)
                return
            self._connection_error(_E.PROTOCOL_ERROR, f"HEADERS opening stream {sid}")
        how = self._closed.get(sid)
        if how == RESET_BY_US:
            return
        if how is None:
            self._connection_error(_E.PROTOCOL_ERROR, f"HEADERS on old stream {sid}")
        self._stream_error(sid, _E.STREAM_CLOSED)

    def _request(
        self, sid: int, headers: WireHeaders | None, end_stream: bool, priority: int | None
    ) -> None:
        """The peer opens a stream (server side; a client never accepts one);
        ``headers`` None: its list was over our limit."""
        if self.client_side:
            self._connection_error(_E.PROTOCOL_ERROR, "server opened a stream without a push")
        goaway = self._goaway_sent_last
        if goaway is not None and sid > goaway:
            self._charge_control()
            self._queue(frames.rst_stream_frame(sid, _E.REFUSED_STREAM))
            self._remember(sid, RESET_BY_US)
            return
        if headers is None:
            self._header_fields_too_large(sid, end_stream)
            return
        if self._peer_streams >= self._max_peer_streams:
            self._stream_error(sid, _E.REFUSED_STREAM)
            return
        if priority == SELF_DEPENDENT or malformed(headers, "request", inbound=True):
            self._stream_error(sid, _E.PROTOCOL_ERROR)
            return
        try:
            expected = content_length(headers)
        except ValueError:
            expected = -1
        if expected == -1 or (end_stream and expected):
            self._stream_error(sid, _E.PROTOCOL_ERROR)
            return
        stream = self._new_stream(sid, HALF_CLOSED_REMOTE if end_stream else OPEN, remote=True)
        stream.expected_length = expected
        self._handler.on_request(sid, headers, end_stream)
        if priority and sid in self._streams:
            self._handler.on_priority(sid, priority)

    def _header_fields_too_large(self, sid: int, end_stream: bool) -> None:
        """Answer a request whose header list is over our limit (HTTP 431 unless
        ``settings.oversized_request_response`` says otherwise), without
        opening the stream for the handler (RFC 9113 10.5.1, 8.1).

        The peer was charged already (:meth:`_charge_oversized_block`).
        """
        block = self._encoder.encode(list(self._settings.oversized_request_response))
        self._queue(frames.headers_frames(sid, block, True, self._max_outbound_frame))
        if end_stream:
            self._remember(sid, ENDED)
            return
        # Its DATA may still be on the way: asked to stop, then ignored (credit returned).
        self._queue(frames.rst_stream_frame(sid, _E.NO_ERROR))
        self._remember(sid, RESET_BY_US)

    def _response(self, stream: Stream, headers: WireHeaders, end_stream: bool) -> None:
        """Client side: a 1xx or the final response of one of our streams."""
        sid = stream.id
        if malformed(headers, "response", inbound=True):
            self._stream_error(sid, _E.PROTOCOL_ERROR)
            return
        status = headers[0][1]
        if status[0] == 0x31:  # '1': informational; 101 does not exist in HTTP/2 (8.6)
            if end_stream or status == b"101":
                self._stream_error(sid, _E.PROTOCOL_ERROR)
                return
            self._handler.on_informational(sid, headers)
            return
        try:
            expected = content_length(headers)
        except ValueError:
            expected = -1
        if stream.length_exempt or status == b"304":
            expected = None
        if expected == -1 or (end_stream and expected):
            self._stream_error(sid, _E.PROTOCOL_ERROR)
            return
        stream.expected_length = expected
        stream.remote_final_received = True
        if end_stream:
            self._end_remote(stream)
        self._handler.on_response(sid, headers, end_stream)

    def _trailers(self, stream: Stream, headers: WireHeaders, end_stream: bool) -> None:
        """Headers after the request or final response: trailers, which must end the stream."""
        expected = stream.expected_length
        if (
            not end_stream
            or malformed(headers, "trailers", inbound=True)
            or (expected is not None and stream.received_length != expected)
        ):
            self._stream_error(stream.id, _E.PROTOCOL_ERROR)
            return
        self._end_remote(stream)
        self._handler.on_trailers(stream.id, headers)

    def _end_remote(self, stream: Stream) -> None:
        state = TRANSITIONS[stream.state, RECV_END_STREAM]
        stream.state = state
        if state == CLOSED:
            self._forget(stream, ENDED)
