"""The aioh2 API: every stream operation of a connection, by stream id.

Code written for aioh2 names streams by id: ``stream_id = await
conn.start_request(headers)``, ``await conn.read_stream(stream_id)``. These
methods keep that working, each a lookup and a call to the stream object
that :meth:`Connection.open_stream` / :meth:`Connection.accept_stream` hand out
directly (new code holds those and skips the lookup).
"""

from __future__ import annotations

from collections.abc import Callable

from ..http2 import ErrorCodes
from .errors import H2Error, StreamClosedError
from .headers import Headers, HeadersArg
from .scheduler import DEFAULT_WEIGHT
from .stream import Stream

BytesLike = bytes | bytearray | memoryview


class StreamIdAPI:
    """Stream operations by id, for a connection that can find and open streams."""

    __slots__ = ()

    @property
    def client_side(self) -> bool:
        raise NotImplementedError

    async def open_stream(self, headers: HeadersArg, end_stream: bool = False) -> Stream:
        raise NotImplementedError

    async def accept_stream(self) -> Stream:
        raise NotImplementedError

    def _stream(self, stream_id: int) -> Stream:
        """The open or retained stream with this id, or the error why there is none."""
        raise NotImplementedError

    def _find_stream(self, stream_id: int) -> Stream | None:
        raise NotImplementedError

    def _require_side(self, *, client: bool, what: str) -> None:
        if self.client_side != client:
            side = "client" if client else "server"
            raise RuntimeError(f"{what}() is for the {side} side of a connection")

    async def recv_request(self) -> tuple[int, Headers]:
        """Wait for the next request; returns ``(stream_id, headers)``."""
        stream = await self.accept_stream()
        assert stream.headers is not None
        return stream.id, stream.headers

    async def start_response(
        self, stream_id: int, headers: HeadersArg, end_stream: bool = False
    ) -> None:
        """Send the response headers of a request stream."""
        self._require_side(client=False, what="start_response")
        self._stream(stream_id).send_headers(headers, end_stream)

    async def start_request(self, headers: HeadersArg, end_stream: bool = False) -> int:
        """Open a stream (see :meth:`open_stream`) and return its id."""
        stream = await self.open_stream(headers, end_stream)
        return stream.id

    async def recv_response(self, stream_id: int) -> Headers:
        """Wait for the final (non-1xx) response headers of a stream."""
        self._require_side(client=True, what="recv_response")
        return await self._stream(stream_id).recv_headers()

    async def send_data(self, stream_id: int, data: BytesLike, end_stream: bool = False) -> None:
        """Send ``data`` on a stream, waiting while flow control says stop.

        Returns once every byte has been handed to the HTTP/2 layer. If the
        call is cancelled while it waits, the rest of the data is dropped and
        the stream is reset with CANCEL, since the peer would otherwise see a
        truncated body as a complete one.
        """
        await self._stream(stream_id).send_data(data, end_stream)

    async def end_stream(self, stream_id: int) -> None:
        """End our side of the stream (an empty DATA frame with END_STREAM)."""
        await self._stream(stream_id).end()

    async def send_trailers(self, stream_id: int, headers: HeadersArg) -> None:
        """Send trailers, ending our side of the stream, after any data queued before."""
        await self._stream(stream_id).send_trailers(headers)

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
        return await self._stream(stream_id).read(size)

    async def recv_trailers(self, stream_id: int) -> Headers:
        """Wait for the end of the stream; returns its trailers (``[]`` if none)."""
        return await self._stream(stream_id).recv_trailers()

    def reset_stream(self, stream_id: int, error_code: int = ErrorCodes.CANCEL) -> None:
        """Reset a stream with RST_STREAM; every waiter on it gets StreamResetError.

        On a stream that is already closed it releases what the connection
        still keeps for it: unread data is discarded and its window credit
        returned (this is how to abandon a response you will not read).
        """
        stream = self._find_stream(stream_id)
        if stream is not None:
            stream.reset(error_code)

    def on_stream_error(self, stream_id: int, callback: Callable[[H2Error], None] | None) -> None:
        """Have ``callback(error)`` called once if the stream fails.

        It fires synchronously, as soon as the failure is known: the peer
        resets the stream, a GOAWAY or connection loss ends it, or it is reset
        locally. A server uses this to cancel a handler that is busy computing
        and not waiting on the stream. A stream that ends normally never calls
        it. ``None`` removes the callback.
        """
        stream = self._find_stream(stream_id)
        if stream is None:
            if callback is not None:
                raise StreamClosedError(stream_id, "stream is already closed")
            return
        stream.set_error_callback(callback)

    def stream_ended_by_peer(self, stream_id: int) -> bool:
        """True once the peer has ended its side of the stream (END_STREAM received)."""
        stream = self._find_stream(stream_id)
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
        stream = self._find_stream(stream_id)
        if stream is None:
            raise StreamClosedError(stream_id, "cannot prioritize a closed or unknown stream")
        stream.prioritize(weight, depends_on or 0, bool(exclusive))
