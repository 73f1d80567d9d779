"""The gRPC client: a Channel (one HTTP/2 connection, shared by many calls) and its calls.

A unary call runs entirely in the caller's task: no task is created for it.
The deadline is one timer that resets the stream, which wakes whatever the
call is waiting for; the stream reset then reads as DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterable, Awaitable, Generator, Iterable
from typing import Any, Generic, NoReturn, TypeVar

from h2.errors import ErrorCodes

from . import __version__, core
from .deadlines import resolve_deadline
from .messages import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH, MessageReader, frame_message
from .methods import Method, MethodKind, Req, Resp
from .protocol import compression as codecs
from .protocol.metadata import (
    Metadata,
    MetadataLike,
    decode_bin,
    decode_metadata,
    encode_metadata,
)
from .protocol.status import (
    RpcError,
    StatusCode,
    decode_message,
    parse_status,
    status_from_http,
    status_from_rst,
)
from .protocol.timeout import encode_timeout

USER_AGENT = f"grpc-python-h2rpc/{__version__}"

T = TypeVar("T")

_UNSET: Any = object()
"""Default of ``timeout=``: inherit the deadline of the call being served, if any."""


class Channel:
    """A connection to one gRPC server, opened lazily and shared by concurrent calls.

    ``target`` is ``"host:port"`` (or give ``port`` separately). ``compression``
    and ``metadata`` are defaults for every call; a call's own arguments win.
    """

    def __init__(
        self,
        target: str,
        port: int | None = None,
        *,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        compression: str | None = None,
        metadata: MetadataLike | None = None,
        max_receive_message_length: int | None = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: int | None = None,
        user_agent: str | None = None,
        connect_timeout: float = 20.0,
    ) -> None:
        if port is None:
            host, sep, port_text = target.rpartition(":")
            if not sep or not port_text.isdigit():
                raise ValueError(f"target must be 'host:port', not {target!r}")
            port = int(port_text)
            target = host
        self._host = target.strip("[]")
        self._port = port
        self._ssl = ssl
        self._server_hostname = server_hostname
        self.compression = codecs.check_supported(compression)
        self.metadata = Metadata(metadata) if metadata else None
        self.max_receive_message_length = max_receive_message_length
        self.max_send_message_length = max_send_message_length
        self.connect_timeout = connect_timeout
        self._user_agent = (f"{user_agent} {USER_AGENT}" if user_agent else USER_AGENT).encode()
        self._connection: core.Connection | None = None
        self._connecting: asyncio.Future[core.Connection] | None = None
        self._closed = False

    # --- connection ----------------------------------------------------------

    async def _get_connection(self) -> core.Connection:
        conn = self._connection
        if conn is not None and not conn.closed:
            return conn
        if self._closed:
            raise RpcError(StatusCode.UNAVAILABLE, "the channel is closed")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        except asyncio.CancelledError:
            if connecting.cancelled() and self._closed:
                # close() stopped the connect: that is the channel's news, not
                # a cancellation of this task.
                raise RpcError(StatusCode.UNAVAILABLE, "the channel was closed") from None
            raise
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self) -> core.Connection:
        try:
            conn = await asyncio.wait_for(
                core.open_connection(
                    self._host, self._port, ssl=self._ssl, server_hostname=self._server_hostname
                ),
                self.connect_timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise RpcError(
                StatusCode.UNAVAILABLE, f"cannot connect to {self._host}:{self._port}: {exc!r}"
            ) from exc
        self._connection = conn
        return conn

    async def close(self) -> None:
        """Close the channel: calls in flight fail with CANCELLED/UNAVAILABLE."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._connection is not None:
            await self._connection.close_connection(timeout=0)

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- callables -------------------------------------------------------------

    def unary_unary(self, method: Method[Req, Resp]) -> UnaryUnaryCallable[Req, Resp]:
        _check_kind(method, MethodKind.UNARY_UNARY)
        return UnaryUnaryCallable(self, method)

    def unary_stream(self, method: Method[Req, Resp]) -> UnaryStreamCallable[Req, Resp]:
        _check_kind(method, MethodKind.UNARY_STREAM)
        return UnaryStreamCallable(self, method)

    def stream_unary(self, method: Method[Req, Resp]) -> StreamUnaryCallable[Req, Resp]:
        _check_kind(method, MethodKind.STREAM_UNARY)
        return StreamUnaryCallable(self, method)

    def stream_stream(self, method: Method[Req, Resp]) -> StreamStreamCallable[Req, Resp]:
        _check_kind(method, MethodKind.STREAM_STREAM)
        return StreamStreamCallable(self, method)


def _check_kind(method: Method[Any, Any], kind: MethodKind) -> None:
    if method.kind is not kind:
        raise ValueError(f"{method.path} is a {method.kind.name} method, not {kind.name}")


class _Callable(Generic[Req, Resp]):
    def __init__(self, channel: Channel, method: Method[Req, Resp]) -> None:
        self._channel = channel
        self._method = method

    def _call(
        self,
        timeout: float | None,
        metadata: MetadataLike | None,
        compression: str | None,
    ) -> Call[Req, Resp]:
        return Call(self._channel, self._method, timeout, metadata, compression)


class UnaryUnaryCallable(_Callable[Req, Resp]):
    async def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = _UNSET,
        metadata: MetadataLike | None = None,
        compression: str | None = None,
    ) -> Resp:
        """Make the call and return the response; raises RpcError on failure."""
        response, _ = await self.with_call(
            request, timeout=timeout, metadata=metadata, compression=compression
        )
        return response

    async def with_call(
        self,
        request: Req,
        *,
        timeout: float | None = _UNSET,
        metadata: MetadataLike | None = None,
        compression: str | None = None,
    ) -> tuple[Resp, Call[Req, Resp]]:
        """Like calling, but also returns the call (for its metadata)."""
        call = self._call(timeout, metadata, compression)
        try:
            await call._start()
            await call._send(request, end_stream=True)
            response = await call._read_single_response()
        except BaseException:
            call._abandon()
            raise
        return response, call


class UnaryStreamCallable(_Callable[Req, Resp]):
    def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = _UNSET,
        metadata: MetadataLike | None = None,
        compression: str | None = None,
    ) -> Call[Req, Resp]:
        """Start the call; iterate over the result for the responses."""
        call = self._call(timeout, metadata, compression)
        call._first_request = (request,)
        return call


class _RequestStreamCallable(_Callable[Req, Resp]):
    def __call__(
        self,
        requests: Iterable[Req] | AsyncIterable[Req] | None = None,
        *,
        timeout: float | None = _UNSET,
        metadata: MetadataLike | None = None,
        compression: str | None = None,
    ) -> Call[Req, Resp]:
        """Start the call. Give the requests as an (async) iterable, or write
        them with ``call.write()`` and end with ``call.done_writing()``."""
        call = self._call(timeout, metadata, compression)
        if requests is not None:
            call._send_requests(requests)
        return call


class StreamUnaryCallable(_RequestStreamCallable[Req, Resp]):
    """Client streaming: ``await`` the call for the response."""


class StreamStreamCallable(_RequestStreamCallable[Req, Resp]):
    """Bidirectional streaming: iterate the call for the responses."""


class Call(Generic[Req, Resp]):
    """One RPC in progress, on the client side.

    Async-iterable over the responses; awaitable for the single response of
    a client-streaming call. Failures raise :class:`RpcError`.
    """

    def __init__(
        self,
        channel: Channel,
        method: Method[Req, Resp],
        timeout: float | None,
        metadata: MetadataLike | None,
        compression: str | None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._channel = channel
        self._method = method
        explicit = timeout is not _UNSET
        self._deadline = resolve_deadline(timeout if explicit else None, explicit=explicit)
        self._metadata = Metadata(metadata) if metadata else channel.metadata
        self._compression = (
            codecs.check_supported(compression) if compression is not None else channel.compression
        )
        # Encoded now, so that invalid metadata raises before anything is sent.
        self._metadata_headers = encode_metadata(self._metadata)
        self._conn: core.Connection | None = None
        self._stream_id = 0
        self._starting: asyncio.Future[None] | None = None
        self._first_request: tuple[Req] | None = None
        self._reader: MessageReader | None = None
        self._initial_metadata: Metadata | None = None
        self._trailing_metadata: Metadata | None = None
        self._error: RpcError | None = None
        """The call's failure, once known; every later operation raises it."""
        self._code: StatusCode | None = None
        self._details = ""
        self._timer: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None
        self._done_writing = False
        self._peer_stopped_reading = False
        """The server answered and sent RST_STREAM(NO_ERROR): further requests are dropped."""
        self._done = asyncio.Event()
        if self._deadline is not None:
            self._timer = self._loop.call_at(self._deadline, self._on_deadline)

    # --- public API --------------------------------------------------------------

    async def write(self, request: Req, *, compress: bool = True) -> None:
        """Send one request message (dropped if the server already finished the call).

        ``compress=False`` sends this one uncompressed even if the call compresses.
        """
        if self._done_writing:
            raise RuntimeError("done_writing() was already called")
        if self._done.is_set():
            if self._error is not None:
                raise self._error
            return  # the call ended OK: the server wants no more requests
        try:
            await self._start()
            await self._send(request, end_stream=False, compress=compress)
        except asyncio.CancelledError:
            self._abandon()
            raise

    async def done_writing(self) -> None:
        """Tell the server that all requests have been sent."""
        if self._done_writing or self._done.is_set() or self._peer_stopped_reading:
            self._done_writing = True
            return
        await self._start()
        self._done_writing = True
        assert self._conn is not None
        try:
            await self._conn.end_stream(self._stream_id)
        except core.H2Error as exc:
            self._send_failed(exc)

    async def read(self) -> Resp | None:
        """The next response, or None when the server has sent them all (status OK)."""
        try:
            return await self._read()
        except asyncio.CancelledError:
            self._abandon()  # the reader gave up: so does the call, as in grpc.aio
            raise

    async def _read(self) -> Resp | None:
        await self._start()
        if self._reader is None:
            await self._receive_headers()
        if self._done.is_set():
            if self._error is not None:
                raise self._error
            return None
        assert self._reader is not None
        try:
            payload = await self._reader.read()
        except core.H2Error as exc:
            self._fail(exc)
        except RpcError as exc:
            self._abort(exc)
        if payload is None:
            await self._finish()
            return None
        try:
            return self._method.response_deserializer(payload)
        except Exception as exc:
            self._abort(RpcError(StatusCode.INTERNAL, f"cannot parse response message: {exc}"))

    def __aiter__(self) -> Call[Req, Resp]:
        return self

    async def __anext__(self) -> Resp:
        response = await self.read()
        if response is None:
            raise StopAsyncIteration
        return response

    def __await__(self) -> Generator[Any, None, Resp]:
        """The single response of a client-streaming call."""
        if self._method.kind.server_streaming:
            raise TypeError("await works for unary-response calls; iterate this one")
        return self._read_single_response().__await__()

    async def initial_metadata(self) -> Metadata:
        await self._start()
        if self._initial_metadata is None:
            await self._receive_headers()
        assert self._initial_metadata is not None
        return self._initial_metadata

    async def trailing_metadata(self) -> Metadata:
        await self._done.wait()
        return self._trailing_metadata or Metadata()

    async def code(self) -> StatusCode:
        await self._done.wait()
        assert self._code is not None
        return self._code

    async def details(self) -> str:
        await self._done.wait()
        return self._details

    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self) -> bool:
        """Cancel the call (RST_STREAM CANCEL); False if it had already finished."""
        if self._done.is_set():
            return False
        self._end_locally(RpcError(StatusCode.CANCELLED, "cancelled by the client"))
        return True

    # --- starting --------------------------------------------------------------------

    async def _start(self) -> None:
        """Open the stream, once; concurrent callers wait for the first one."""
        if self._conn is not None:
            return
        if self._error is not None:
            raise self._error
        if self._starting is not None:
            await asyncio.shield(self._starting)
            if self._error is not None:
                raise self._error
            return
        self._starting = starting = self._loop.create_future()
        try:
            await self._open_stream()
        except BaseException as exc:
            if isinstance(exc, RpcError):
                error = self._error or exc
            else:
                error = self._error or RpcError(StatusCode.CANCELLED, "the call was cancelled")
            self._set_error(error)
            starting.set_result(None)
            if isinstance(exc, RpcError):
                raise error from None
            raise
        starting.set_result(None)
        if self._first_request is not None:
            (request,) = self._first_request
            self._first_request = None
            await self._send(request, end_stream=True)

    async def _open_stream(self) -> None:
        channel = self._channel
        conn = channel._connection
        if conn is None or conn.closed:
            conn = await self._wait(channel._get_connection())
        try:
            if not conn.available_streams:
                await self._wait(conn.wait_stream_slot())
            # Built only now, so that grpc-timeout tells what is really left.
            stream_id = await conn.start_request(self._headers())
        except core.ConnectionClosedError as exc:
            self._set_error(RpcError(StatusCode.UNAVAILABLE, str(exc)))
            raise self._error from None  # type: ignore[misc]
        if self._error is not None:  # cancelled or timed out meanwhile
            conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            raise self._error
        self._conn = conn
        self._stream_id = stream_id

    async def _wait(self, awaitable: Awaitable[T]) -> T:
        """Wait for something slow (connecting, a stream slot), but no longer than the
        call lives: its deadline, or cancel() from another task, ends the wait."""
        task = asyncio.ensure_future(awaitable)
        ended = asyncio.ensure_future(self._done.wait())
        timeout = None if self._deadline is None else max(0.0, self._deadline - self._loop.time())
        try:
            await asyncio.wait({task, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not task.done():
                task.cancel()
                task.add_done_callback(_consume_exception)
        if task.done() and not task.cancelled():
            return task.result()
        if self._error is None:
            self._set_error(RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
        raise self._error  # type: ignore[misc]

    def _headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b":method", b"POST"),
            (b":path", self._method.path.encode()),
            (b"te", b"trailers"),
            (b"content-type", b"application/grpc"),
            (b"user-agent", self._channel._user_agent),
            (b"grpc-accept-encoding", codecs.ACCEPT_ENCODING.encode()),
        ]
        if self._deadline is not None:
            remaining = self._deadline - self._loop.time()
            headers.insert(2, (b"grpc-timeout", encode_timeout(remaining).encode()))
        if self._compression is not None:
            headers.append((b"grpc-encoding", self._compression.encode()))
        headers += self._metadata_headers
        return headers

    # --- sending -----------------------------------------------------------------------

    async def _send(self, request: Req, *, end_stream: bool, compress: bool = True) -> None:
        if self._peer_stopped_reading:
            return
        try:
            payload = self._method.request_serializer(request)
        except Exception as exc:
            self._abort(RpcError(StatusCode.INTERNAL, f"cannot serialize the request: {exc!r}"))
        try:
            data = frame_message(
                payload,
                encoding=self._compression,
                max_length=self._channel.max_send_message_length,
                compress=compress,
            )
        except RpcError as exc:
            self._abort(exc)
        if end_stream:
            self._done_writing = True
        assert self._conn is not None
        try:
            await self._conn.send_data(self._stream_id, data, end_stream=end_stream)
        except core.H2Error as exc:
            self._send_failed(exc)

    def _send_failed(self, exc: core.H2Error) -> None:
        """A send failed. RST_STREAM(NO_ERROR) after the response only means "stop
        sending": the status is in the response, so the call is not failed."""
        if (
            isinstance(exc, core.StreamResetError)
            and exc.remote
            and exc.error_code == ErrorCodes.NO_ERROR
        ):
            self._peer_stopped_reading = True
            return
        self._fail(exc)

    def _send_requests(self, requests: Iterable[Req] | AsyncIterable[Req]) -> None:
        self._sender = asyncio.ensure_future(self._send_all(requests))
        self._sender.add_done_callback(_consume_exception)

    async def _send_all(self, requests: Iterable[Req] | AsyncIterable[Req]) -> None:
        """Send what the request iterable yields (in its own task), then half-close.

        An exception from the iterable itself cancels the call, as in grpc.aio;
        one from writing means the call already failed, and readers see that.
        """
        try:
            if isinstance(requests, AsyncIterable):
                async for request in requests:
                    if self._peer_stopped_reading or self._done.is_set():
                        break
                    await self.write(request)
            else:
                for request in requests:
                    if self._peer_stopped_reading or self._done.is_set():
                        break
                    await self.write(request)
            await self.done_writing()
        except BaseException as exc:
            if not self._done.is_set():
                self._end_locally(
                    RpcError(StatusCode.CANCELLED, f"the request iterator raised {exc!r}")
                )
            if isinstance(exc, asyncio.CancelledError):
                raise

    # --- receiving ---------------------------------------------------------------------

    async def _receive_headers(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            headers = await conn.recv_response(self._stream_id)
        except core.H2Error as exc:
            self._fail(exc)
        fields: dict[str, str] = {}
        for name, value in headers:
            fields.setdefault(name, value)
        self._reader = MessageReader(
            conn,
            self._stream_id,
            encoding=None,
            max_length=self._channel.max_receive_message_length,
        )
        if "grpc-status" in fields:
            # Trailers-Only: the whole answer is in this one header block. Taking
            # the (empty) trailers lets the connection forget the stream.
            self._initial_metadata = Metadata()
            with contextlib.suppress(core.H2Error):
                await conn.recv_trailers(self._stream_id)
            self._complete(headers, fields)
            return
        try:
            self._initial_metadata = decode_metadata(headers)
        except ValueError as exc:
            self._abort(RpcError(StatusCode.INTERNAL, str(exc)))
        http_status = fields.get(":status", "")
        if http_status != "200":
            code = (
                status_from_http(int(http_status)) if http_status.isdigit() else StatusCode.UNKNOWN
            )
            self._abort(RpcError(code, f"HTTP status {http_status}"))
        content_type = fields.get("content-type", "")
        if not content_type.startswith("application/grpc"):
            self._abort(RpcError(StatusCode.UNKNOWN, f"unexpected content-type {content_type!r}"))
        encoding = fields.get("grpc-encoding")
        if encoding is not None and encoding != codecs.IDENTITY:
            if not codecs.is_supported(encoding):
                self._abort(
                    RpcError(
                        StatusCode.INTERNAL, f"server used unsupported grpc-encoding {encoding!r}"
                    )
                )
            self._reader = MessageReader(
                conn,
                self._stream_id,
                encoding=encoding,
                max_length=self._channel.max_receive_message_length,
            )

    async def _read_single_response(self) -> Resp:
        response = await self.read()
        if response is None:
            error = RpcError(StatusCode.UNIMPLEMENTED, "the server sent no response message")
            self._error, self._code, self._details = error, error.code, error.details
            raise error
        if await self.read() is not None:
            self._abort(RpcError(StatusCode.UNIMPLEMENTED, "the server sent several responses"))
        return response

    async def _finish(self) -> None:
        """End of the response stream: the status is in the trailers."""
        assert self._conn is not None
        try:
            trailers = await self._conn.recv_trailers(self._stream_id)
        except core.H2Error as exc:
            self._fail(exc)
        fields: dict[str, str] = {}
        for name, value in trailers:
            fields.setdefault(name, value)
        self._complete(trailers, fields)

    def _complete(self, headers: list[tuple[str, str]], fields: dict[str, str]) -> None:
        """Record the status from trailers (or Trailers-Only headers); raise if not OK."""
        if "grpc-status" in fields:
            code = parse_status(fields["grpc-status"])
            details = decode_message(fields.get("grpc-message", ""))
        else:
            code, details = StatusCode.UNKNOWN, "the server sent no grpc-status"
        status_details = None
        try:
            trailing = decode_metadata(headers)
            if "grpc-status-details-bin" in fields:
                status_details = decode_bin(fields["grpc-status-details-bin"])
        except ValueError as exc:
            code, details, trailing = StatusCode.INTERNAL, str(exc), Metadata()
        self._trailing_metadata = trailing
        if code is StatusCode.OK:
            self._set_done(StatusCode.OK, details)
            return
        error = RpcError(
            code,
            details,
            trailing_metadata=trailing,
            initial_metadata=self._initial_metadata,
            status_details=status_details,
        )
        self._set_error(error)
        raise error

    # --- ending ------------------------------------------------------------------------

    def _set_error(self, error: RpcError) -> None:
        if self._error is None and not self._done.is_set():
            self._error = error
            self._set_done(error.code, error.details)

    def _set_done(self, code: StatusCode, details: str) -> None:
        if self._done.is_set():
            return
        self._code, self._details = code, details
        self._done.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()

    def _fail(self, exc: core.H2Error) -> NoReturn:
        """Turn a core error into the call's status (unless one is known) and raise it."""
        if isinstance(exc, core.StreamResetError):
            error = RpcError(status_from_rst(exc.error_code), f"stream reset: {exc}")
        elif isinstance(exc, core.ConnectionClosedError):
            error = RpcError(StatusCode.UNAVAILABLE, str(exc))
        else:
            error = RpcError(StatusCode.INTERNAL, str(exc))
        self._set_error(error)
        assert self._error is not None
        raise self._error from None

    def _end_locally(self, error: RpcError) -> None:
        """End the call on our side with ``error``: record it, reset the stream.

        A call that already completed OK is left alone (its responses may still
        be unread)."""
        if self._done.is_set() and self._error is None:
            return
        self._set_error(error)
        if self._conn is not None:
            self._conn.reset_stream(self._stream_id, ErrorCodes.CANCEL)

    def _abort(self, error: RpcError) -> NoReturn:
        self._end_locally(error)
        raise self._error or error

    def _on_deadline(self) -> None:
        self._timer = None
        if not self._done.is_set():
            self._end_locally(RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))

    def _abandon(self) -> None:
        """The caller stopped waiting (error or cancellation): leave no stream open."""
        self._end_locally(RpcError(StatusCode.CANCELLED, "the call was abandoned"))


def _consume_exception(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
