"""One HTTP/2 connection on asyncio: the core's multiplexer.

:class:`Connection` is an :class:`asyncio.Protocol` that feeds received bytes
to h2, turns h2's events into per-stream state (:mod:`rpc.core.stream`) and
offers the aioh2-style coroutine API on top: ``recv_request``,
``start_response``, ``send_data``, ``read_stream``, ``send_trailers``,
``start_request``, ``recv_response``, ``recv_trailers``, ``wait_functional``
and ``close_connection``.

How the pieces fit:

* **Outbound data** goes straight to h2 when nothing else is waiting and the
  windows allow it (the common case: no future, no task switch). Otherwise it
  is queued on its stream and the *pump* hands frames to h2, choosing streams
  by priority (:mod:`rpc.core.scheduler`), until windows or the transport say
  stop. ``send_data`` returns when its last byte is in h2's hands.
* **Writes are coalesced**: frames produced by API calls accumulate in h2's
  buffer and are written once per event-loop iteration (or as soon as 64 KiB
  are pending, so the transport's flow control still sees them promptly).
* **Inbound data** is buffered per stream and credited back to the peer only
  as the application reads it, so what one stream buffers is bounded by its
  window and what the connection buffers by the connection window.
* **Health** (:class:`rpc.core.health.HealthCheck`) is tickless: see there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar, cast

import h2.events as ev
import h2.exceptions
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from ..http2.headers import WireHeaders, malformed
from ..http2.settings import ConnectionSettings
from .errors import (
    ConnectionClosedError,
    H2Error,
    StreamClosedError,
    StreamResetError,
    code_name,
)
from .h2setup import new_h2_connection
from .headers import (
    Headers,
    HeadersArg,
    decode_headers,
    encode_headers,
    encode_request_headers,
    validate_outbound,
)
from .health import HealthCheck
from .keepalive import TOO_MANY_PINGS, ConnectionLifetime, Keepalive, PingPolicy, PingStrikes
from .scheduler import DEFAULT_WEIGHT, PriorityScheduler, check_weight
from .stream import OutboundItem, Stream

log = logging.getLogger(__name__)

BytesLike = bytes | bytearray | memoryview

FLUSH_THRESHOLD = 64 * 1024
"""Bytes of frames after which pending output is written at once, not at loop end."""

EAGER_FLUSH_STREAMS = 8
"""Streams ending (our side) after which pending output is written at once."""

MAX_RETAINED_STREAMS = 1000
"""Closed streams kept only because the application has not read all they got."""

STREAMS_BEFORE_PEER_SETTINGS = 100
"""Streams a client opens before the peer's SETTINGS tell the real limit (RFC 9113 5.1.2)."""

DEFAULT_CLOSE_TIMEOUT = 10.0

GOAWAY_ACK_WAIT = 5.0
"""Longest wait, in a graceful close, for the PING ack between the two GOAWAYs."""

MAX_STREAM_ID = 2**31 - 1


OnConnected = Callable[["Connection"], Awaitable[Any] | None]


class Connection(asyncio.Protocol):
    """An HTTP/2 connection, client or server side.

    Create one with :func:`rpc.core.open_connection` or receive one in the
    ``on_connected`` callback of :func:`rpc.core.start_server`.
    """

    _event_handlers: ClassVar[dict[type, Callable[[Connection, Any], None]]]

    def __init__(
        self,
        *,
        client_side: bool,
        settings: ConnectionSettings | None = None,
        functional_timeout: float | None = None,
        on_connected: OnConnected | None = None,
        authority: str | None = None,
        keepalive: Keepalive | None = None,
        ping_policy: PingPolicy | None = None,
        lifetime: ConnectionLifetime | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._client_side = client_side
        self._settings = settings or ConnectionSettings()
        self._h2 = new_h2_connection(client_side=client_side, settings=self._settings)
        self._on_connected = on_connected
        self._authority = authority.encode("ascii") if authority else None
        self._scheme = b"http"
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, Stream] = {}
        self._retained: OrderedDict[int, Stream] = OrderedDict()
        self._scheduler = PriorityScheduler()
        self._blocked: set[int] = set()
        self._paused = False
        self._pumping = False
        self._needs_pump = False
        self._in_data_received = False
        self._unflushed = 0
        self._ends_unflushed = 0
        self._flush_handle: asyncio.Handle | None = None
        self._closed_error: ConnectionClosedError | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._goaway_sent = False
        self._goaway_received: ConnectionClosedError | None = None
        self._drained: asyncio.Future[None] | None = None
        self._requests: deque[tuple[int, Headers]] = deque()
        self._request_waiters: list[asyncio.Future[None]] = []
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._peer_settings_seen = False
        self._open_local = 0
        self._open_remote = 0
        self._handler: asyncio.Future[Any] | None = None
        self._closing_task: asyncio.Task[Any] | None = None
        """The task awaiting close_connection(), which must not be cancelled by it."""
        self._keepalive = keepalive
        self._pings_without_data = 0
        self._ping_strikes = PingStrikes(ping_policy) if ping_policy is not None else None
        self._lifetime = lifetime
        self._idle_timer: asyncio.TimerHandle | None = None
        self._age_timer: asyncio.TimerHandle | None = None
        self._goaway_announced = False
        """The first GOAWAY of a graceful close (last stream id 2^31-1) is out."""
        self._background_close: asyncio.Task[None] | None = None
        # Keepalive, when given, sets the health check's pace; else aioh2's
        # functional_timeout is both the quiet interval and the ack timeout.
        self._health = HealthCheck(
            self._loop,
            keepalive.timeout if keepalive is not None else functional_timeout,
            interval=keepalive.time if keepalive is not None else None,
            may_ping=self._keepalive_may_ping if keepalive is not None else None,
            send_ping=self._send_ping,
            on_dead=self._on_peer_dead,
        )

    # ------------------------------------------------------------------
    # asyncio.Protocol
    # ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, but not necessarily an asyncio.Transport subclass:
        # uvloop's transports implement the same interface without inheriting.
        self._transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._scheme = b"https"
            protocol = ssl_object.selected_alpn_protocol()
            if protocol not in (None, "h2"):
                self._abort(ConnectionClosedError(f"peer negotiated {protocol!r}, not h2"))
                return
        if self._authority is None:
            self._authority = _format_authority(transport.get_extra_info("peername"))
        h2conn = self._h2
        h2conn.initiate_connection()
        extra_window = self._settings.connection_window_size - 65_535
        if extra_window > 0:
            h2conn.increment_flow_control_window(extra_window)
        self._flush_now()
        self._health.start()
        self._start_lifetime_timers()
        if self._on_connected is not None:
            self._start_handler(self._on_connected)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._closed_error is None:
            if self._goaway_received is not None:
                error = self._goaway_received
            else:
                error = ConnectionClosedError("connection lost")
            error = ConnectionClosedError(
                str(error) if exc is None else f"{error}: {exc}",
                error_code=error.error_code,
                last_stream_id=error.last_stream_id,
                remote=error.remote,
            )
            error.__cause__ = exc
            self._closed_error = error
        self._shut_down(self._closed_error)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._pump()

    def data_received(self, data: bytes) -> None:
        self._health.last_received = self._loop.time()
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has queued a GOAWAY with the right error code: send it, then close.
            log.debug("HTTP/2 protocol error from peer: %s", exc)
            self._flush_now()
            self._close_transport(ConnectionClosedError(f"HTTP/2 protocol error: {exc}"))
            return
        self._in_data_received = True
        handlers = self._event_handlers
        try:
            for event in events:
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(self, event)
        except Exception as exc:
            # A bug of ours (or an h2 surprise) must not leave the connection
            # half-processed: tell the peer and close, waking every waiter.
            log.exception("error while handling HTTP/2 events; closing the connection")
            self._h2.close_connection(error_code=ErrorCodes.INTERNAL_ERROR)
            self._close_transport(ConnectionClosedError(f"internal error: {exc!r}"))
            return
        finally:
            self._in_data_received = False
        if self._needs_pump:
            self._needs_pump = False
            self._pump()
        else:
            self._flush_now()

    def eof_received(self) -> bool | None:
        return None  # close the transport: HTTP/2 has no half-closed connections

    # ------------------------------------------------------------------
    # Public API: information
    # ------------------------------------------------------------------

    @property
    def client_side(self) -> bool:
        return self._client_side

    @property
    def closed(self) -> bool:
        """True once the connection is closed or closing (no new streams)."""
        return (
            self._closed_error is not None
            or self._goaway_sent
            or (self._goaway_received is not None)
        )

    @property
    def goaway_received(self) -> ConnectionClosedError | None:
        """The peer's last GOAWAY (its error code, last stream id, debug data), if any."""
        return self._goaway_received

    @property
    def rtt(self) -> float | None:
        """The last measured round-trip time in seconds, or None before any."""
        return self._health.rtt

    @property
    def remote_settings(self) -> Mapping[int, int]:
        """The peer's settings in force (SETTINGS codes to values)."""
        return dict(self._h2.remote_settings.items())

    @property
    def local_settings(self) -> Mapping[int, int]:
        """Our settings as advertised to the peer."""
        return dict(self._h2.local_settings.items())

    @property
    def available_streams(self) -> int:
        """Streams this client can open now without waiting for the peer's limit."""
        return max(0, self._peer_stream_limit() - self._open_local)

    async def wait_stream_slot(self) -> None:
        """Wait until ``start_request`` could open a stream without waiting.

        The slot is not reserved: another task may take it first, and then
        ``start_request`` waits again. Useful to build time-sensitive headers
        (a remaining timeout) only once a stream can really be opened.
        """
        self._require_side(client=True, what="wait_stream_slot")
        await self._acquire_stream_slot()

    @property
    def open_streams(self) -> int:
        """Streams currently open on this connection (both directions)."""
        return len(self._streams)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport information (``peername``, ``sockname``, ``ssl_object``...)."""
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)

    async def wait_closed(self) -> None:
        """Wait until the connection is fully closed."""
        await asyncio.shield(self._closed)

    # ------------------------------------------------------------------
    # Public API: server side
    # ------------------------------------------------------------------

    async def recv_request(self) -> tuple[int, Headers]:
        """Wait for the next request; returns ``(stream_id, headers)``."""
        self._require_side(client=False, what="recv_request")
        while not self._requests:
            self._raise_if_closed(allow_goaway=True)
            if self._goaway_sent and not self._streams:
                raise ConnectionClosedError("connection is closing: no more requests")
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._request_waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    self._request_waiters.remove(waiter)
        stream_id, headers = self._requests.popleft()
        stream = self._streams.get(stream_id) or self._retained.get(stream_id)
        if stream is not None:
            stream.headers_taken = True
            self._release_if_consumed(stream)
        return stream_id, headers

    async def start_response(
        self, stream_id: int, headers: HeadersArg, end_stream: bool = False
    ) -> None:
        """Send the response headers of a request stream."""
        self._require_side(client=False, what="start_response")
        stream = self._sendable_stream(stream_id)
        wire = encode_headers(headers)
        validate_outbound(wire, "response")
        self._send_headers(stream, wire, end_stream)

    # ------------------------------------------------------------------
    # Public API: client side
    # ------------------------------------------------------------------

    async def start_request(self, headers: HeadersArg, end_stream: bool = False) -> int:
        """Open a stream with these request headers and return its id.

        ``:scheme`` and ``:authority`` are filled in when missing. Waits while
        the peer's MAX_CONCURRENT_STREAMS is reached.
        """
        self._require_side(client=True, what="start_request")
        assert self._authority is not None or self._transport is None
        wire = encode_request_headers(
            headers, scheme=self._scheme, authority=self._authority or b"localhost"
        )
        validate_outbound(wire, "request")
        await self._acquire_stream_slot()
        stream_id = self._h2.get_next_available_stream_id()
        stream = Stream(stream_id, is_response=True)
        self._cancel_idle_timer()
        self._streams[stream_id] = stream
        self._open_local += 1
        self._send_headers(stream, wire, end_stream)
        return stream_id

    async def recv_response(self, stream_id: int) -> Headers:
        """Wait for the final (non-1xx) response headers of a stream."""
        self._require_side(client=True, what="recv_response")
        stream = self._readable_stream(stream_id)
        try:
            while stream.headers is None:
                stream.raise_error()
                await stream.wait(self._loop)
            stream.raise_error()
            stream.headers_taken = True
            return stream.headers
        finally:
            self._release_if_consumed(stream)

    # ------------------------------------------------------------------
    # Public API: both sides
    # ------------------------------------------------------------------

    async def send_data(self, stream_id: int, data: BytesLike, end_stream: bool = False) -> None:
        """Send ``data`` on a stream, waiting while flow control says stop.

        Returns once every byte has been handed to the HTTP/2 layer. If the
        call is cancelled while it waits, the rest of the data is dropped and
        the stream is reset with CANCEL, since the peer would otherwise see a
        truncated body as a complete one.
        """
        stream = self._sendable_stream(stream_id)
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if end_stream:
            stream.end_queued = True
        if not stream.outbound:
            # Nothing of this stream queued: send at once if nothing else waits
            # for window or transport. A bare END_STREAM needs no window at all.
            idle = not view or (not self._paused and not self._scheduler)
            if idle and self._send_now(stream, view, end_stream):
                return
        waiter: asyncio.Future[None] = self._loop.create_future()
        stream.outbound.append(OutboundItem(view, end_stream, waiter))
        self._scheduler.push(stream_id)
        self._pump()
        await self._wait_sent(stream, waiter)

    async def end_stream(self, stream_id: int) -> None:
        """End our side of the stream (an empty DATA frame with END_STREAM)."""
        await self.send_data(stream_id, b"", end_stream=True)

    async def send_trailers(self, stream_id: int, headers: HeadersArg) -> None:
        """Send trailers, ending our side of the stream, after any data queued before."""
        stream = self._sendable_stream(stream_id)
        wire = encode_headers(headers)
        validate_outbound(wire, "trailers")
        stream.end_queued = True
        if not stream.outbound:
            self._send_headers(stream, wire, True)
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        stream.outbound.append(OutboundItem(memoryview(b""), True, waiter, trailers=wire))
        await self._wait_sent(stream, waiter)

    async def read_stream(self, stream_id: int, size: int | None = None) -> bytes:
        """Read body data of a stream.

        * ``size=None``: the next chunk as received (one DATA frame's worth).
        * ``size > 0``: wait for ``size`` bytes, fewer only at the end of the stream.
        * ``size < 0``: wait for the end of the stream and return all the rest.
        * ``size == 0``: ``b""`` at once.

        ``b""`` means the peer ended the stream and everything has been read.
        Reading returns window credit to the peer: data not read is not
        acknowledged, which is what holds a fast sender back.
        """
        stream = self._readable_stream(stream_id)
        try:
            if size == 0:
                stream.raise_error()
                return b""
            while True:
                stream.raise_error()
                if size is None:
                    if stream.chunks:
                        data = stream.take_chunk()
                        break
                elif size < 0:
                    if stream.ended_remote:
                        data = stream.take(-1) if stream.buffered else b""
                        break
                elif stream.buffered >= size or (stream.ended_remote and stream.buffered):
                    data = stream.take(size)
                    break
                if stream.ended_remote:
                    data = b""
                    break
                if size is not None:
                    # The caller wants more than one window may hold: credit
                    # what is buffered now so the peer can send the rest.
                    self._credit(stream, stream.unacked)
                await stream.wait(self._loop)
            if data:
                self._credit(stream, min(len(data), stream.unacked))
            if stream.ended_remote and not stream.buffered:
                stream.end_seen = True
            return data
        finally:
            self._release_if_consumed(stream)

    async def recv_trailers(self, stream_id: int) -> Headers:
        """Wait for the end of the stream; returns its trailers (``[]`` if none).

        Read the body first: body data that nobody reads holds the peer back
        once the stream's window is full, so the trailers would never come.
        """
        stream = self._readable_stream(stream_id)
        try:
            while not stream.ended_remote:
                stream.raise_error()
                await stream.wait(self._loop)
            stream.raise_error()
            stream.trailers_taken = stream.end_seen = True
            return stream.trailers if stream.trailers is not None else []
        finally:
            self._release_if_consumed(stream)

    def reset_stream(self, stream_id: int, error_code: int = ErrorCodes.CANCEL) -> None:
        """Reset a stream with RST_STREAM; every waiter on it gets StreamResetError.

        On a stream that is already closed it releases what the connection
        still keeps for it: unread data is discarded and its window credit
        returned (this is how to abandon a response you will not read).
        """
        stream = self._streams.get(stream_id)
        if stream is None:
            retained = self._retained.pop(stream_id, None)
            if retained is not None:
                retained.discard_buffered()
                self._credit(retained, retained.unacked)
            return
        # The application asked for it: unless someone is waiting on the
        # stream and must be told, nothing needs to be kept for later calls.
        seen = not stream.waiters and not stream.outbound
        self._reset(stream, error_code)
        stream.error_seen = stream.error_seen or seen

    def _reset(self, stream: Stream, error_code: int) -> None:
        self._h2.reset_stream(stream.id, error_code)
        stream.fail(StreamResetError(stream.id, error_code, remote=False))
        self._on_stream_closed(stream)
        self._schedule_flush()

    def on_stream_error(self, stream_id: int, callback: Callable[[H2Error], None] | None) -> None:
        """Have ``callback(error)`` called once if the stream fails.

        It fires synchronously, as soon as the failure is known: the peer
        resets the stream, a GOAWAY or connection loss ends it, or it is reset
        locally. A server uses this to cancel a handler that is busy computing
        and not waiting on the stream. A stream that ends normally never calls
        it. ``None`` removes the callback.
        """
        stream = self._streams.get(stream_id)
        if stream is None:
            if callback is not None:
                raise StreamClosedError(stream_id, "stream is already closed")
            return
        stream.on_error = callback

    def stream_ended_by_peer(self, stream_id: int) -> bool:
        """True once the peer has ended its side of the stream (END_STREAM received)."""
        stream = self._streams.get(stream_id) or self._retained.get(stream_id)
        return stream is None or stream.ended_remote

    def prioritize(
        self,
        stream_id: int,
        weight: int = DEFAULT_WEIGHT,
        depends_on: int | None = None,
        exclusive: bool | None = None,
    ) -> None:
        """Set the weight (1-256) by which this stream shares outbound bandwidth.

        A client also tells the peer with a PRIORITY frame, so the server can
        schedule its response data the same way. ``depends_on``/``exclusive``
        are sent to the peer but not used for our own scheduling.
        """
        check_weight(weight)
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamClosedError(stream_id, "cannot prioritize a closed or unknown stream")
        self._scheduler.set_weight(stream_id, weight)
        if self._client_side:
            self._h2.prioritize(
                stream_id, weight=weight, depends_on=depends_on, exclusive=exclusive
            )
            self._schedule_flush()

    async def wait_functional(self) -> float:
        """Return the round-trip time (seconds) of a PING acknowledged recently.

        "Recently" means within the last ``functional_timeout``; otherwise a
        PING is sent (or the one already out is joined) and its ack awaited.
        Raises ConnectionClosedError if the connection closes first.
        """
        self._raise_if_closed(allow_goaway=True)
        return await self._health.wait_functional()

    async def close_connection(
        self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT, *, debug_data: bytes = b""
    ) -> None:
        """Close gracefully: GOAWAY, let open streams finish (up to ``timeout``), close.

        A server announces the close first with a GOAWAY whose last stream id
        is 2^31-1 and a PING (RFC 9113 6.8): requests already on their way are
        still served. Once the PING is acked (or after a few seconds) the real
        GOAWAY follows, and from then on new streams are refused. A client,
        or ``timeout=0``, skips the announcement. Streams still open when
        ``timeout`` expires fail with ConnectionClosedError. ``debug_data``
        goes in the GOAWAY frames (e.g. ``b"max_age"``).
        """
        if self._transport is None or self._closed.done():
            await self.wait_closed() if self._transport is not None else None
            return
        deadline = None if timeout is None else self._loop.time() + timeout
        self._closing_task = asyncio.current_task()
        if self._closed_error is None and not self._goaway_sent:
            if not self._client_side and timeout != 0 and not self._goaway_announced:
                await self._announce_goaway(debug_data, timeout)
            if self._closed_error is None and not self._goaway_sent:
                self._goaway_sent = True
                self._h2.close_connection(
                    error_code=ErrorCodes.NO_ERROR, additional_data=debug_data or None
                )
                self._flush_now()
                self._wake_new_stream_waiters()
        if self._streams:
            self._drained = self._drained or self._loop.create_future()
            remaining = None if deadline is None else max(0.0, deadline - self._loop.time())
            try:
                await asyncio.wait_for(asyncio.shield(self._drained), remaining)
            except asyncio.TimeoutError:
                log.debug("close_connection: %d streams still open", len(self._streams))
        self._close_transport(ConnectionClosedError("connection closed"))
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), DEFAULT_CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            if self._transport is not None:
                self._transport.abort()
            await self.wait_closed()

    async def _announce_goaway(self, debug_data: bytes, timeout: float | None) -> None:
        self._goaway_announced = True
        self._h2.close_connection(
            error_code=ErrorCodes.NO_ERROR,
            additional_data=debug_data or None,
            last_stream_id=MAX_STREAM_ID,
        )
        self._flush_now()
        wait = GOAWAY_ACK_WAIT if timeout is None else min(timeout, GOAWAY_ACK_WAIT)
        with contextlib.suppress(asyncio.TimeoutError, ConnectionClosedError):
            await asyncio.wait_for(self._health.ping(), wait)

    def _close_in_background(self, timeout: float | None, debug_data: bytes) -> None:
        """Start a graceful close nobody awaits (connection lifetime limits)."""
        if self.closed or self._goaway_announced:
            return
        task = self._loop.create_task(self.close_connection(timeout, debug_data=debug_data))
        self._background_close = task
        task.add_done_callback(_log_handler_failure)

    # ------------------------------------------------------------------
    # Connection lifetime (server-side limits)
    # ------------------------------------------------------------------

    def _start_lifetime_timers(self) -> None:
        lifetime = self._lifetime
        if lifetime is None:
            return
        self._arm_idle_timer()
        age = lifetime.jittered_age()
        if age is not None:
            self._age_timer = self._loop.call_later(age, self._on_max_age)

    def _arm_idle_timer(self) -> None:
        lifetime = self._lifetime
        if lifetime is not None and lifetime.max_idle is not None and self._idle_timer is None:
            self._idle_timer = self._loop.call_later(lifetime.max_idle, self._on_max_idle)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_max_idle(self) -> None:
        self._idle_timer = None
        if not self._streams:
            # Gracefully too: a request may be on its way as the GOAWAY leaves.
            self._close_in_background(DEFAULT_CLOSE_TIMEOUT, b"max_idle")

    def _on_max_age(self) -> None:
        self._age_timer = None
        assert self._lifetime is not None
        self._close_in_background(self._lifetime.max_age_grace, b"max_age")

    # ------------------------------------------------------------------
    # Stream lookup
    # ------------------------------------------------------------------

    def _lookup(self, stream_id: int) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._retained.get(stream_id)
        if stream is not None:
            return stream
        if self._closed_error is not None:
            raise self._closed_error
        raise StreamClosedError(stream_id, "unknown or closed stream")

    def _readable_stream(self, stream_id: int) -> Stream:
        return self._lookup(stream_id)

    def _sendable_stream(self, stream_id: int) -> Stream:
        stream = self._lookup(stream_id)
        stream.raise_error()
        if stream.send_error is not None:
            raise stream.send_error
        if stream.end_queued or stream.ended_local:
            raise StreamClosedError(stream_id, "our side of the stream is already ended")
        if self._closed_error is not None:
            raise self._closed_error
        return stream

    def _require_side(self, *, client: bool, what: str) -> None:
        if self._client_side != client:
            side = "client" if client else "server"
            raise RuntimeError(f"{what}() is for the {side} side of a connection")

    def _raise_if_closed(self, *, allow_goaway: bool = False) -> None:
        if self._closed_error is not None:
            raise self._closed_error
        if not allow_goaway:
            if self._goaway_received is not None:
                raise self._goaway_received.for_stream(unprocessed=True)
            if self._goaway_sent:
                raise ConnectionClosedError("connection is closing", unprocessed=True)

    # ------------------------------------------------------------------
    # Sending
    # ------------------------------------------------------------------

    def _send_headers(self, stream: Stream, wire: WireHeaders, end_stream: bool) -> None:
        self._h2.send_headers(stream.id, wire, end_stream=end_stream)
        self._sent_headers_or_data()
        if end_stream:
            stream.end_queued = True
            self._local_end_sent(stream)
        self._schedule_flush()

    def _send_now(self, stream: Stream, view: memoryview, end_stream: bool) -> bool:
        """Send all of ``view`` at once if the windows allow; False if they don't."""
        h2conn = self._h2
        total = len(view)
        if total and total > h2conn.local_flow_control_window(stream.id):
            return False
        max_frame = h2conn.max_outbound_frame_size
        if total <= max_frame:
            h2conn.send_data(stream.id, view, end_stream=end_stream)
        else:
            offset = 0
            while offset < total:
                end = min(offset + max_frame, total)
                last = end == total
                h2conn.send_data(stream.id, view[offset:end], end_stream=end_stream and last)
                offset = end
        self._sent_headers_or_data()
        self._unflushed += total
        if end_stream:
            self._local_end_sent(stream)  # may flush
        if self._unflushed >= FLUSH_THRESHOLD:
            self._flush_now()
        else:
            self._schedule_flush()
        return True

    async def _wait_sent(self, stream: Stream, waiter: asyncio.Future[None]) -> None:
        try:
            await waiter
        except asyncio.CancelledError:
            abandoned = not waiter.done() or waiter.cancelled()
            if abandoned and stream.id in self._streams:
                # Abandoned half-way: the body would look complete but is not.
                self._reset(stream, ErrorCodes.CANCEL)
            raise
        except (StreamClosedError, ConnectionClosedError):
            stream.error_seen = True
            raise
        finally:
            self._release_if_consumed(stream)

    def _pump(self) -> None:
        """Hand queued DATA to h2 by priority until windows or the transport stop us."""
        if self._pumping or self._in_data_received:
            self._needs_pump = True
            return
        if self._transport is None or self._closed_error is not None:
            return
        self._pumping = True
        h2conn = self._h2
        scheduler = self._scheduler
        try:
            max_frame = h2conn.max_outbound_frame_size
            # A closed connection window stops everyone alike: leave the
            # streams queued in priority order until WINDOW_UPDATE reopens it.
            while not self._paused and h2conn.outbound_flow_control_window > 0:
                stream_id = scheduler.pop()
                if stream_id is None:
                    break
                stream = self._streams.get(stream_id)
                if stream is None or not stream.outbound:
                    continue
                item = stream.outbound[0]
                if item.remaining:
                    window = h2conn.local_flow_control_window(stream_id)
                    if window <= 0:
                        self._blocked.add(stream_id)
                        continue
                    size = min(window, max_frame, item.remaining)
                    start = item.offset
                    item.offset = end = start + size
                    finished = end == len(item.view)
                    h2conn.send_data(
                        stream_id, item.view[start:end], end_stream=finished and item.end_stream
                    )
                    scheduler.charge(stream_id, size)
                    self._sent_headers_or_data()
                    self._unflushed += size
                    if finished:
                        stream.outbound.popleft()
                        self._complete_outbound(stream, item)
                self._send_windowless_items(stream)
                if stream.outbound and stream_id in self._streams:
                    scheduler.push(stream_id)
                if self._unflushed >= FLUSH_THRESHOLD:
                    self._flush_now()
        finally:
            self._pumping = False
        self._flush_now()

    def _complete_outbound(self, stream: Stream, item: OutboundItem) -> None:
        if not item.waiter.done():
            item.waiter.set_result(None)
        if item.end_stream:
            self._local_end_sent(stream)

    def _send_windowless_items(self, stream: Stream) -> None:
        """Send the queued items at the head that carry no data (trailers, bare END_STREAM).

        They need no window, so they go out as soon as the data queued before
        them has, without waiting for another turn.
        """
        outbound = stream.outbound
        while outbound and not outbound[0].remaining and not stream.ended_local:
            item = outbound.popleft()
            if item.trailers is not None:
                self._h2.send_headers(stream.id, item.trailers, end_stream=True)
                self._sent_headers_or_data()
            else:
                self._h2.send_data(stream.id, b"", end_stream=item.end_stream)
            self._complete_outbound(stream, item)

    def _unblock(self, stream_id: int | None) -> None:
        """Window opened: stream ``stream_id``'s, or the connection's when None."""
        if stream_id is None:
            for blocked in self._blocked:
                self._scheduler.push(blocked)
            self._blocked.clear()
        elif stream_id in self._blocked:
            self._blocked.discard(stream_id)
            self._scheduler.push(stream_id)
        self._pump()

    def _send_ping(self, payload: bytes) -> None:
        if self._transport is None or self._closed_error is not None:
            return
        self._pings_without_data += 1
        self._h2.ping(payload)
        self._flush_now()

    def _sent_headers_or_data(self) -> None:
        """Keepalive and ping policing both restart their count on real traffic."""
        self._pings_without_data = 0
        if self._ping_strikes is not None:
            self._ping_strikes.reset()

    def _keepalive_may_ping(self) -> bool:
        keepalive = self._keepalive
        assert keepalive is not None
        if not self._streams and not keepalive.permit_without_calls:
            return False
        limit = keepalive.max_pings_without_data
        return limit == 0 or self._pings_without_data < limit

    # ------------------------------------------------------------------
    # Writing to the transport
    # ------------------------------------------------------------------

    def _flush_now(self) -> None:
        self._unflushed = 0
        self._ends_unflushed = 0
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and not self._in_data_received:
            self._flush_handle = self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_handle = None
        self._flush_now()

    # ------------------------------------------------------------------
    # Stream life cycle
    # ------------------------------------------------------------------

    def _local_end_sent(self, stream: Stream) -> None:
        stream.ended_local = True
        self._ends_unflushed += 1
        if (
            not self._in_data_received
            and not self._pumping
            and (self._flush_handle is None or self._ends_unflushed >= EAGER_FLUSH_STREAMS)
        ):
            # Finished requests or responses go out now, a few at a time: the
            # peer starts on them while we produce the next ones (one write
            # per loop iteration makes the two sides take turns, batch by
            # batch), and a few per write keep the syscalls few.
            self._flush_now()
            self._schedule_flush()
        if stream.ended_remote:
            self._on_stream_closed(stream)
        elif not self._client_side and stream.id in self._streams:
            # The response is complete but the request is not: RFC 9113 8.1
            # lets a server ask the client to stop with RST_STREAM(NO_ERROR).
            # Otherwise an upload nobody reads would hold a stream slot and
            # connection window until the client gives up.
            stream.error_seen = True
            self._reset(stream, ErrorCodes.NO_ERROR)

    def _on_stream_closed(self, stream: Stream) -> None:
        """The stream is closed on the wire: free its slot, window credit and state."""
        stream_id = stream.id
        if self._streams.pop(stream_id, None) is None:
            return
        self._scheduler.forget(stream_id)
        self._blocked.discard(stream_id)
        if stream.outbound:
            stream.fail_outbound(stream.error or StreamClosedError(stream_id, "stream closed"))
        if stream.error is not None:
            stream.discard_buffered()  # reads raise the error: the data is useless
        elif not stream.is_response and stream.buffered:
            # A server whose response is complete is done with the request:
            # a body it did not read is abandoned, not kept.
            stream.discard_buffered()
            stream.end_seen = True
        # Data still buffered stays charged to the connection window until it is
        # read (or the stream released), so the window keeps bounding memory.
        self._credit(stream, stream.unacked - stream.buffered)
        if (stream_id % 2 == 1) == self._client_side:
            self._open_local -= 1
            self._wake_slot_waiter()
        else:
            self._open_remote -= 1
        if not stream.consumed:
            self._retain(stream)
        if not self._streams:
            self._arm_idle_timer()
            if self._drained is not None and not self._drained.done():
                self._drained.set_result(None)
            if self._goaway_received is not None and self._transport is not None:
                self._close_transport(self._goaway_received)

    def _retain(self, stream: Stream) -> None:
        """Keep a closed stream until the application has seen all it holds.

        Streams with unread data are never dropped: their memory is bounded
        by the connection window, which their data still occupies. Past
        MAX_RETAINED_STREAMS, the oldest streams holding no data (only an
        end or an error nobody asked for) are forgotten.
        """
        retained = self._retained
        retained[stream.id] = stream
        if len(retained) > MAX_RETAINED_STREAMS:
            for stream_id in [sid for sid, s in retained.items() if not s.buffered][
                : len(retained) - MAX_RETAINED_STREAMS
            ]:
                del retained[stream_id]

    def _release_if_consumed(self, stream: Stream) -> None:
        if stream.id not in self._streams and stream.consumed:
            self._retained.pop(stream.id, None)

    def _credit(self, stream: Stream, nbytes: int) -> None:
        """Return ``nbytes`` of window credit for data of this stream."""
        if nbytes <= 0:
            return
        stream.unacked -= nbytes
        if self._closed_error is None:
            self._h2.acknowledge_received_data(nbytes, stream.id)
            self._schedule_flush()

    async def _acquire_stream_slot(self) -> None:
        while True:
            self._raise_if_closed()
            if self._open_local < self._peer_stream_limit():
                return
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._slot_waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_slot_waiter()  # pass on the slot we were woken for
                raise

    def _peer_stream_limit(self) -> int:
        limit = self._h2.remote_settings.max_concurrent_streams
        if not self._peer_settings_seen:
            limit = min(limit, STREAMS_BEFORE_PEER_SETTINGS)
        return limit

    def _wake_slot_waiter(self) -> None:
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_new_stream_waiters(self) -> None:
        """Wake everyone waiting to open or accept streams, so they can re-check."""
        slot_waiters, self._slot_waiters = self._slot_waiters, deque()
        request_waiters, self._request_waiters = self._request_waiters, []
        for waiter in (*slot_waiters, *request_waiters):
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------
    # Closing
    # ------------------------------------------------------------------

    def _start_handler(self, on_connected: OnConnected) -> None:
        result = on_connected(self)
        if isinstance(result, asyncio.Future):
            self._handler = result
        elif asyncio.iscoroutine(result):
            self._handler = self._loop.create_task(result)
        else:
            return
        self._handler.add_done_callback(_log_handler_failure)

    def _on_peer_dead(self, timeout: float) -> None:
        log.debug("peer did not answer a PING within %.3fs: closing", timeout)
        self._abort(ConnectionClosedError(f"peer did not answer a PING within {timeout:g}s"))

    def _abort(self, error: ConnectionClosedError) -> None:
        if self._closed_error is None:
            self._closed_error = error
        if self._transport is not None:
            self._transport.abort()

    def _close_transport(self, error: ConnectionClosedError) -> None:
        if self._closed_error is None:
            self._closed_error = error
        if self._transport is not None and not self._transport.is_closing():
            self._flush_now()
            self._transport.close()

    def _shut_down(self, error: ConnectionClosedError) -> None:
        """The transport is gone: wake every waiter, drop every open stream."""
        self._transport = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._cancel_idle_timer()
        if self._age_timer is not None:
            self._age_timer.cancel()
            self._age_timer = None
        self._health.stop(error)
        streams = list(self._streams.values())
        self._streams.clear()
        self._blocked.clear()
        for stream in streams:
            stream.fail(error)
            if not stream.consumed:
                self._retain(stream)
        self._wake_new_stream_waiters()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        handler = self._handler
        if handler is not None and not handler.done() and handler is not self._closing_task:
            handler.cancel()
        if not self._closed.done():
            self._closed.set_result(None)

    # ------------------------------------------------------------------
    # h2 events
    # ------------------------------------------------------------------

    def _on_request_received(self, event: ev.RequestReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None
        limit = self._settings.max_concurrent_streams
        if (
            self._goaway_sent
            or self._closed_error is not None
            or (limit is not None and self._open_remote >= limit)
        ):
            # (h2 raises if the peer's own RST_STREAM for it came in the same read.)
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self._h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        wire = event.headers or ()
        reason = malformed(wire, "request", inbound=True)
        if reason is not None:
            log.debug("malformed request on stream %d: %s", stream_id, reason)
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self._h2.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
            return
        stream = Stream(stream_id, is_response=False)
        stream.headers = headers = decode_headers(wire)
        if self._idle_timer is not None:
            self._cancel_idle_timer()
        self._streams[stream_id] = stream
        self._open_remote += 1
        self._requests.append((stream_id, headers))
        waiters = self._request_waiters
        if waiters:
            self._request_waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _on_response_received(self, event: ev.ResponseReceived) -> None:
        stream = self._streams.get(event.stream_id or 0)
        if stream is not None and self._well_formed(stream, event.headers or (), "response"):
            stream.headers = decode_headers(event.headers or ())
            stream.wake()

    def _on_trailers_received(self, event: ev.TrailersReceived) -> None:
        stream = self._streams.get(event.stream_id or 0)
        if stream is not None and self._well_formed(stream, event.headers or (), "trailers"):
            stream.trailers = decode_headers(event.headers or ())
            stream.wake()

    def _well_formed(self, stream: Stream, wire: Iterable[tuple[bytes, bytes]], kind: str) -> bool:
        """False (and the stream reset with PROTOCOL_ERROR) for a malformed block."""
        reason = malformed(wire, kind, inbound=True)
        if reason is None:
            return True
        log.debug("malformed %s on stream %d: %s", kind, stream.id, reason)
        self._reset(stream, ErrorCodes.PROTOCOL_ERROR)
        return False

    def _on_data_received(self, event: ev.DataReceived) -> None:
        stream_id = event.stream_id or 0
        data = event.data or b""
        flow_controlled = event.flow_controlled_length or 0
        stream = self._streams.get(stream_id)
        if stream is None:
            # Nobody will read it: give the connection window back at once.
            if flow_controlled:
                self._h2.acknowledge_received_data(flow_controlled, stream_id)
            return
        size = len(data)
        if size:
            stream.chunks.append(data)
            stream.buffered += size
            stream.unacked += size
        padding = flow_controlled - size
        if padding:
            self._h2.acknowledge_received_data(padding, stream_id)
        stream.wake()

    def _on_stream_ended(self, event: ev.StreamEnded) -> None:
        stream = self._streams.get(event.stream_id or 0)
        if stream is not None:
            stream.ended_remote = True
            stream.wake()
            if stream.ended_local:
                self._on_stream_closed(stream)

    def _on_stream_reset(self, event: ev.StreamReset) -> None:
        stream_id = event.stream_id or 0
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        code = event.error_code or 0
        error = StreamResetError(stream_id, code, remote=True)
        if code == ErrorCodes.NO_ERROR and stream.ended_remote:
            # RFC 9113 8.1: a complete response followed by RST_STREAM(NO_ERROR)
            # asks us to stop sending; the response must not be discarded.
            stream.send_error = error
            stream.fail_outbound(error)
        else:
            stream.fail(error)
        self._on_stream_closed(stream)

    def _on_window_updated(self, event: ev.WindowUpdated) -> None:
        self._unblock(event.stream_id or None)

    def _on_remote_settings_changed(self, event: ev.RemoteSettingsChanged) -> None:
        changed = event.changed_settings
        first = not self._peer_settings_seen
        self._peer_settings_seen = True
        if SettingCodes.INITIAL_WINDOW_SIZE in changed:
            self._unblock(None)
        if first or SettingCodes.MAX_CONCURRENT_STREAMS in changed:
            for _ in range(len(self._slot_waiters)):
                self._wake_slot_waiter()

    def _on_ping_ack(self, event: ev.PingAckReceived) -> None:
        self._health.on_ping_ack(event.ping_data or b"")

    def _on_ping_received(self, event: ev.PingReceived) -> None:
        # h2 has already queued the ack; only the policy is ours.
        strikes = self._ping_strikes
        if strikes is None or not strikes.on_ping(self._loop.time(), idle=not self._streams):
            return
        log.debug("peer pings too often: GOAWAY(ENHANCE_YOUR_CALM)")
        self._goaway_sent = True
        self._h2.close_connection(
            error_code=ErrorCodes.ENHANCE_YOUR_CALM, additional_data=TOO_MANY_PINGS
        )
        self._close_transport(
            ConnectionClosedError(
                "peer sent too many pings",
                error_code=ErrorCodes.ENHANCE_YOUR_CALM,
                debug_data=TOO_MANY_PINGS,
            )
        )

    def _on_priority_updated(self, event: ev.PriorityUpdated) -> None:
        stream_id = event.stream_id or 0
        if stream_id in self._streams and event.weight is not None:
            self._scheduler.set_weight(stream_id, event.weight)

    def _on_connection_terminated(self, event: ev.ConnectionTerminated) -> None:
        code = event.error_code if event.error_code is not None else ErrorCodes.NO_ERROR
        last_stream_id = event.last_stream_id if event.last_stream_id is not None else 0
        error = ConnectionClosedError(
            f"peer sent GOAWAY ({code_name(code)}, last stream {last_stream_id})"
            + (f": {event.additional_data!r}" if event.additional_data else ""),
            error_code=code,
            last_stream_id=last_stream_id,
            remote=True,
            debug_data=event.additional_data or b"",
        )
        self._goaway_received = error
        graceful = code == ErrorCodes.NO_ERROR
        for stream in list(self._streams.values()):
            ours = (stream.id % 2 == 1) == self._client_side
            if ours and stream.id > last_stream_id:
                stream.fail(error.for_stream(unprocessed=True))
                self._on_stream_closed(stream)
            elif not graceful:
                stream.fail(error.for_stream(unprocessed=False))
                self._on_stream_closed(stream)
        self._wake_new_stream_waiters()
        if not self._streams:
            self._close_transport(error)

    def _on_pushed_stream(self, event: ev.PushedStreamReceived) -> None:
        # We advertise ENABLE_PUSH=0; h2 rejects pushes, but be explicit.
        if event.pushed_stream_id is not None:
            self._h2.reset_stream(event.pushed_stream_id, ErrorCodes.REFUSED_STREAM)

    def _on_informational(self, event: ev.InformationalResponseReceived) -> None:
        log.debug("1xx response on stream %s ignored", event.stream_id)


Connection._event_handlers = {
    ev.RequestReceived: Connection._on_request_received,
    ev.ResponseReceived: Connection._on_response_received,
    ev.TrailersReceived: Connection._on_trailers_received,
    ev.DataReceived: Connection._on_data_received,
    ev.StreamEnded: Connection._on_stream_ended,
    ev.StreamReset: Connection._on_stream_reset,
    ev.WindowUpdated: Connection._on_window_updated,
    ev.RemoteSettingsChanged: Connection._on_remote_settings_changed,
    ev.PingAckReceived: Connection._on_ping_ack,
    ev.PingReceived: Connection._on_ping_received,
    ev.PriorityUpdated: Connection._on_priority_updated,
    ev.ConnectionTerminated: Connection._on_connection_terminated,
    ev.PushedStreamReceived: Connection._on_pushed_stream,
    ev.InformationalResponseReceived: Connection._on_informational,
    # Handled by h2 itself or of no interest here; listed so that the choice
    # is visible: SettingsAcknowledged,
    # AlternativeServiceAvailable, UnknownFrameReceived (e.g. RFC 9218
    # PRIORITY_UPDATE), and any event type a later h2 adds.
}


def _format_authority(peername: Any) -> bytes:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = str(peername[0]), int(peername[1])
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{port}".encode("ascii")
    return b"localhost"


def _log_handler_failure(task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, ConnectionClosedError):
        log.error("connection handler failed", exc_info=exc)


def alpn_context(context: ssl_module.SSLContext) -> ssl_module.SSLContext:
    """Make ``context`` offer/accept HTTP/2 via ALPN (modifies and returns it)."""
    context.set_alpn_protocols(["h2"])
    return context
