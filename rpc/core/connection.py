"""One HTTP/2 connection on asyncio, assembled from parts with one job each.

:class:`Connection` is the :class:`asyncio.Protocol` and the aioh2-style API
(``recv_request``, ``start_response``, ``send_data``, ``read_stream``,
``send_trailers``, ``start_request``, ``recv_response``, ``recv_trailers``,
``wait_functional``, ``close_connection``). The work is done by:

* the **engine** (:mod:`rpc.http2`): frames, stream states, windows, HPACK,
  with no I/O. ``data_received`` feeds it, it calls
  :class:`~rpc.core.events.EngineEvents`, and what it queued is written once;
* the :class:`~rpc.core.streams.StreamTable` (who is open, who is kept), the
  :class:`~rpc.core.sender.Sender` (flow control, priority, the direct path),
  the :class:`~rpc.core.writer.Writer` (coalesced writes),
  :class:`~rpc.core.lifecycle.StreamLifecycle` (closing streams and returning
  credit), :class:`~rpc.core.admission.Admission` (waiting for new streams),
  the close sequence as a state machine (:mod:`rpc.core.closing`), the
  tickless :class:`~rpc.core.health.HealthCheck` and the lifetime timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from ..http2 import (
    ConnectionSettings,
    Engine,
    ErrorCodes,
    ProtocolError,
    SettingCodes,
    engine_name,
    new_engine,
)
from .admission import STREAMS_BEFORE_PEER_SETTINGS, Admission
from .bdp import new_bdp_probe
from .closing import DEFAULT_CLOSE_TIMEOUT, CloseSequence, ConnectionState, log_task_failure
from .errors import ConnectionClosedError
from .events import EngineEvents
from .facade import StreamIdAPI
from .headers import HeadersArg, encode_request_headers, validate_outbound
from .health import HealthCheck
from .keepalive import TOO_MANY_PINGS, ConnectionLifetime, Keepalive, PingPolicy, PingTraffic
from .lifecycle import StreamLifecycle
from .lifetime import LifetimeTimers
from .sender import Sender
from .stream import Stream, StreamContext
from .stream_state import StreamState
from .streams import StreamTable
from .writer import Writer

log = logging.getLogger(__name__)

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
        self._pings = PingTraffic(keepalive, ping_policy)
        self._lifetime = LifetimeTimers(
            loop, lifetime, on_idle=self._on_max_idle, on_age=self._on_max_age
        )
        # Keepalive, when given, sets the health check's pace; else aioh2's
        # functional_timeout is both the quiet interval and the ack timeout.
        self._health = HealthCheck(
            loop,
            keepalive.timeout if keepalive is not None else functional_timeout,
            interval=keepalive.time if keepalive is not None else None,
            may_ping=self._keepalive_may_ping if keepalive is not None else None,
            send_ping=self._send_ping,
            on_dead=self._on_peer_dead,
        )
        self._table = table = StreamTable(client_side=client_side)
        self._admission = admission = Admission(loop)
        self._events = events = EngineEvents(
            table,
            admission,
            self._health,
            on_new_stream=self._lifetime.busy,
            on_ping=self._on_ping,
            on_goaway=self._on_goaway,
        )
        self.engine_name = engine_name(engine)
        """Which HTTP/2 engine runs this connection (``"native"`` or ``"h2"``)."""
        self._engine = new_engine(
            self.engine_name, client_side=client_side, settings=settings, handler=events
        )
        self._writer = Writer(loop, self._engine, settings.limits.max_write_backlog)
        self._sender = Sender(
            self._engine,
            self._writer,
            table,
            on_traffic=self._pings.traffic,
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
        )
        events.bdp = self._lifecycle.bdp = new_bdp_probe(self._engine, settings, loop.time)
        self._context = StreamContext(loop, table, self._sender, self._lifecycle, self._prioritize)
        events.attach(self._sender, self._lifecycle, self._context)
        self._closing = CloseSequence(
            loop,
            self._engine,
            self._writer,
            table,
            self._sender,
            self._lifecycle,
            admission,
            self._context,
            self._health,
            self._lifetime,
            client_side=client_side,
        )

    @property
    def _closed_error(self) -> ConnectionClosedError | None:
        return self._context.closed_error

    @property
    def _transport(self) -> asyncio.Transport | None:
        return self._writer.transport

    # ------------------------------------------------------------------
    # asyncio.Protocol: feed the engine, dispatch, flush once
    # ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, but not necessarily an asyncio.Transport subclass:
        # uvloop's transports implement the same interface without inheriting.
        self._writer.transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._scheme = b"https"
            protocol = ssl_object.selected_alpn_protocol()
            if protocol not in (None, "h2"):
                self._closing.abort(ConnectionClosedError(f"peer negotiated {protocol!r}, not h2"))
                return
        if self._authority is None:
            self._authority = _format_authority(transport.get_extra_info("peername"))
        self._engine.initiate()
        self._writer.flush()
        self._health.start()
        self._lifetime.start()
        self._closing.watch_handshake(self._settings.limits.handshake_timeout)
        if self._on_connected is not None:
            self._start_handler(self._on_connected)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closing.lost(exc)

    def pause_writing(self) -> None:
        self._writer.paused = True

    def resume_writing(self) -> None:
        self._writer.paused = False
        self._sender.pump()

    def data_received(self, data: bytes) -> None:
        self._health.last_received = self._loop.time()
        if self._feed(data) and self._transport is not None:
            # The engine stopped after its share of frames: let other
            # connections run, then go on with what is left.
            self._transport.pause_reading()
            self._loop.call_soon(self._continue_receiving)

    def eof_received(self) -> bool | None:
        return None  # close the transport: HTTP/2 has no half-closed connections

    def _continue_receiving(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._feed(b""):
            self._loop.call_soon(self._continue_receiving)
        else:
            transport.resume_reading()

    def _feed(self, data: bytes) -> bool:
        """Feed the engine, then send what its events made possible, once."""
        try:
            more = self._engine.receive(data)
        except ProtocolError as exc:
            log.debug("HTTP/2 protocol error from peer: %s", exc)
            self._closing.close_transport(
                ConnectionClosedError(f"HTTP/2 protocol error: {exc}", error_code=exc.error_code)
            )
            return False
        except Exception as exc:
            # A bug of ours must not leave the connection half-processed: tell
            # the peer and close, waking every waiter.
            log.exception("error while handling received HTTP/2 frames; closing the connection")
            with contextlib.suppress(Exception):
                self._engine.send_goaway(ErrorCodes.INTERNAL_ERROR)
            self._closing.close_transport(ConnectionClosedError(f"internal error: {exc!r}"))
            return False
        self._admission.dispatch()
        if self._sender.has_work:
            self._sender.pump()
        else:
            self._writer.flush()
        return more

    # ------------------------------------------------------------------
    # Public API: information
    # ------------------------------------------------------------------

    @property
    def client_side(self) -> bool:
        return self._client_side

    @property
    def state(self) -> ConnectionState:
        """Where the connection is in its life (open, announced, draining, closed)."""
        return self._closing.machine.state

    @property
    def closed(self) -> bool:
        """True once the connection is closed or closing (no new streams)."""
        return (
            self._closed_error is not None
            or not self._closing.machine.accepts_new_streams
            or self._closing.goaway_received is not None
        )

    @property
    def goaway_received(self) -> ConnectionClosedError | None:
        """The peer's last GOAWAY (its error code, last stream id, debug data), if any."""
        return self._closing.goaway_received

    @property
    def rtt(self) -> float | None:
        """The last measured round-trip time in seconds, or None before any."""
        return self._health.rtt

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
            self._raise_if_closed(allow_goaway=True)
            if not self._closing.machine.accepts_new_streams and not self._table:
                raise ConnectionClosedError("connection is closing: no more requests")
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
        await self._admission.acquire_slot(self._has_stream_slot, self._raise_if_closed)
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
        await self._admission.acquire_slot(self._has_stream_slot, self._raise_if_closed)

    # ------------------------------------------------------------------
    # Public API: both sides
    # ------------------------------------------------------------------

    async def wait_functional(self) -> float:
        """Return the round-trip time (seconds) of a PING acknowledged recently.

        "Recently" means within the last ``functional_timeout``; otherwise a
        PING is sent (or the one already out is joined) and its ack awaited.
        Raises ConnectionClosedError if the connection closes first.
        """
        self._raise_if_closed(allow_goaway=True)
        return await self._health.wait_functional()

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

    def _on_max_idle(self) -> None:
        if not self._table:
            # Gracefully too: a request may be on its way as the GOAWAY leaves.
            self._closing.close_in_background(DEFAULT_CLOSE_TIMEOUT, b"max_idle")

    def _on_max_age(self) -> None:
        self._closing.close_in_background(self._lifetime.max_age_grace, b"max_age")

    def _start_handler(self, on_connected: OnConnected) -> None:
        result = on_connected(self)
        if isinstance(result, asyncio.Future):
            handler: asyncio.Future[Any] = result
        elif asyncio.iscoroutine(result):
            handler = self._loop.create_task(result)
        else:
            return
        handler.add_done_callback(log_task_failure)
        self._closing.handler = handler

    # ------------------------------------------------------------------
    # Callbacks of the parts
    # ------------------------------------------------------------------

    def _on_idle(self) -> None:
        self._closing.on_idle()

    def _on_goaway(self, error: ConnectionClosedError) -> None:
        self._closing.on_goaway(error)

    def _on_local_end(self, stream: StreamState) -> None:
        self._lifecycle.local_end_sent(stream)

    def _on_peer_dead(self, timeout: float) -> None:
        log.debug("peer did not answer a PING within %.3fs: closing", timeout)
        self._closing.abort(
            ConnectionClosedError(f"peer did not answer a PING within {timeout:g}s")
        )

    def _on_ping(self) -> None:
        if self._pings.peer_pinged(self._loop.time(), idle=not self._table):
            log.debug("peer pings too often: GOAWAY(ENHANCE_YOUR_CALM)")
            self._closing.refuse(
                ErrorCodes.ENHANCE_YOUR_CALM, TOO_MANY_PINGS, "peer sent too many pings"
            )

    def _send_ping(self, payload: bytes) -> None:
        if self._transport is None or self._closed_error is not None:
            return
        self._pings.sent_ping()
        self._engine.send_ping(payload)
        self._writer.flush()

    def _keepalive_may_ping(self) -> bool:
        return self._pings.may_ping(idle=not self._table)

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
        return cast(Stream, self._table.lookup(stream_id, self._closed_error))

    def _find_stream(self, stream_id: int) -> Stream | None:
        return cast("Stream | None", self._table.find(stream_id))

    def _raise_if_closed(self, *, allow_goaway: bool = False) -> None:
        if self._closed_error is not None:
            raise self._closed_error
        if not allow_goaway:
            goaway = self._closing.goaway_received
            if goaway is not None:
                raise goaway.for_stream(unprocessed=True)
            if not self._closing.machine.accepts_new_streams:
                raise ConnectionClosedError("connection is closing", unprocessed=True)


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
