"""Exceptions raised by the HTTP/2 core.

Every waiter on a stream or a connection is woken with one of these when the
stream or the connection goes away, so no caller is ever left waiting forever.
"""

from __future__ import annotations

from ..http2.errors import ErrorCodes, code_name
from ..http2.errors import as_error_code as _as_error_code

__all__ = [
    "ConnectionClosedError",
    "H2Error",
    "StreamClosedError",
    "StreamError",
    "StreamResetError",
    "code_name",
]


class H2Error(Exception):
    """Base class of the core's own exceptions."""


class StreamError(H2Error):
    """A stream can no longer be used."""

    def __init__(self, stream_id: int, message: str) -> None:
        super().__init__(f"stream {stream_id}: {message}")
        self.stream_id = stream_id


class StreamClosedError(StreamError):
    """The stream is closed (or unknown) for the operation that was asked for."""


class StreamResetError(StreamClosedError):
    """The stream was reset with RST_STREAM, by the peer (``remote``) or by us.

    ``error_code`` is the HTTP/2 error code, an :class:`rpc.http2.ErrorCodes`
    member when the code is a known one.
    """

    def __init__(self, stream_id: int, error_code: int, *, remote: bool) -> None:
        self.error_code: ErrorCodes | int = _as_error_code(error_code)
        self.remote = remote
        who = "peer" if remote else "us"
        why = ""
        if not remote and error_code == ErrorCodes.ENHANCE_YOUR_CALM:
            why = " (the peer's header list was over our max_header_list_size)"
        super().__init__(stream_id, f"reset by {who} with {code_name(error_code)}{why}")


class ConnectionClosedError(H2Error, ConnectionError):
    """The connection is closed, closing, or lost.

    ``error_code``, ``last_stream_id`` and ``debug_data`` are those of the
    GOAWAY frame when one was received (``remote`` is then true). ``unprocessed`` is true when the
    waiter's own stream is known not to have been processed by the peer (its id
    is above the GOAWAY's last stream id, or it was never sent), so the request
    may safely be retried on another connection.
    """

    def __init__(
        self,
        message: str,
        *,
        error_code: int | None = None,
        last_stream_id: int | None = None,
        remote: bool = False,
        unprocessed: bool = False,
        debug_data: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.debug_data = debug_data
        self.error_code: ErrorCodes | int | None = (
            None if error_code is None else _as_error_code(error_code)
        )
        self.last_stream_id = last_stream_id
        self.remote = remote
        self.unprocessed = unprocessed

    def for_stream(self, unprocessed: bool) -> ConnectionClosedError:
        """A copy of this error, marked as concerning an (un)processed stream."""
        clone = ConnectionClosedError(
            str(self),
            error_code=self.error_code,
            last_stream_id=self.last_stream_id,
            remote=self.remote,
            unprocessed=unprocessed,
            debug_data=self.debug_data,
        )
        clone.__cause__ = self.__cause__
        return clone

