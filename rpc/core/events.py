"""What the engine reports, turned into stream state. Synchronous, no I/O.

:class:`EngineEvents` is the :class:`rpc.http2.EventHandler` of a connection:
the engine calls it while it parses received bytes, and it only updates
streams and wakes waiters. Sending that follows (pumping data a window
update unblocked) happens once, after the whole batch of received frames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..http2 import Buffer, ErrorCodes, SettingCodes, WireHeaders, code_name
from .admission import Admission
from .bdp import BdpProbe
from .errors import ConnectionClosedError, StreamResetError
from .headers import decode_headers
from .lifecycle import StreamLifecycle
from .liveness import Liveness
from .sender import Sender
from .stream import Stream, StreamContext
from .streams import StreamTable

log = logging.getLogger(__name__)


class EngineEvents:
    """The connection's side of the engine interface."""

    __slots__ = ("_admission", "_context", "_lifecycle", "_liveness", "_on_goaway",
                 "_on_new_stream", "_sender", "_table", "bdp", "peer_settings_seen")

    def __init__(
        self,
        table: StreamTable,
        admission: Admission,
        *,
        on_new_stream: Callable[[], None],
        on_goaway: Callable[[ConnectionClosedError], None],
    ) -> None:
        self._table = table
        self._admission = admission
        self._on_new_stream = on_new_stream
        self._on_goaway = on_goaway
        self.peer_settings_seen = False
        self.bdp: BdpProbe | None = None
        """Told of received DATA, when window growth is on."""
        self._sender: Sender
        self._lifecycle: StreamLifecycle
        self._context: StreamContext
        self._liveness: Liveness

    def attach(
        self,
        sender: Sender,
        lifecycle: StreamLifecycle,
        context: StreamContext,
        liveness: Liveness,
    ) -> None:
        """The parts that need the engine, which needs this handler first."""
        self._sender = sender
        self._lifecycle = lifecycle
        self._context = context
        self._liveness = liveness
        self.bdp = liveness.bdp

    # --- headers -----------------------------------------------------------

    def on_request(self, stream_id: int, headers: WireHeaders, end_stream: bool) -> None:
        stream = Stream(stream_id, self._context, is_response=False)
        stream.headers = decode_headers(headers)
        self._table.add(stream)
        self._on_new_stream()
        self._admission.push_request(stream)
        if end_stream:
            self._lifecycle.remote_end(stream)

    def on_response(self, stream_id: int, headers: WireHeaders, end_stream: bool) -> None:
        stream = self._table.get(stream_id)
        if stream is None:
            return
        stream.headers = decode_headers(headers)
        stream.wake()
        if end_stream:
            self._lifecycle.remote_end(stream)

    def on_informational(self, stream_id: int, headers: WireHeaders) -> None:
        log.debug("1xx response on stream %d ignored", stream_id)

    def on_trailers(self, stream_id: int, headers: WireHeaders) -> None:
        stream = self._table.get(stream_id)
        if stream is None:
            return
        stream.trailers = decode_headers(headers)
        self._lifecycle.remote_end(stream)

    # --- data and resets -------------------------------------------------

    def on_data(self, stream_id: int, data: Buffer, end_stream: bool) -> None:
        stream = self._table.get(stream_id)
        if stream is None:
            # Nobody will read it: give the window back at once.
            if data:
                self._lifecycle.credit_orphan(stream_id, len(data))
            return
        size = len(data)
        if size:
            stream.chunks.append(data)
            stream.buffered += size
            self._lifecycle.received(stream, size)
            bdp = self.bdp
            if bdp is not None:
                bdp.data_received()
        if end_stream:
            self._lifecycle.remote_end(stream)
        elif size:
            stream.wake()

    def on_stream_reset(self, stream_id: int, error_code: int, remote: bool) -> None:
        stream = self._table.get(stream_id)
        if stream is None:
            return
        error = StreamResetError(stream_id, error_code, remote=remote)
        if remote and error_code == ErrorCodes.NO_ERROR and stream.ended_remote:
            # RFC 9113 8.1: a complete response followed by RST_STREAM(NO_ERROR)
            # asks us to stop sending; the response must not be discarded.
            stream.send_error = error
            stream.fail_outbound(error)
            self._lifecycle.closed(stream)
        else:
            self._lifecycle.fail(stream, error)

    # --- connection ------------------------------------------------------

    def on_window_opened(self, stream_id: int) -> None:
        self._sender.unblock(stream_id)

    def on_remote_settings(self, changed: Mapping[int, int]) -> None:
        first = not self.peer_settings_seen
        self.peer_settings_seen = True
        if SettingCodes.INITIAL_WINDOW_SIZE in changed:
            self._sender.unblock(0)
        if first or SettingCodes.MAX_CONCURRENT_STREAMS in changed:
            self._admission.wake_slot_waiters()

    def on_ping(self, payload: bytes) -> None:
        self._liveness.peer_pinged()

    def on_ping_ack(self, payload: bytes) -> None:
        self._liveness.ping_acked(payload)

    def on_priority(self, stream_id: int, weight: int) -> None:
        if stream_id in self._table.open:
            self._sender.scheduler.set_weight(stream_id, weight)

    def on_goaway(self, error_code: int, last_stream_id: int, debug_data: bytes) -> None:
        error = ConnectionClosedError(
            f"peer sent GOAWAY ({code_name(error_code)}, last stream {last_stream_id})"
            + (f": {debug_data!r}" if debug_data else ""),
            error_code=error_code,
            last_stream_id=last_stream_id,
            remote=True,
            debug_data=debug_data,
        )
        graceful = error_code == ErrorCodes.NO_ERROR
        lifecycle = self._lifecycle
        for stream in self._table:
            if self._table.is_local(stream.id) and stream.id > last_stream_id:
                lifecycle.fail(stream, error.for_stream(unprocessed=True))
            elif not graceful:
                lifecycle.fail(stream, error.for_stream(unprocessed=False))
        self._on_goaway(error)
