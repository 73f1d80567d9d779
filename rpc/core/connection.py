"""One HTTP/2 connection on asyncio, assembled from parts with one job each.

:class:`Connection` is the :class:`asyncio.Protocol` and the aioh2-style API
(``recv_request``, ``start_response``, ``send_data``, ``read_stream``,
``send_trailers``, ``start_request``, ``recv_response``, ``recv_trailers``,
``wait_functional``, ``close_connection``). The work is done by:

* the **engine** (:mod:`rpc.http2`): frames, stream states, windows, HPACK,
  with no I/O. The :class:`~rpc.core.reader.Reader` feeds it what is read,
  it calls :class:`~rpc.core.events.EngineEvents`, and what it queued is
  written once;
* the :class:`~rpc.core.streams.StreamTable` (who is open, who is kept), the
  :class:`~rpc.core.sender.Sender` (flow control, priority, the direct path),
  the :class:`~rpc.core.writer.Writer` (coalesced writes),
  :class:`~rpc.core.lifecycle.StreamLifecycle` (closing streams and returning
  credit), :class:`~rpc.core.admission.Admission` (waiting for new streams),
  the close sequence as a state machine (:mod:`rpc.core.closing`),
  :class:`~rpc.core.liveness.Liveness` (keepalive, the health check, window
  probes and ping policing: every PING) and the lifetime timers.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from ..http2 import (
    ConnectionSettings,
    Engine,
    ErrorCodes,
    SettingCodes,
    engine_name,
    new_engine,
)
from . import connection_log
from .admission import STREAMS_BEFORE_PEER_SETTINGS, Admission
from .closing import DEFAULT_CLOSE_TIMEOUT, CloseSequence, ConnectionState
from .errors import ConnectionClosedError
from .events import EngineEvents
from .facade import StreamIdAPI
from .headers import HeadersArg, encode_request_headers, validate_outbound
from .keepalive import ConnectionLifetime, Keepalive, PingPolicy
from .lifecycle import StreamLifecycle
from .lifetime import LifetimeTimers
from .liveness import Liveness
from .reader import Reader
from .sender import Sender
from .stream import Stream, StreamContext
from .stream_state import StreamState
from .streams import StreamTable
from .writer import Writer

BytesLike = bytes | bytearray | memoryview

MAX_STREAM_ID = 2**31 - 1

OnConnected = Callable[["Connection"], Awaitable[Any] | None]


class Connection(StreamIdAPI, asyncio.Protocol):
    """An HTTP/2 connection, client or server side.

    Create one with :func:`rpc.core.open_connection` or receive one in the
    ``on_connected`` callback of :func:`rpc.core.start_server`. ``engine``
    picks the HTTP/2 engine (see :func:`rpc.http2.engine_name`).
    """

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
        engine: str | None = None,
    ) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._client_side = client_side
        self._settings = settings = settings or ConnectionSettings()
        self._on_connected = on_connected
        self._authority = authority.encode("ascii") if authority else None
        self._scheme = b"http"
        # The parts built first report to the close sequence, built last
        # (it needs them all), through the connection's _on_* methods.
        self._lifetime = LifetimeTimers(
            loop, lifetime, on_idle=self._on_max_idle, on_age=self._on_max_age
        )
        self._table = table = StreamTable(client_side=client_side)
        self._admission = admission = Admission(loop)
        self._events = events = EngineEvents(
            table, admission, on_new_stream=self._lifetime.busy, on_goaway=self._on_goaway
        )
        self.engine_name = engine_name(engine)
        """Which HTTP/2 engine runs this connection (``"native"`` or ``"h2"``)."""
        self._engine = new_engine(
            self.engine_name, client_side=client_side, settings=settings, handler=events
        )
        self._writer = Writer(loop, self._engine, settings.limits.max_write_backlog)
        self._liveness = liveness = Liveness(
            loop,
            self._engine,
            self._writer,
            table,
            settings,
            functional_timeout=functional_timeout,
            keepalive=keepalive,
            ping_policy=ping_policy,
            on_dead=self._on_peer_dead,
            on_abuse=self._on_peer_abuse,
        )
        self._sender = Sender(
            self._engine,
            self._writer,
            table,
            on_traffic=liveness.traffic,
            on_local_end=self._on_local_end,
        )
        self._lifecycle = StreamLifecycle(
            self._engine,
            table,
            self._sender,
            self._writer,
            client_side=client_side,
            on_slot_freed=admission.wake_slot_waiter,
            on_idle=self._on_idle,
            unread_credit_limit=settings.unread_credit_limit,
        )
        self._lifecycle.bdp = liveness.bdp
        self._context = StreamContext(loop, table, self._sender, self._lifecycle, self._prioritize)
        events.attach(self._sender, self._lifecycle, self._context, liveness)
        self._closing = CloseSequence(
            loop,
            self._engine,
            self._writer,
            table,
            self._sender,
            self._lifecycle,
            admission,
            self._context,
            liveness,
            self._lifetime,
            client_side=client_side,
        )
        self._reader = Reader(
            loop, self._engine, self._writer, self._sender, admission, self._closing, liveness
        )

    @property
    def _transport(self) -> asyncio.Transport | None:
        return self._writer.transport

    # ------------------------------------------------------------------
    # asyncio.Protocol: reading is the reader's, writing the writer's
    # ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, but not necessarily an asyncio.Transport subclass:
        # uvloop's transports implement the same interface without inheriting.
        self._writer.attach(cast(asyncio.Transport, transport))
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._scheme = b"https"
            protocol = ssl_object.selected_alpn_protocol()
            if protocol not in (None, "h2"):
                self._closing.abort(ConnectionClosedError(f"peer negotiated {protocol!r}, not h2"))
                return
        if self._authority is None:
            self._authority = _format_authority(transport.get_extra_info("peername"))
        connection_log.connected(transport, client_side=self.client_side)
        self._engine.initiate()
        self._writer.flush()
        self._liveness.start()
        self._lifetime.start()
        self._closing.watch_handshake(self._settings.limits.handshake_timeout)
        if self._on_connected is not None:
            self._closing.adopt_handler(self._on_connected(self))

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closing.lost(exc)

    def pause_writing(self) -> None:
        self._writer.paused = True

    def resume_writing(self) -> None:
        self._writer.paused = False
        self._sender.pump()

    def data_received(self, data: bytes) -> None:
        self._reader.received(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport: HTTP/2 has no half-closed connections

    # ------------------------------------------------------------------
    # Public API: information
    # ------------------------------------------------------------------

    @property
    def client_side(self) -> bool:
        return self._client_side

    @property
    def state(self) -> ConnectionState:
        """Where the connection is in its life (open, announced, draining, closed)."""
        return self._closing.state

    @property
    def closed(self) -> bool:
        """True once the connection is closed or closing (no new streams)."""
        return not self._closing.takes_new_streams

    @property
    def goaway_received(self) -> ConnectionClosedError | None:
        """The peer's last GOAWAY (its error code, last stream id, debug data), if any."""
        return self._closing.goaway_received

    @property
    def rtt(self) -> float | None:
        """The last measured round-trip time in seconds, or None before any."""
        return self._liveness.rtt

    @property
    def remote_settings(self) -> Mapping[int, int]:
        """The peer's settings in force (SETTINGS codes to values)."""
        return dict(self._engine.remote_settings)

    @property
    def local_settings(self) -> Mapping[int, int]:
        """Our settings as advertised to the peer."""
        return dict(self._engine.local_settings)

    @property
    def available_streams(self) -> int:
        """Streams this client can open now without waiting for the peer's limit."""
        return max(0, self._peer_stream_limit() - self._table.open_local)

    @property
    def open_streams(self) -> int:
        """Streams currently open on this connection (both directions)."""
        return len(self._table)

    @property
    def retained_streams(self) -> int:
        """Closed streams still kept because the application has not seen all they hold."""
        return len(self._table.retained)

    @property
    def engine(self) -> Engine:
        """The sans-I/O HTTP/2 engine (windows, settings in force); for inspection.

        Sending through it directly bypasses the connection's bookkeeping:
        use the connection's methods to send.
        """
        return self._engine

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport information (``peername``, ``sockname``, ``ssl_object``...)."""
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)

    async def wait_closed(self) -> None:
        """Wait until the connection is fully closed."""
        await asyncio.shield(self._closing.closed)

    # ------------------------------------------------------------------
    # Public API: server side
    # ------------------------------------------------------------------

    def set_request_handler(self, handler: Callable[[Stream], None] | None) -> None:
        """Have every new request passed to ``handler(stream)`` instead of queued.

        The handler is called synchronously, after the engine has processed
        the read that brought the request (its body is buffered when it came
        in the same read), and must not block: it typically starts a task.
        Server side; requests already queued for :meth:`accept_stream` go to
        the handler at once. ``None`` goes back to queueing.
        """
        self._require_side(client=False, what="set_request_handler")
        self._admission.handler = handler
        self._admission.dispatch()

    async def accept_stream(self) -> Stream:
        """Wait for the next request; its headers are in ``stream.headers``."""
        self._require_side(client=False, what="accept_stream")
        admission = self._admission
        while not admission.requests:
            self._closing.raise_if_no_more_requests()
            await admission.wait_request()
        stream = admission.requests.popleft()
        stream.headers_taken = True
        self._table.release_if_consumed(stream)
        return stream

    # ------------------------------------------------------------------
    # Public API: client side
    # ------------------------------------------------------------------

    async def open_stream(self, headers: HeadersArg, end_stream: bool = False) -> Stream:
        """Open a stream with these request headers.

        ``:scheme`` and ``:authority`` are filled in when missing. Waits while
        the peer's MAX_CONCURRENT_STREAMS is reached.
        """
        self._require_side(client=True, what="open_stream")
        wire = encode_request_headers(
            headers, scheme=self._scheme, authority=self._authority or b"localhost"
        )
        validate_outbound(wire, "request")
        await self._admission.acquire_slot(self._has_stream_slot, self._closing.raise_if_closed)
        stream = Stream(self._engine.next_stream_id(), self._context, is_response=True)
        self._lifetime.busy()
        self._table.add(stream)
        self._sender.send_headers(stream, wire, end_stream)
        return stream

    async def wait_stream_slot(self) -> None:
        """Wait until ``start_request`` could open a stream without waiting.

        The slot is not reserved: another task may take it first, and then
        ``start_request`` waits again. Useful to build time-sensitive headers
        (a remaining timeout) only once a stream can really be opened.
        """
        self._require_side(client=True, what="wait_stream_slot")
        await self._admission.acquire_slot(self._has_stream_slot, self._closing.raise_if_closed)

    # ------------------------------------------------------------------
    # Public API: both sides
    # ------------------------------------------------------------------

    async def wait_functional(self) -> float:
        """Return the round-trip time (seconds) of a PING acknowledged recently.

        "Recently" means within the last ``functional_timeout``; otherwise a
        PING is sent (or the one already out is joined) and its ack awaited.
        Raises ConnectionClosedError if the connection closes first.
        """
        self._closing.raise_if_closed(allow_goaway=True)
        return await self._liveness.wait_functional()

    # ------------------------------------------------------------------
    # Closing
    # ------------------------------------------------------------------

    def close_connection(
        self, timeout: float | None = DEFAULT_CLOSE_TIMEOUT, *, debug_data: bytes = b""
    ) -> asyncio.Task[None]:
        """Close gracefully: GOAWAY, let open streams finish (up to ``timeout``), close.

        The close starts at once (the GOAWAY is written before this returns)
        and the returned task finishes when the connection is closed: ``await
        conn.close_connection()`` waits for it, and code written for aioh2,
        where the call was synchronous, still closes without awaiting.

        A server announces the close first with a GOAWAY whose last stream id
        is 2^31-1 and a PING (RFC 9113 6.8): requests already on their way are
        still served. Once the PING is acked (or after a few seconds) the real
        GOAWAY follows, and from then on new streams are refused. A client,
        or ``timeout=0``, skips the announcement. Streams still open when
        ``timeout`` expires fail with ConnectionClosedError. ``debug_data``
        goes in the GOAWAY frames (e.g. ``b"max_age"``).
        """
        return self._closing.close(timeout, debug_data)

    def send_goaway(
        self,
        error_code: int = ErrorCodes.NO_ERROR,
        last_stream_id: int | None = None,
        debug_data: bytes = b"",
    ) -> None:
        """Send a GOAWAY now, without closing: from here on new streams are refused.

        ``last_stream_id`` defaults to the last stream the peer opened.
        :meth:`close_connection` is the usual way to end a connection; this
        is the frame alone, for protocols and tests that need to choose it.
        """
        self._closing.send_goaway(error_code, last_stream_id, debug_data)

    def abort(self) -> None:
        """Drop the connection at once: no GOAWAY, queued output discarded."""
        self._closing.abort(ConnectionClosedError("connection aborted"))

    # ------------------------------------------------------------------
    # What the parts report to the close sequence
    # ------------------------------------------------------------------

    def _on_max_idle(self) -> None:
        self._closing.max_idle_reached()

    def _on_max_age(self) -> None:
        self._closing.max_age_reached()

    def _on_idle(self) -> None:
        self._closing.on_idle()

    def _on_goaway(self, error: ConnectionClosedError) -> None:
        connection_log.goaway_received(
            self._transport, error.error_code or 0, error.last_stream_id, error.debug_data or b""
        )
        self._closing.on_goaway(error)

    def _on_peer_dead(self, error: ConnectionClosedError) -> None:
        connection_log.keepalive_failed(self._transport, str(error))
        self._closing.abort(error)

    def _on_peer_abuse(self, error_code: int, debug_data: bytes, message: str) -> None:
        self._closing.refuse(error_code, debug_data, message)

    def _on_local_end(self, stream: StreamState) -> None:
        self._lifecycle.local_end_sent(stream)

    def _prioritize(self, stream_id: int, weight: int, depends_on: int, exclusive: bool) -> None:
        if self._client_side:
            self._engine.send_priority(stream_id, weight, depends_on, exclusive)
            self._writer.schedule()

    # ------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------

    def _has_stream_slot(self) -> bool:
        return self._table.open_local < self._peer_stream_limit()

    def _peer_stream_limit(self) -> int:
        limit = self._engine.remote_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS, MAX_STREAM_ID)
        if not self._events.peer_settings_seen:
            limit = min(limit, STREAMS_BEFORE_PEER_SETTINGS)
        return limit

    # Every stream in the table is a Stream: the connection makes them all.

    def _stream(self, stream_id: int) -> Stream:
        return cast(Stream, self._table.lookup(stream_id, self._context.closed_error))

    def _find_stream(self, stream_id: int) -> Stream | None:
        return cast("Stream | None", self._table.find(stream_id))


def _format_authority(peername: Any) -> bytes:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = str(peername[0]), int(peername[1])
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{port}".encode("ascii")
    return b"localhost"


def alpn_context(context: ssl_module.SSLContext) -> ssl_module.SSLContext:
    """Make ``context`` offer/accept HTTP/2 via ALPN (modifies and returns it)."""
    context.set_alpn_protocols(["h2"])
    return context
