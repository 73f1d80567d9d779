"""Per-stream state kept by a connection: inbound buffer, outbound queue, waiters.

:class:`StreamState` is the data half of a stream and does no I/O: the
connection's parts fill it and drain it. Its subclass
:class:`rpc.core.stream.Stream` adds the operations the application calls.
A stream exists from its HEADERS until the application has seen everything
the peer sent (or its error), and not a moment longer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from ..http2 import Buffer, WireHeaders
from .errors import H2Error
from .headers import Headers

log = logging.getLogger(__name__)


class OutboundItem:
    """Data (and/or an end of stream, or trailers) queued behind a stream's window.

    ``waiter`` is resolved when the last byte has been handed to the engine,
    which is when the ``send_data`` call that queued it returns (None for
    the leading parts of a multi-part send: only its last part has one).
    """

    __slots__ = ("end_stream", "offset", "trailers", "view", "waiter")

    def __init__(
        self,
        view: memoryview,
        end_stream: bool,
        waiter: asyncio.Future[None] | None,
        trailers: WireHeaders | None = None,
    ) -> None:
        self.view = view
        self.offset = 0
        self.end_stream = end_stream
        self.waiter = waiter
        self.trailers = trailers

    @property
    def remaining(self) -> int:
        return len(self.view) - self.offset


class StreamState:
    """One HTTP/2 stream's buffers, flags and waiters."""

    __slots__ = (
        "buffered",
        "chunks",
        "credited_early",
        "end_queued",
        "end_seen",
        "ended_local",
        "ended_remote",
        "error",
        "error_seen",
        "headers",
        "headers_taken",
        "id",
        "is_response",
        "on_error",
        "outbound",
        "send_error",
        "trailers",
        "trailers_taken",
        "unacked",
        "waiters",
    )

    def __init__(self, stream_id: int, *, is_response: bool) -> None:
        self.id = stream_id
        self.is_response = is_response
        """True on the client side, where the inbound half is a response."""
        self.headers: Headers | None = None
        """Request headers (server) or final response headers (client)."""
        self.headers_taken = False
        self.trailers: Headers | None = None
        self.trailers_taken = False
        self.chunks: deque[Buffer] = deque()
        """Received DATA payloads; large ones are read-only views of what the engine read."""
        self.buffered = 0
        """Unread body bytes in ``chunks``."""
        self.unacked = 0
        """Flow-controlled bytes received whose stream-window credit is not yet back."""
        self.credited_early = 0
        """Of ``unacked``, the bytes whose connection-window credit went back on receipt."""
        self.ended_remote = False
        """END_STREAM received."""
        self.end_seen = False
        """The application has observed the end: EOF read, or trailers taken."""
        self.end_queued = False
        """The application ended its side: no more sends accepted."""
        self.ended_local = False
        """END_STREAM handed to h2 (can lag ``end_queued`` behind queued data)."""
        self.error: H2Error | None = None
        self.send_error: H2Error | None = None
        """Set when only our sending side was stopped (RST_STREAM NO_ERROR after a response)."""
        self.error_seen = False
        self.waiters: list[asyncio.Future[None]] = []
        self.on_error: Callable[[H2Error], None] | None = None
        """Called once, synchronously, when the stream fails (see Connection.on_stream_error)."""
        self.outbound: deque[OutboundItem] = deque()

    # --- inbound -----------------------------------------------------------

    def wake(self) -> None:
        """Wake everyone waiting for news on this stream."""
        waiters = self.waiters
        if waiters:
            self.waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for the next change of the inbound state (data, headers, end, error)."""
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                # Cancelled: do not leave a dead future in the list.
                self.waiters.remove(waiter)

    def raise_error(self) -> None:
        if self.error is not None:
            self.error_seen = True
            raise self.error

    def discard_buffered(self) -> None:
        """Drop unread data nobody will read (the stream failed)."""
        self.chunks.clear()
        self.buffered = 0

    def take_chunk(self) -> bytes:
        """Remove and return the oldest buffered chunk."""
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        return chunk if type(chunk) is bytes else bytes(chunk)

    def take(self, size: int) -> bytes:
        """Remove and return up to ``size`` buffered bytes (all when ``size`` < 0)."""
        chunks = self.chunks
        if size < 0 or size >= self.buffered:
            first = chunks.popleft() if len(chunks) == 1 else None
            data = b"".join(chunks) if first is None else bytes(first)
            chunks.clear()
        else:
            parts = []
            need = size
            while need:
                chunk = chunks[0]
                if len(chunk) <= need:
                    parts.append(chunks.popleft())
                    need -= len(chunk)
                else:
                    view = memoryview(chunk)
                    parts.append(view[:need])
                    chunks[0] = view[need:]
                    need = 0
            data = b"".join(parts)
        self.buffered -= len(data)
        return data

    @property
    def consumed(self) -> bool:
        """The application has taken everything the peer sent on this stream.

        A response stream (client side) counts as consumed only once its
        trailers were asked for, since ``recv_trailers`` is how a client
        finishes an exchange (it returns ``[]`` when there were none). A
        request stream (server side) is consumed once its body was read to
        the end, as servers rarely ask for request trailers.
        """
        if self.error is not None:
            return self.error_seen
        return (
            self.buffered == 0
            and (self.trailers_taken or (self.end_seen and not self.is_response))
            and (self.headers is None or self.headers_taken)
            and (self.trailers is None or self.trailers_taken)
        )

    # --- both ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Closed in the HTTP/2 sense: both sides ended, or reset, or connection gone."""
        return self.error is not None or (self.ended_local and self.ended_remote)

    def fail(self, error: H2Error) -> None:
        """Record a terminal error; wake readers, fail queued sends, tell the watcher."""
        if self.error is None:
            self.error = error
        self.wake()
        self.fail_outbound(error)
        callback, self.on_error = self.on_error, None
        if callback is not None:
            try:
                callback(error)
            except Exception:
                # It runs inside the connection's event handling: never let it
                # break that (or stop the other streams from being failed).
                log.exception("stream error callback failed")

    def fail_outbound(self, error: BaseException) -> None:
        while self.outbound:
            waiter = self.outbound.popleft().waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
                # The sender has seen it once it was woken with it; avoid
                # "exception never retrieved" noise for senders that gave up.
                waiter.exception()
