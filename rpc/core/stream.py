"""A stream as the application holds it: the object upper layers keep, not an id.

:meth:`Connection.open_stream` (client) and :meth:`Connection.accept_stream`
(server) hand out :class:`Stream` objects; every operation on one goes
straight to its state and to the connection's parts through one shared
:class:`StreamContext`, with no lookup by id. The id-based aioh2 API of
:class:`~rpc.core.connection.Connection` is a thin facade over these methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..http2 import Buffer, ErrorCodes
from .errors import ConnectionClosedError, H2Error, StreamClosedError
from .headers import Headers, HeadersArg, encode_headers, validate_outbound
from .lifecycle import StreamLifecycle
from .scheduler import DEFAULT_WEIGHT, check_weight
from .sender import Sender
from .stream_state import StreamState
from .streams import StreamTable

BytesLike = bytes | bytearray | memoryview


def _byte_view(data: BytesLike) -> memoryview:
    """A flat view of bytes over any buffer (no copy)."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class StreamContext:
    """What every stream of one connection shares: the loop and the connection's parts."""

    __slots__ = ("closed_error", "lifecycle", "loop", "prioritize", "sender", "table")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        table: StreamTable,
        sender: Sender,
        lifecycle: StreamLifecycle,
        prioritize: Callable[[int, int, int, bool], None],
    ) -> None:
        self.loop = loop
        self.table = table
        self.sender = sender
        self.lifecycle = lifecycle
        self.prioritize = prioritize
        """Tells the peer a stream's weight (a client's PRIORITY frame)."""
        self.closed_error: ConnectionClosedError | None = None
        """Set once the connection is closed: why."""


class Stream(StreamState):
    """One HTTP/2 stream: send and receive headers, data and trailers, or reset it."""

    __slots__ = ("_context",)

    def __init__(self, stream_id: int, context: StreamContext, *, is_response: bool) -> None:
        super().__init__(stream_id, is_response=is_response)
        self._context = context

    # --- receiving ---------------------------------------------------------

    async def recv_headers(self) -> Headers:
        """Wait for the peer's headers: a client's final (non-1xx) response headers."""
        try:
            while self.headers is None:
                self.raise_error()
                await self.wait(self._context.loop)
            self.raise_error()
            self.headers_taken = True
            return self.headers
        finally:
            self._context.table.release_if_consumed(self)

    async def read_chunk(self) -> Buffer:
        """The next chunk of body data as received; ``b""`` at the end of the stream.

        Large chunks are read-only memoryviews of what the connection read:
        no copy is made (``read()`` returns ``bytes``, copying them).
        """
        try:
            while not self.chunks:
                self.raise_error()
                if self.ended_remote:
                    self.end_seen = True
                    return b""
                await self.wait(self._context.loop)
            self.raise_error()
            chunk = self.chunks.popleft()
            size = len(chunk)
            self.buffered -= size
            self._context.lifecycle.credit(self, min(size, self.unacked))
            if self.ended_remote and not self.buffered:
                self.end_seen = True
            return chunk
        finally:
            self._context.table.release_if_consumed(self)

    async def read(self, size: int | None = None) -> bytes:
        """Read body data (see :meth:`Connection.read_stream` for ``size``).

        Reading returns window credit to the peer: data not read is not
        acknowledged, which is what holds a fast sender back.
        """
        if size is None:
            chunk = await self.read_chunk()
            return chunk if type(chunk) is bytes else bytes(chunk)
        lifecycle = self._context.lifecycle
        try:
            if size == 0:
                self.raise_error()
                return b""
            while True:
                self.raise_error()
                if size < 0:
                    if self.ended_remote:
                        data = self.take(-1) if self.buffered else b""
                        break
                elif self.buffered >= size or (self.ended_remote and self.buffered):
                    data = self.take(size)
                    break
                if self.ended_remote:
                    data = b""
                    break
                # The caller wants more than one window may hold: credit
                # what is buffered now so the peer can send the rest.
                lifecycle.credit(self, self.unacked)
                await self.wait(self._context.loop)
            if data:
                lifecycle.credit(self, min(len(data), self.unacked))
            if self.ended_remote and not self.buffered:
                self.end_seen = True
            return data
        finally:
            self._context.table.release_if_consumed(self)

    async def recv_trailers(self) -> Headers:
        """Wait for the end of the stream; returns its trailers (``[]`` if none).

        Read the body first: body data that nobody reads holds the peer back
        once the stream's window is full, so the trailers would never come.
        """
        try:
            while not self.ended_remote:
                self.raise_error()
                await self.wait(self._context.loop)
            self.raise_error()
            self.trailers_taken = self.end_seen = True
            return self.trailers if self.trailers is not None else []
        finally:
            self._context.table.release_if_consumed(self)

    @property
    def ended_by_peer(self) -> bool:
        """True once the peer has ended its side (END_STREAM received)."""
        return self.ended_remote

    # --- sending -----------------------------------------------------------

    def send_headers(self, headers: HeadersArg, end_stream: bool = False) -> None:
        """Send a server's response headers (written at the end of this loop turn)."""
        self._check_sendable()
        wire = encode_headers(headers)
        validate_outbound(wire, "response")
        self._context.sender.send_headers(self, wire, end_stream)

    async def send_data(self, data: BytesLike | list[BytesLike], end_stream: bool = False) -> None:
        """Send ``data``, waiting while flow control says stop.

        ``data`` may be a list of buffers, sent as if joined but without
        joining them (a message's prefix and its body). Returns once every
        byte has been handed to the HTTP/2 engine. If the call is cancelled
        while it waits, the rest of the data is dropped and the stream is
        reset with CANCEL, since the peer would otherwise see a truncated
        body as a complete one.
        """
        self._check_sendable()
        parts = [_byte_view(part) for part in data] if type(data) is list else None
        if end_stream:
            self.end_queued = True
        sender = self._context.sender
        if parts is None:
            view = _byte_view(data)  # type: ignore[arg-type]
            if sender.try_send_now(self, view, len(view), end_stream):
                return
            parts = [view]
        elif sender.try_send_now(self, parts, sum(map(len, parts)), end_stream):
            return
        waiter: asyncio.Future[None] = self._context.loop.create_future()
        sender.queue_data(self, parts, end_stream, waiter)
        await self._wait_sent(waiter)

    async def send_trailers(self, headers: HeadersArg) -> None:
        """Send trailers, ending our side, after any data queued before them."""
        self._check_sendable()
        wire = encode_headers(headers)
        validate_outbound(wire, "trailers")
        self.end_queued = True
        sender = self._context.sender
        if not self.outbound:
            sender.send_headers(self, wire, True)
            return
        waiter: asyncio.Future[None] = self._context.loop.create_future()
        sender.queue_trailers(self, wire, waiter)
        await self._wait_sent(waiter)

    async def end(self) -> None:
        """End our side with an empty DATA frame."""
        await self.send_data(b"", end_stream=True)

    # --- control -----------------------------------------------------------

    def reset(self, error_code: int = ErrorCodes.CANCEL) -> None:
        """Reset with RST_STREAM; every waiter gets StreamResetError.

        On a stream already closed it releases what the connection still
        keeps for it: unread data is discarded and its window credit returned.
        """
        context = self._context
        if self.id not in context.table.open:
            context.lifecycle.abandon_retained(self.id)
            return
        # The application asked for it: unless someone is waiting on the
        # stream and must be told, nothing needs to be kept for later calls.
        seen = not self.waiters and not self.outbound
        context.lifecycle.reset(self, error_code)
        self.error_seen = self.error_seen or seen

    def set_error_callback(self, callback: Callable[[H2Error], None] | None) -> None:
        """Have ``callback(error)`` called once, synchronously, if the stream fails."""
        if self.id not in self._context.table.open:
            if callback is not None:
                raise StreamClosedError(self.id, "stream is already closed")
            return
        self.on_error = callback

    def prioritize(
        self, weight: int = DEFAULT_WEIGHT, depends_on: int = 0, exclusive: bool = False
    ) -> None:
        """Set this stream's share (1-256) of outbound bandwidth, and tell the peer."""
        check_weight(weight)
        context = self._context
        if self.id not in context.table.open:
            raise StreamClosedError(self.id, "cannot prioritize a closed or unknown stream")
        context.sender.scheduler.set_weight(self.id, weight)
        context.prioritize(self.id, weight, depends_on, exclusive)

    # --- helpers -----------------------------------------------------------

    def _check_sendable(self) -> None:
        self.raise_error()
        if self.send_error is not None:
            raise self.send_error
        if self.end_queued or self.ended_local:
            raise StreamClosedError(self.id, "our side of the stream is already ended")
        closed = self._context.closed_error
        if closed is not None:
            raise closed

    async def _wait_sent(self, waiter: asyncio.Future[None]) -> None:
        context = self._context
        try:
            await waiter
        except asyncio.CancelledError:
            abandoned = not waiter.done() or waiter.cancelled()
            if abandoned and self.id in context.table.open:
                # Abandoned half-way: the body would look complete but is not.
                context.lifecycle.reset(self, ErrorCodes.CANCEL)
            raise
        except (StreamClosedError, ConnectionClosedError):
            self.error_seen = True
            raise
        finally:
            context.table.release_if_consumed(self)
