"""The reference engine: :class:`H2Engine`, hyper-h2 behind :class:`rpc.http2.interface.Engine`.

It exists to keep h2 selectable (``H2RPC_ENGINE=h2``) and to serve as the oracle
of differential tests against :mod:`rpc.http2.engine`. This is the only module
that imports ``h2``. It uses h2's public API only, plus three public extension
points: a subclass of :class:`h2.settings.Settings` as ``local_settings``, a
subclass of :class:`h2.connection.H2ConnectionStateMachine` as ``state_machine``,
and an override of :meth:`h2.connection.H2Connection.clear_outbound_data_buffer`
(see the classes below for why each is needed).

Input is fed to h2 one frame at a time (:class:`_FrameSplitter`), so the events
of a frame reach the handler before the next frame is processed, as with the
native engine: a decision taken in a handler call (refusing a stream, counting
open streams) sees the connection as it was when that frame arrived.

Where this engine differs from the interface's docstrings (documented, not bugs):

* ``receive`` always returns False: h2 has no per-call budget, so
  ``limits.max_frames_per_receive`` is not applied.
* Defences of :class:`rpc.http2.settings.Limits` that h2 lacks are not
  emulated: the rapid-reset bucket (``stream_resets``), the ``control_frames``
  and ``settings_frames`` buckets, ``max_continuation_frames`` and
  ``max_header_block_size`` (h2 has a fixed cap of 64 CONTINUATION frames and
  enforces ``max_header_list_size`` while decoding with hpack),
  ``max_closed_streams_remembered`` (h2 remembers 65536); ``clock`` is
  accepted and unused. (``handshake_timeout`` and ``max_write_backlog`` are
  enforced by the core, on both engines.)
* A DATA length that contradicts ``content-length`` is a connection error in h2
  (GOAWAY(PROTOCOL_ERROR)), not a stream error.
* A header list larger than ``max_header_list_size`` is a connection error in
  h2 (GOAWAY(ENHANCE_YOUR_CALM)): h2 decodes through hpack's interface, which
  stops mid-block, so the HPACK table cannot be kept in step. The native
  engine decodes the block whole and answers 431 or resets only the stream
  (RFC 9113 10.5.1; see :mod:`rpc.http2.receive_streams`).
* Frame size errors are detected once the whole oversized frame has arrived.
* Streams of ours above the last stream id of a received GOAWAY are forgotten
  by this adapter, but h2 keeps them open internally; nothing is sent for them.
* ``send_data`` copies the payload (h2 serialises frames at once), and empty
  data without ``end_stream`` queues nothing.
* ``send_priority`` on the server side raises :class:`StreamStateError`: h2
  refuses to let servers prioritise.
* ``data_to_send`` may return several buffers (h2's output is collected after
  every operation, which is how ``pending_output`` is known without h2's
  private buffer).
* Until the peer acknowledges our SETTINGS, the peer's HPACK encoder may use a
  dynamic table of up to the RFC default 4096 bytes even when we advertise less
  (h2 applies local settings given as initial values at once, but never pushes
  them into the decoder, so we set the decoder ourselves and never below the
  default the peer may still assume).
* ``grow_receive_windows``: h2 enforces a new SETTINGS_INITIAL_WINDOW_SIZE
  only from the peer's ACK, so DATA the peer sends with the larger window
  before its ACK would be a flow-control error (peers send the ACK first).
  Growing the connection window while read data is still owed to the peer
  leaves that much out of the size h2 keeps returning credit up to (h2
  raises its target only to the window it just opened, and offers no way
  to set it), so the connection window may stay up to that much smaller
  than asked, never larger.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import h2.events as ev
import h2.exceptions
from h2.config import H2Configuration
from h2.connection import ConnectionInputs, H2Connection, H2ConnectionStateMachine
from h2.settings import SettingCodes as H2SettingCodes
from h2.settings import Settings
from h2.stream import StreamState
from hyperframe.frame import WindowUpdateFrame

from .errors import ErrorCodes, ProtocolError, StreamStateError
from .headers import WireHeaders, malformed
from .hpack_cache import CachingDecoder, CachingEncoder
from .interface import Buffer, EventHandler
from .settings import (
    DEFAULT_HEADER_TABLE_SIZE,
    DEFAULT_WINDOW_SIZE,
    MAX_WINDOW_SIZE,
    ConnectionSettings,
    SettingCodes,
)

CLIENT_PREFACE_LENGTH = 24
"""``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n``, which h2 checks itself."""

FRAME_HEADER_LENGTH = 9

_SENDING_STATES = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE})
"""Stream states in which our side may still send HEADERS or DATA."""


class _FrameSplitter:
    """Cuts the inbound byte stream at frame boundaries.

    h2 processes everything it is given before returning its events; feeding
    it one frame at a time keeps the handler's view in step with the frames.
    Only the frame headers are parsed here (for their length); h2 checks all
    the rest, including the client preface, which is passed on as a unit.
    """

    def __init__(self, *, expects_preface: bool) -> None:
        self._unit_left = CLIENT_PREFACE_LENGTH if expects_preface else 0
        """Bytes still to come of the preface or of the current frame's payload."""
        self._header = bytearray()
        """The part of the next frame header seen so far."""

    def split(self, data: Buffer) -> Iterator[memoryview]:
        """Consecutive pieces of ``data``, each ending at a frame boundary
        except perhaps the last (h2 buffers an incomplete frame)."""
        view = memoryview(data)
        size = len(view)
        start = position = 0
        while position < size:
            if self._unit_left:
                taken = min(self._unit_left, size - position)
                position += taken
                self._unit_left -= taken
                if not self._unit_left:
                    yield view[start:position]
                    start = position
                continue
            needed = FRAME_HEADER_LENGTH - len(self._header)
            self._header += view[position : position + needed]
            position = min(size, position + needed)
            if len(self._header) == FRAME_HEADER_LENGTH:
                self._unit_left = int.from_bytes(self._header[:3], "big")
                self._header.clear()
                if not self._unit_left:
                    yield view[start:position]
                    start = position
        if start < size:
            yield view[start:]


class _AdvertisedOnlyConcurrencySettings(Settings):
    """Local settings whose MAX_CONCURRENT_STREAMS is advertised but not enforced by h2.

    h2 enforces its local limit (even before the peer acknowledged it) with
    ``TooManyStreamsError``, a connection error: one early stream too many
    would kill every other stream. The value stays in the mapping, so it is
    sent; the property h2 checks on inbound HEADERS reports no limit, and
    :class:`H2Engine` refuses excess streams with RST_STREAM(REFUSED_STREAM).
    """

    @property
    def max_concurrent_streams(self) -> int:
        return 2**32 + 1

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value: int) -> None:
        self[H2SettingCodes.MAX_CONCURRENT_STREAMS] = value


class _DrainingStateMachine(H2ConnectionStateMachine):
    """h2's connection state machine, letting streams finish after a GOAWAY.

    h2 moves to CLOSED on sending or receiving GOAWAY and then rejects every
    frame, so streams at or below the GOAWAY's last stream id could not
    finish, which RFC 9113 section 6.8 allows and graceful shutdown needs.
    Once a GOAWAY went either way every input is accepted here: h2's stream
    state machines still check each frame against its stream, and
    :class:`H2Engine` refuses new streams itself.
    """

    def __init__(self) -> None:
        super().__init__()
        self.going_away = False

    def process_input(self, input_: ConnectionInputs) -> list[ev.Event]:
        if self.going_away:
            return []
        events = super().process_input(input_)
        if input_ in (ConnectionInputs.SEND_GOAWAY, ConnectionInputs.RECV_GOAWAY):
            self.going_away = True
        return events


class _DrainingH2Connection(H2Connection):
    """h2's connection, keeping its queued output when a GOAWAY arrives.

    On receiving GOAWAY h2 empties its outbound buffer, dropping frames it has
    already accounted for (stream states, windows, HPACK): since streams go on
    after a GOAWAY, nothing queued may be lost.
    """

    def clear_outbound_data_buffer(self) -> None:
        return None


def _new_h2_connection(*, client_side: bool, settings: ConnectionSettings) -> H2Connection:
    """An h2 connection configured from ``settings``, validation off both ways.

    Header validation is :func:`rpc.http2.headers.malformed`'s job (inbound a
    malformed block is a stream error, not h2's connection error; outbound the
    owner validates). Values given as initial settings are in force at once in
    h2; that is safe because each only makes us more permissive than the RFC
    defaults the peer assumes until it has seen our SETTINGS.
    """
    config = H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    conn = _DrainingH2Connection(config=config)
    conn.state_machine = _DrainingStateMachine()
    advertised = settings.advertised(client_side=client_side)
    conn.local_settings = _AdvertisedOnlyConcurrencySettings(
        client=client_side,
        initial_values={H2SettingCodes(code): value for code, value in advertised.items()},
    )
    conn.encoder = CachingEncoder()
    conn.decoder = CachingDecoder(settings.max_header_list_size)
    conn.decoder.max_allowed_table_size = max(DEFAULT_HEADER_TABLE_SIZE, settings.header_table_size)
    conn.max_inbound_frame_size = settings.max_frame_size
    return conn


class H2Engine:
    """:class:`rpc.http2.interface.Engine` over hyper-h2 (see the module docstring)."""

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
        self._h2 = _new_h2_connection(client_side=client_side, settings=settings)
        self._splitter = _FrameSplitter(expects_preface=not client_side)
        self._preface_accepted = client_side
        """The server has seen a valid client preface (a client expects none)."""
        self._output: list[bytes] = []
        self._pending = 0
        self._known: set[int] = set()
        """Streams the handler knows and h2 has not closed: the only ones it hears about."""
        self._handshake_complete = False
        self._failed = False
        self._goaway_received = False
        self._goaway_sent_last_id: int | None = None
        self._advertised_stream_window = settings.stream_window_size
        self._connection_window = settings.connection_window_size
        """The connection window's size as we asked for it (h2 may count less, see above)."""

    # ------------------------------------------------------------------
    # Connection
    # ------------------------------------------------------------------

    def initiate(self) -> None:
        self._h2.initiate_connection()
        extra_window = self._settings.connection_window_size - DEFAULT_WINDOW_SIZE
        if extra_window > 0:
            self._h2.increment_flow_control_window(extra_window)
        self._collect_output()

    def receive(self, data: Buffer) -> bool:
        """See the interface; never stops early (h2 has no per-call budget)."""
        if self._failed:
            return False
        for piece in self._splitter.split(data):
            try:
                events = self._h2.receive_data(piece)
            except h2.exceptions.ProtocolError as exc:
                self._failed = True
                if not self._preface_accepted:
                    # h2 checks the client preface before it can queue a GOAWAY.
                    self._h2.close_connection(error_code=ErrorCodes.PROTOCOL_ERROR)
                self._collect_output()
                raise ProtocolError(int(exc.error_code), str(exc)) from exc
            self._preface_accepted = True
            self._collect_output()
            self._dispatch(events)
        return False

    def data_to_send(self) -> list[Buffer]:
        self._collect_output()
        output: list[Buffer] = list(self._output)
        self._output.clear()
        self._pending = 0
        return output

    @property
    def pending_output(self) -> int:
        self._collect_output()
        return self._pending

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_complete

    @property
    def remote_settings(self) -> Mapping[int, int]:
        return {int(code): value for code, value in self._h2.remote_settings.items()}

    @property
    def local_settings(self) -> Mapping[int, int]:
        return {int(code): value for code, value in self._h2.local_settings.items()}

    @property
    def max_outbound_frame_size(self) -> int:
        return self._h2.max_outbound_frame_size

    @property
    def connection_send_window(self) -> int:
        return self._h2.outbound_flow_control_window

    def send_window(self, stream_id: int) -> int:
        if self._sending_stream(stream_id) is None:
            return 0
        return self._h2.local_flow_control_window(stream_id)

    def next_stream_id(self) -> int:
        try:
            return self._h2.get_next_available_stream_id()
        except h2.exceptions.NoAvailableStreamIDError as exc:
            raise StreamStateError("stream ids are exhausted on this connection") from exc

    def send_ping(self, payload: bytes) -> None:
        self._h2.ping(payload)
        self._collect_output()

    def grow_receive_windows(self, stream_window: int, connection_window: int) -> None:
        """See the interface and the module docstring (h2 applies the stream
        window on the peer's ACK, and may keep the connection window smaller)."""
        if max(stream_window, connection_window) > MAX_WINDOW_SIZE:
            raise ValueError(f"a window cannot exceed {MAX_WINDOW_SIZE} bytes")
        if stream_window > self._advertised_stream_window:
            self._advertised_stream_window = stream_window
            self._h2.update_settings({H2SettingCodes.INITIAL_WINDOW_SIZE: stream_window})
        increment = connection_window - self._connection_window
        if increment > 0:
            self._connection_window = connection_window
            self._h2.increment_flow_control_window(increment)
        self._collect_output()

    def send_goaway(
        self, error_code: int, last_stream_id: int | None = None, debug_data: bytes = b""
    ) -> None:
        if last_stream_id is None:
            last_stream_id = self._h2.highest_inbound_stream_id
        if self._goaway_sent_last_id is not None:
            last_stream_id = min(last_stream_id, self._goaway_sent_last_id)
        self._goaway_sent_last_id = last_stream_id
        self._h2.close_connection(
            error_code=error_code,
            additional_data=debug_data or None,
            last_stream_id=last_stream_id,
        )
        self._collect_output()

    # ------------------------------------------------------------------
    # Streams
    # ------------------------------------------------------------------

    def send_headers(self, stream_id: int, headers: WireHeaders, end_stream: bool = False) -> None:
        opening = self.client_side and stream_id > self._h2.highest_outbound_stream_id
        if opening:
            self._check_can_open(stream_id)
        else:
            stream = self._sending_stream(stream_id)
            if stream is None:
                raise StreamStateError(f"stream {stream_id} cannot send headers")
            if stream.state_machine.headers_sent and not end_stream:
                raise StreamStateError(f"trailers on stream {stream_id} must end the stream")
        with _stream_state_errors(stream_id):
            self._h2.send_headers(stream_id, headers, end_stream=end_stream)
        if opening:
            self._known.add(stream_id)
        self._collect_output()
        if end_stream:
            self._forget_if_closed(stream_id)

    def send_data(
        self, stream_id: int, data: Buffer | list[Buffer], end_stream: bool = False
    ) -> None:
        if self._sending_stream(stream_id) is None:
            raise StreamStateError(f"stream {stream_id} cannot send data")
        # A list is joined: the reference engine, not the fast path.
        payload = b"".join(data) if isinstance(data, list) else data
        size = len(payload)
        if size > self.send_window(stream_id):
            raise StreamStateError(
                f"{size} bytes exceed the send window of stream {stream_id}"
                f" ({self.send_window(stream_id)})"
            )
        view = memoryview(payload)
        frame_size = self._h2.max_outbound_frame_size
        with _stream_state_errors(stream_id):
            for offset in range(0, size, frame_size):
                last = offset + frame_size >= size
                self._h2.send_data(
                    stream_id, view[offset : offset + frame_size], end_stream=end_stream and last
                )
            if not size and end_stream:
                self._h2.send_data(stream_id, b"", end_stream=True)
        self._collect_output()
        if end_stream:
            self._forget_if_closed(stream_id)

    def send_reset(self, stream_id: int, error_code: int) -> None:
        if stream_id not in self._known:
            return
        self._known.discard(stream_id)
        self._reset_quietly(stream_id, error_code)

    def acknowledge_received(self, stream_id: int, nbytes: int) -> None:
        """See the interface. For a stream it has closed h2 credits only the
        connection itself; an id it never saw would make it raise half-way
        (after counting the bytes), so those are credited here, uncoalesced."""
        if nbytes <= 0:
            return
        if self._h2_has_seen(stream_id):
            self._h2.acknowledge_received_data(nbytes, stream_id)
        else:
            self._h2.increment_flow_control_window(nbytes)
        self._collect_output()

    def acknowledge_connection(self, nbytes: int) -> None:
        """See the interface. h2 has no public call for one window alone, so
        this does what ``acknowledge_received_data`` does for the connection."""
        if nbytes <= 0:
            return
        increment = self._h2._inbound_flow_control_window_manager.process_bytes(nbytes)
        if increment:
            update = WindowUpdateFrame(0)
            update.window_increment = increment
            self._h2._prepare_for_sending([update])
            self._collect_output()

    def acknowledge_stream(self, stream_id: int, nbytes: int) -> None:
        """See the interface; the stream's half of ``acknowledge_received_data``."""
        if nbytes <= 0:
            return
        stream = self._h2.streams.get(stream_id)
        if stream is not None and stream.open and stream_id in self._known:
            self._h2._prepare_for_sending(stream.acknowledge_received_data(nbytes))
            self._collect_output()

    def send_priority(
        self, stream_id: int, weight: int, depends_on: int = 0, exclusive: bool = False
    ) -> None:
        try:
            self._h2.prioritize(stream_id, weight, depends_on, exclusive)
        except (h2.exceptions.H2Error, ValueError) as exc:
            raise StreamStateError(f"cannot prioritise stream {stream_id}: {exc}") from exc
        self._collect_output()

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def _collect_output(self) -> None:
        """Move what h2 queued into our buffers (so ``pending_output`` is known)."""
        data = self._h2.data_to_send()
        if data:
            self._output.append(data)
            self._pending += len(data)

    def _check_can_open(self, stream_id: int) -> None:
        if self._goaway_received or self._goaway_sent_last_id is not None:
            raise StreamStateError("no new streams after a GOAWAY")
        expected = self.next_stream_id()
        if stream_id != expected:
            raise StreamStateError(f"the next new stream must be {expected}, not {stream_id}")

    def _sending_stream(self, stream_id: int) -> h2.stream.H2Stream | None:
        """The h2 stream, if the handler knows it and our side may still send on it."""
        if stream_id not in self._known:
            return None
        stream = self._h2.streams.get(stream_id)
        if stream is None or stream.state_machine.state not in _SENDING_STATES:
            return None
        return stream

    def _forget_if_closed(self, stream_id: int) -> None:
        stream = self._h2.streams.get(stream_id)
        if stream is None or stream.closed:
            self._known.discard(stream_id)

    def _reset_quietly(self, stream_id: int, error_code: int) -> None:
        """RST_STREAM unless h2 already considers the stream closed."""
        stream = self._h2.streams.get(stream_id)
        if stream is None or stream.closed:
            return
        self._h2.reset_stream(stream_id, error_code)
        self._collect_output()

    def _reset_for_peer_error(self, stream_id: int, error_code: int) -> None:
        """A stream error of the peer's: reset, and tell the handler if it knew the stream."""
        self._reset_quietly(stream_id, error_code)
        if stream_id in self._known:
            self._known.discard(stream_id)
            self._handler.on_stream_reset(stream_id, error_code, False)

    def _h2_has_seen(self, stream_id: int) -> bool:
        if self._is_ours(stream_id):
            return 0 < stream_id <= self._h2.highest_outbound_stream_id
        return 0 < stream_id <= self._h2.highest_inbound_stream_id

    def _is_ours(self, stream_id: int) -> bool:
        return (stream_id % 2 == 1) == self.client_side

    def _refuses_new_stream(self, stream_id: int) -> bool:
        if self._goaway_sent_last_id is not None and stream_id > self._goaway_sent_last_id:
            return True
        limit = self._settings.max_concurrent_streams
        # h2 counts the new stream among the open ones already.
        return limit is not None and self._h2.open_inbound_streams - 1 >= limit

    # ------------------------------------------------------------------
    # h2 events -> handler calls
    # ------------------------------------------------------------------

    def _dispatch(self, events: list[ev.Event]) -> None:
        """Translate one frame's events. A StreamEnded that h2 also attached to
        the HEADERS or DATA event before it was already reported with that event."""
        folded: set[int] = set()
        for event in events:
            if isinstance(event, ev.StreamEnded):
                if id(event) not in folded:
                    self._on_bare_stream_end(event)
                continue
            ended = getattr(event, "stream_ended", None)
            if ended is not None:
                folded.add(id(ended))
            handle = _EVENT_HANDLERS.get(type(event))
            if handle is not None:
                handle(self, event)

    def _on_request(self, event: ev.RequestReceived) -> None:
        stream_id = event.stream_id
        if self._refuses_new_stream(stream_id):
            self._reset_quietly(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        headers = _wire(event.headers)
        if malformed(headers, "request", inbound=True) is not None:
            self._reset_quietly(stream_id, ErrorCodes.PROTOCOL_ERROR)
            return
        self._known.add(stream_id)
        self._handler.on_request(stream_id, headers, event.stream_ended is not None)

    def _well_formed_block(self, stream_id: int, raw: Any, kind: str) -> WireHeaders | None:
        """A known stream's header block, or None (and the stream reset) if malformed."""
        if stream_id not in self._known:
            return None
        headers = _wire(raw)
        if malformed(headers, kind, inbound=True) is not None:
            self._reset_for_peer_error(stream_id, ErrorCodes.PROTOCOL_ERROR)
            return None
        return headers

    def _on_response(self, event: ev.ResponseReceived) -> None:
        stream_id = event.stream_id
        headers = self._well_formed_block(stream_id, event.headers, "response")
        if headers is None:
            return
        end_stream = event.stream_ended is not None
        self._handler.on_response(stream_id, headers, end_stream)
        if end_stream:
            self._forget_if_closed(stream_id)

    def _on_informational(self, event: ev.InformationalResponseReceived) -> None:
        headers = self._well_formed_block(event.stream_id, event.headers, "response")
        if headers is not None:
            self._handler.on_informational(event.stream_id, headers)

    def _on_trailers(self, event: ev.TrailersReceived) -> None:
        stream_id = event.stream_id
        headers = self._well_formed_block(stream_id, event.headers, "trailers")
        if headers is not None:
            self._handler.on_trailers(stream_id, headers)
            self._forget_if_closed(stream_id)

    def _on_data(self, event: ev.DataReceived) -> None:
        stream_id = event.stream_id
        data = event.data
        flow_controlled = event.flow_controlled_length
        if stream_id not in self._known:
            # Nobody will read it: give the window back at once.
            if flow_controlled:
                self._h2.acknowledge_received_data(flow_controlled, stream_id)
                self._collect_output()
            return
        padding = flow_controlled - len(data)
        if padding:
            self._h2.acknowledge_received_data(padding, stream_id)
            self._collect_output()
        end_stream = event.stream_ended is not None
        self._handler.on_data(stream_id, data, end_stream)
        if end_stream:
            self._forget_if_closed(stream_id)

    def _on_bare_stream_end(self, event: ev.StreamEnded) -> None:
        """END_STREAM that h2 did not attach to a HEADERS or DATA event (not
        seen in h2 4.x, handled so the end is never lost)."""
        stream_id = event.stream_id
        if stream_id in self._known:
            self._handler.on_data(stream_id, b"", True)
            self._forget_if_closed(stream_id)

    def _on_stream_reset(self, event: ev.StreamReset) -> None:
        stream_id = event.stream_id
        if stream_id in self._known:
            self._known.discard(stream_id)
            self._handler.on_stream_reset(stream_id, int(event.error_code), event.remote_reset)

    def _on_window_updated(self, event: ev.WindowUpdated) -> None:
        stream_id = event.stream_id or 0
        if stream_id == 0 or stream_id in self._known:
            self._handler.on_window_opened(stream_id)

    def _on_remote_settings(self, event: ev.RemoteSettingsChanged) -> None:
        self._handshake_complete = True
        changed = {
            int(code): change.new_value
            for code, change in event.changed_settings.items()
            if change.original_value != change.new_value
        }
        self._handler.on_remote_settings(changed)
        if SettingCodes.INITIAL_WINDOW_SIZE in changed:
            self._handler.on_window_opened(0)

    def _on_ping(self, event: ev.PingReceived) -> None:
        self._handler.on_ping(event.ping_data)

    def _on_ping_ack(self, event: ev.PingAckReceived) -> None:
        self._handler.on_ping_ack(event.ping_data)

    def _on_priority(self, event: ev.PriorityUpdated) -> None:
        stream_id = event.stream_id
        if stream_id in self._known and event.weight is not None:
            self._handler.on_priority(stream_id, event.weight)

    def _on_goaway(self, event: ev.ConnectionTerminated) -> None:
        self._goaway_received = True
        last_stream_id = event.last_stream_id or 0
        for stream_id in [s for s in self._known if self._is_ours(s) and s > last_stream_id]:
            self._known.discard(stream_id)
        code = ErrorCodes.NO_ERROR if event.error_code is None else int(event.error_code)
        self._handler.on_goaway(code, last_stream_id, event.additional_data or b"")


_EVENT_HANDLERS: dict[type[ev.Event], Callable[[H2Engine, ev.Event], None]] = {
    ev.RequestReceived: H2Engine._on_request,  # type: ignore[dict-item]
    ev.ResponseReceived: H2Engine._on_response,  # type: ignore[dict-item]
    ev.InformationalResponseReceived: H2Engine._on_informational,  # type: ignore[dict-item]
    ev.TrailersReceived: H2Engine._on_trailers,  # type: ignore[dict-item]
    ev.DataReceived: H2Engine._on_data,  # type: ignore[dict-item]
    ev.StreamReset: H2Engine._on_stream_reset,  # type: ignore[dict-item]
    ev.WindowUpdated: H2Engine._on_window_updated,  # type: ignore[dict-item]
    ev.RemoteSettingsChanged: H2Engine._on_remote_settings,  # type: ignore[dict-item]
    ev.PingReceived: H2Engine._on_ping,  # type: ignore[dict-item]
    ev.PingAckReceived: H2Engine._on_ping_ack,  # type: ignore[dict-item]
    ev.PriorityUpdated: H2Engine._on_priority,  # type: ignore[dict-item]
    ev.ConnectionTerminated: H2Engine._on_goaway,  # type: ignore[dict-item]
}
"""h2 events and their translation. Not listed, hence ignored: SettingsAcknowledged
(h2 applies our settings), UnknownFrameReceived (e.g. RFC 9218 PRIORITY_UPDATE),
AlternativeServiceAvailable, PushedStreamReceived (we advertise ENABLE_PUSH=0 and
h2 rejects pushes), and any event type a later h2 adds. StreamEnded is folded
into the event before it by :meth:`H2Engine._dispatch`."""


def _wire(headers: Iterable[tuple[Any, Any]] | None) -> WireHeaders:
    """h2's header tuples (bytes, since ``header_encoding`` is None) as plain pairs."""
    return [(bytes(name), bytes(value)) for name, value in headers or ()]


@contextlib.contextmanager
def _stream_state_errors(stream_id: int) -> Iterator[None]:
    """Turn h2's complaints about a stream's state into :class:`StreamStateError`."""
    try:
        yield
    except h2.exceptions.ProtocolError as exc:
        raise StreamStateError(f"stream {stream_id}: {exc}") from exc
