"""The handler's view of one server call: metadata, deadline, messages, status."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NoReturn, cast

from .. import core
from ..messages import END, MessageReader, frame_message
from ..methods import Method
from ..protocol import compression
from ..protocol.framing import Buffer
from ..protocol.metadata import Metadata, MetadataLike, encode_metadata
from ..protocol.status import RpcError, StatusCode, encode_message

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger(__name__)

Handler = Callable[..., Any]

_CONTENT_TYPE = (b"content-type", b"application/grpc")
_ACCEPT_ENCODING = (b"grpc-accept-encoding", compression.ACCEPT_ENCODING.encode())


class ServerContext:
    """The call as its handler sees it: metadata, deadline, messages, status.

    Handlers may simply return (unary response) or yield (streaming response)
    and take the request (or an async iterator of requests) as their first
    argument; the context offers explicit control on top of that.
    """

    def __init__(
        self,
        server: Server,
        conn: core.Connection,
        stream: core.Stream,
        method: Method[Any, Any],
        handler: Handler,
        metadata: Metadata,
        deadline: float | None,
        request_encoding: str | None,
        accepted_encodings: frozenset[str],
    ) -> None:
        self._server = server
        self._conn = conn
        self._stream = stream
        self._method = method
        self._handler = handler
        self._metadata = metadata
        self._deadline = deadline
        self._accepted = accepted_encodings
        self._reader = MessageReader(
            stream,
            encoding=request_encoding,
            max_length=server.max_receive_message_length,
            parse_copies=method.deserializers_copy,
        )
        self._response_encoding: str | None = server.compression
        self._headers_sent = False
        self._finished = False
        self._code = StatusCode.OK
        self._details = ""
        self._trailing_metadata: Metadata | None = None
        self._cancelled = False
        self._deadline_exceeded = False
        self._task: asyncio.Task[Any] | None = None

    # --- information ---------------------------------------------------------

    @property
    def method(self) -> str:
        """The full method path, ``/package.Service/Method``."""
        return self._method.path

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def peer(self) -> str:
        """The client's address, as ``ipv4:host:port`` or ``ipv6:[host]:port``."""
        peername = self._conn.get_extra_info("peername")
        if isinstance(peername, tuple) and len(peername) >= 2:
            host, port = peername[0], peername[1]
            return f"ipv6:[{host}]:{port}" if ":" in str(host) else f"ipv4:{host}:{port}"
        return "unknown"

    @property
    def deadline(self) -> float | None:
        """The call's deadline in event-loop time (``loop.time()``), or None."""
        return self._deadline

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline, or None without a deadline."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    def cancelled(self) -> bool:
        """True once the client cancelled the call or its deadline passed."""
        return self._cancelled

    @property
    def request_compressed(self) -> bool:
        """Whether the last request message read was compressed on the wire."""
        return self._reader.last_compressed

    # --- response --------------------------------------------------------------

    def set_compression(self, name: str | None) -> None:
        """Compress responses with ``name`` (if the client accepts it); before the first write."""
        if self._headers_sent:
            raise RuntimeError("set_compression() must come before the response headers are sent")
        self._response_encoding = compression.check_supported(name)

    async def send_initial_metadata(self, metadata: MetadataLike | None = None) -> None:
        """Send the response headers now, with this metadata (at most once)."""
        if self._headers_sent:
            raise RuntimeError("initial metadata was already sent")
        await self._send_headers(Metadata(metadata) if metadata else None)

    def set_trailing_metadata(self, metadata: MetadataLike | None) -> None:
        self._trailing_metadata = Metadata(metadata) if metadata else None

    def set_code(self, code: StatusCode) -> None:
        """The status to send when the handler returns normally."""
        self._code = StatusCode(code)

    def set_details(self, details: str) -> None:
        self._details = details

    async def abort(
        self,
        code: StatusCode,
        details: str = "",
        trailing_metadata: MetadataLike | None = None,
    ) -> NoReturn:
        """End the call with this status (raises; do not catch it in the handler)."""
        raise RpcError(
            code,
            details,
            trailing_metadata=Metadata(trailing_metadata) if trailing_metadata else None,
        )

    async def abort_with_status(self, status: RpcError) -> NoReturn:
        """End the call with a rich status made by ``rpc.status.to_status()`` (raises)."""
        raise status

    async def write(self, message: Any, *, compress: bool = True) -> None:
        """Send one response message; ``compress=False`` sends this one uncompressed."""
        if self._finished:
            raise RuntimeError("the call is already finished")
        if self._deadline_exceeded:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if not self._headers_sent:
            await self._send_headers(None)
        data = frame_message(
            self._method.response_serializer(message),
            encoding=self._negotiated_encoding(),
            max_length=self._server.max_send_message_length,
            compress=compress,
        )
        await self._stream.send_data(data)

    # --- request ---------------------------------------------------------------

    async def read(self) -> Any | None:
        """The next request message, or None once the client has sent them all."""
        message = await self._reader.read_message(self._parse_request)
        return None if message is END else message

    def _parse_request(self, payload: Buffer) -> Any:
        try:
            # A bytearray or memoryview, not always bytes: deserializers take
            # any bytes-like object (protobuf's do).
            return self._method.request_deserializer(cast(bytes, payload))
        except Exception as exc:
            raise RpcError(StatusCode.INTERNAL, f"cannot parse request message: {exc}") from None

    def __aiter__(self) -> AsyncIterator[Any]:
        return RequestIterator(self)

    # --- internals ---------------------------------------------------------------

    def _negotiated_encoding(self) -> str | None:
        return compression.negotiate(self._response_encoding, self._accepted)

    async def _send_headers(self, metadata: Metadata | None) -> None:
        headers = [(b":status", b"200"), _CONTENT_TYPE, _ACCEPT_ENCODING]
        encoding = self._negotiated_encoding()
        if encoding is not None:
            headers.append((b"grpc-encoding", encoding.encode()))
        headers += encode_metadata(metadata)
        self._headers_sent = True
        self._stream.send_headers(headers)

    async def _read_single(self) -> Any:
        request = await self.read()
        if request is None:
            raise RpcError(StatusCode.UNIMPLEMENTED, "expected one request message, got none")
        if await self._reader.read() is not None:
            raise RpcError(StatusCode.UNIMPLEMENTED, "expected one request message, got several")
        return request

    async def _finish(
        self,
        code: StatusCode,
        details: str,
        trailing: Metadata | None,
        status_details: bytes | None = None,
    ) -> None:
        """Send the status: trailers, or Trailers-Only when nothing was sent yet."""
        self._finished = True
        headers: list[tuple[bytes, bytes]] = [(b"grpc-status", b"%d" % code)]
        if details:
            headers.append((b"grpc-message", encode_message(details).encode("ascii")))
        if status_details:
            headers.append(
                (b"grpc-status-details-bin", base64.b64encode(status_details).rstrip(b"="))
            )
        try:
            extra = encode_metadata(trailing)
        except ValueError as exc:
            log.error("invalid trailing metadata from handler of %s: %s", self.method, exc)
            headers = [
                (b"grpc-status", b"%d" % StatusCode.INTERNAL),
                (b"grpc-message", b"invalid trailing metadata"),
            ]
            extra = []
        headers += extra
        if self._headers_sent:
            await self._stream.send_trailers(headers)
        else:
            self._headers_sent = True
            self._stream.send_headers(
                [(b":status", b"200"), _CONTENT_TYPE, *headers], end_stream=True
            )
        # If the client is still sending, the core now resets the stream with
        # NO_ERROR (RFC 9113 8.1), as the gRPC spec asks.

    def _on_stream_error(self, error: core.H2Error) -> None:
        """The client reset the stream or went away: cancel the handler."""
        if isinstance(error, core.StreamResetError) and not error.remote:
            return
        self._cancelled = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _on_deadline(self) -> None:
        self._deadline_exceeded = self._cancelled = True
        if self._task is not None and not self._task.done():
            self._task.cancel()


class RequestIterator:
    __slots__ = ("_context",)

    def __init__(self, context: ServerContext) -> None:
        self._context = context

    def __aiter__(self) -> RequestIterator:
        return self

    async def __anext__(self) -> Any:
        message = await self._context.read()
        if message is None:
            raise StopAsyncIteration
        return message
