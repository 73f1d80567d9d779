"""The narrow interface between a sans-I/O HTTP/2 engine and its owner.

An engine does no I/O and knows no event loop: the owner (``rpc.core``'s
connection) feeds it the bytes it read with :meth:`Engine.receive`, the engine
calls the owner's :class:`EventHandler` methods synchronously for what those
bytes mean, and everything the engine wants to write accumulates until the
owner takes it with :meth:`Engine.data_to_send` and hands it to
``transport.writelines``. Calls the owner makes (send headers, data, a reset)
also only queue output.

Two engines implement it: :mod:`rpc.http2.engine` (ours, the fast one) and
:mod:`rpc.http2.h2engine`, an adapter over hyper-h2 kept as the reference and
the oracle of differential tests. The owner cannot tell them apart except
where the docstrings below say an engine may differ.

Conventions shared by both:

* Header blocks are lists of ``(bytes, bytes)`` with lower-case names, checked
  with :func:`rpc.http2.headers.malformed` both ways: inbound, a malformed block
  is a stream error (RST_STREAM(PROTOCOL_ERROR)); outbound the owner validates
  before calling, since a block half-encoded would corrupt the HPACK context.
* Stream ids are plain ints; the owner keeps its own per-stream objects.
* The handler is told about a stream only after it learned of it: by
  ``on_request`` (a peer's stream) or by opening it with ``send_headers``.
  Streams the engine refuses or resets before that (over the concurrency
  limit, malformed request headers, after our GOAWAY) never reach it.
* Flow control: received DATA is credited back only when the owner calls
  :meth:`Engine.acknowledge_received` (as the application reads), except for
  padding and data of streams that are already closed, which the engine
  credits itself. The owner may return the two windows' credit at different
  times (:meth:`Engine.acknowledge_connection` on receipt,
  :meth:`Engine.acknowledge_stream` on reading), as long as each byte is
  credited once to each window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .headers import WireHeaders

Buffer = bytes | bytearray | memoryview
"""Outbound payloads, and inbound DATA (a read-only view for large frames)."""


class EventHandler(Protocol):
    """What an engine tells its owner; every method is called from inside
    :meth:`Engine.receive`, in the order the frames arrived."""

    def on_request(self, stream_id: int, headers: WireHeaders, end_stream: bool) -> None:
        """Server side: the peer opened a stream with these (well-formed) headers."""

    def on_response(self, stream_id: int, headers: WireHeaders, end_stream: bool) -> None:
        """Client side: the final (non-1xx) response headers of one of our streams."""

    def on_informational(self, stream_id: int, headers: WireHeaders) -> None:
        """Client side: a 1xx response; the final one is still to come."""

    def on_trailers(self, stream_id: int, headers: WireHeaders) -> None:
        """Trailers: they end the peer's side of the stream."""

    def on_data(self, stream_id: int, data: Buffer, end_stream: bool) -> None:
        """Body bytes (without padding); ``data`` may be empty when it only ends
        the stream. A memoryview stays valid: the engine never reuses it."""

    def on_stream_reset(self, stream_id: int, error_code: int, remote: bool) -> None:
        """The stream is gone: reset by the peer (``remote``), or by the engine
        for a stream error of the peer's (RST_STREAM already queued). The
        engine resets with ENHANCE_YOUR_CALM only for a header list over our
        max_header_list_size (RFC 9113 10.5.1)."""

    def on_window_opened(self, stream_id: int) -> None:
        """More may be sent: on this stream, or (``0``) on any stream, after a
        connection WINDOW_UPDATE or a change of SETTINGS_INITIAL_WINDOW_SIZE."""

    def on_remote_settings(self, changed: Mapping[int, int]) -> None:
        """The peer's SETTINGS are in force (and acknowledged). Called for its
        first SETTINGS frame even when that changes nothing."""

    def on_ping(self, payload: bytes) -> None:
        """The peer pinged; the ACK is already queued."""

    def on_ping_ack(self, payload: bytes) -> None:
        """Our PING with this payload was acknowledged."""

    def on_priority(self, stream_id: int, weight: int) -> None:
        """The peer gave an open stream a weight (1-256), by PRIORITY or HEADERS."""

    def on_goaway(self, error_code: int, last_stream_id: int, debug_data: bytes) -> None:
        """The peer is going away. Our streams above ``last_stream_id`` were not
        processed (the engine has forgotten them; the owner fails them); the
        others may finish. New streams can no longer be opened."""


class Engine(Protocol):
    """One HTTP/2 connection's protocol state: frames, streams, windows, HPACK.

    Constructed as ``Engine(client_side=..., settings=..., handler=...)``
    (see :func:`rpc.http2.new_engine`); nothing is queued until
    :meth:`initiate`.
    """

    client_side: bool

    def initiate(self) -> None:
        """Queue our side of the connection preface: the client magic (client
        side), our SETTINGS, and a WINDOW_UPDATE opening the connection window
        to ``settings.connection_window_size``."""

    def receive(self, data: Buffer) -> bool:
        """Process bytes read from the peer, calling the handler.

        Returns True when it stopped early, with input left over, because
        ``limits.max_frames_per_receive`` frames were handled: the owner lets
        other connections run, then calls ``receive(b"")`` to go on.
        Raises :class:`rpc.http2.errors.ProtocolError` on a connection error,
        after queueing the GOAWAY; the engine then ignores all input.
        """

    def data_to_send(self) -> list[Buffer]:
        """Take everything queued for the wire, as buffers for ``writelines``."""

    @property
    def pending_output(self) -> int:
        """Bytes queued for the wire and not yet taken."""

    @property
    def handshake_complete(self) -> bool:
        """The peer's preface (client magic, server side) and first SETTINGS arrived."""

    @property
    def remote_settings(self) -> Mapping[int, int]:
        """The peer's settings in force, defaults included (SETTINGS code -> value)."""

    @property
    def local_settings(self) -> Mapping[int, int]:
        """Our settings as advertised (SETTINGS code -> value)."""

    @property
    def max_outbound_frame_size(self) -> int:
        """The largest DATA payload the peer accepts in one frame."""

    @property
    def connection_send_window(self) -> int:
        """Bytes of DATA the connection window lets us send now (may be <= 0)."""

    def send_window(self, stream_id: int) -> int:
        """Bytes of DATA we may send on this stream now: the smaller of its
        window and the connection's. May be <= 0 (SETTINGS lowered the initial
        window); 0 for a stream that is closed or unknown."""

    def next_stream_id(self) -> int:
        """Client side: the id the next new stream must use."""

    def send_headers(self, stream_id: int, headers: WireHeaders, end_stream: bool = False) -> None:
        """Queue a header block: opens the stream (client, ``next_stream_id()``),
        answers a request, or sends trailers (``end_stream`` must then be True).
        Raises :class:`StreamStateError` when the stream cannot send headers."""

    def send_data(
        self, stream_id: int, data: Buffer | list[Buffer], end_stream: bool = False
    ) -> None:
        """Queue DATA, split into frames of at most ``max_outbound_frame_size``.

        ``data`` is one buffer or a list of buffers sent as if concatenated
        (a message's prefix and body, without joining them). Its length must
        not exceed ``send_window(stream_id)`` (the owner schedules; the engine
        only frames). Empty data with ``end_stream``
        sends an empty END_STREAM frame. The payload is not copied: the
        caller must not modify it until it has been written.
        Raises :class:`StreamStateError` when the stream cannot send data.
        """

    def send_reset(self, stream_id: int, error_code: int) -> None:
        """Queue RST_STREAM and forget the stream. Nothing happens for a stream
        that is already closed or was never opened."""

    def acknowledge_received(self, stream_id: int, nbytes: int) -> None:
        """The application consumed ``nbytes`` of this stream's DATA: return the
        credit (WINDOW_UPDATEs are coalesced). The stream may be closed."""

    def acknowledge_connection(self, nbytes: int) -> None:
        """Return ``nbytes`` of connection-window credit only (coalesced): the
        stream's share comes later, by :meth:`acknowledge_stream`."""

    def acknowledge_stream(self, stream_id: int, nbytes: int) -> None:
        """Return ``nbytes`` of this stream's window credit only (coalesced),
        for data whose connection credit went back earlier. Nothing happens
        for a stream the peer no longer sends on."""

    def send_ping(self, payload: bytes) -> None:
        """Queue a PING with an 8-byte payload."""

    def grow_receive_windows(self, stream_window: int, connection_window: int) -> None:
        """Let the peer send more: raise our inbound windows to these sizes.

        ``stream_window`` above the SETTINGS_INITIAL_WINDOW_SIZE last
        advertised queues a SETTINGS frame with the new value, which moves
        every open stream's window by the difference (RFC 9113 6.9.2) and
        applies to new streams; ``connection_window`` above the connection
        window's size queues a WINDOW_UPDATE for the difference. A value that
        is not larger changes nothing: windows never shrink here. The larger
        windows are accepted at once, before the peer acknowledges them
        (being more permissive than the peer knows is always safe). Raises
        ValueError for a size above 2**31 - 1.
        """

    def send_goaway(
        self, error_code: int, last_stream_id: int | None = None, debug_data: bytes = b""
    ) -> None:
        """Queue GOAWAY. ``last_stream_id`` None means the highest stream the
        peer opened so far. Streams the peer opens above it are refused with
        RST_STREAM(REFUSED_STREAM), unseen by the handler; streams at or below
        it go on. May be sent more than once (a graceful close first announces
        ``2**31 - 1``), with a last stream id that never grows."""

    def send_priority(
        self, stream_id: int, weight: int, depends_on: int = 0, exclusive: bool = False
    ) -> None:
        """Queue a PRIORITY frame (RFC 9113 deprecates it; peers may ignore it)."""
