"""A client call: one RPC in progress over one HTTP/2 stream of a Channel.

A unary call runs entirely in the caller's task: no task is created for it,
and no future or event unless a second operation has to wait for another.
The deadline is one timer that resets the stream, which wakes whatever the
call is waiting for; the stream reset then reads as DEADLINE_EXCEEDED.
Getting a stream (and a new one when the server refused the call) is
:mod:`.retry`'s job.

The status (``code()``, ``details()``, ``trailing_metadata()``) is fetched
when asked for, without iterating the call: asking opens the call if need
be, takes the response headers (a Trailers-Only answer is complete there)
and waits for the end of the response stream. Responses that arrive
meanwhile stay buffered and are still read, in order, before the end (or
the error) is reported. Buffering is bounded by the stream's flow-control
window: a server with more to send waits for the client to read, so the
status then waits for a reader (or the deadline), as with grpc.aio (whose
``code()`` waits for every response to be read, even those already here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Generic, NoReturn, cast

from .. import core
from ..deadlines import resolve_deadline
from ..http2 import ErrorCodes
from ..messages import END, MessageReader, frame_message
from ..methods import Method, Req, Resp
from ..protocol import compression as codecs
from ..protocol import wire
from ..protocol.framing import Buffer
from ..protocol.metadata import Metadata, MetadataLike, encode_metadata
from ..protocol.status import RpcError, StatusCode, status_from_rst
from .retry import StreamAttempts, consume_exception

if TYPE_CHECKING:
    from .channel import Channel

log = logging.getLogger(__name__)

_UNSET: Any = object()
"""Default of ``timeout=``: inherit the deadline of the call being served, if any."""


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
        wait_for_ready: bool | None = None,
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
        self._stream: core.Stream | None = None
        """The call's HTTP/2 stream (a new one after a transparent retry)."""
        self._attempts = StreamAttempts(
            channel,
            channel.wait_for_ready if wait_for_ready is None else wait_for_ready,
            self._deadline,
        )
        self._opening = False
        """The first operation is opening the stream; others wait on ``_opened``."""
        self._opened: asyncio.Future[None] | None = None
        """Created only when a second operation has to wait for the stream."""
        self._first_request: tuple[Req] | None = None
        self._receiving_headers = False
        """An operation is receiving the response headers; others wait on ``_headers_taken``."""
        self._headers_taken: asyncio.Future[None] | None = None
        self._reader: MessageReader | None = None
        self._status_before_end = False
        """The status was taken from the trailers before the reader reached the end:
        the responses received before it are still read first."""
        self._initial_metadata: Metadata | None = None
        self._trailing_metadata: Metadata | None = None
        self._error: RpcError | None = None
        """The call's failure, once known; every later operation raises it."""
        self._code: StatusCode | None = None
        self._details = ""
        self._status_details: bytes | None = None
        """The raw ``grpc-status-details-bin`` received, whatever the code (see rpc.status)."""
        self._timer: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None
        self._done_writing = False
        self._peer_stopped_reading = False
        """The server answered and sent RST_STREAM(NO_ERROR): further requests are dropped."""
        self._finished = False
        """The call's status is known (``_code`` is set)."""
        self._finished_waiter: asyncio.Future[None] | None = None
        """Created only when someone waits for the status before it is known."""
        self._done_callbacks: list[Callable[[Call[Req, Resp]], None]] | None = None
        if self._deadline is not None:
            self._timer = self._loop.call_at(self._deadline, self._on_deadline)

    # --- public API --------------------------------------------------------------

    async def write(self, request: Req, *, compress: bool = True) -> None:
        """Send one request message (dropped if the server already finished the call).

        ``compress=False`` sends this one uncompressed even if the call compresses.
        """
        if self._done_writing:
            raise RuntimeError("done_writing() was already called")
        if self._finished:
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
        if self._done_writing or self._finished or self._peer_stopped_reading:
            self._done_writing = True
            return
        await self._start()
        self._done_writing = True
        await self._send_frame(b"", end_stream=True)

    async def read(self) -> Resp | None:
        """The next response, or None when the server has sent them all (status OK)."""
        try:
            return await self._read()
        except asyncio.CancelledError:
            self._abandon()  # the reader gave up: so does the call, as in grpc.aio
            raise

    async def _read(self) -> Resp | None:
        if self._stream is None:
            await self._start()
        if self._reader is None:
            await self._take_headers()
        if self._finished and not self._status_before_end:
            if self._error is not None:
                raise self._error
            return None
        assert self._reader is not None
        try:
            message = await self._reader.read_message(self._parse_response)
        except core.H2Error as exc:
            self._fail(exc)
        except _ParseError as exc:
            self._abort(RpcError(StatusCode.INTERNAL, f"cannot parse response message: {exc}"))
        except RpcError as exc:
            self._abort(exc)
        if message is END:
            if self._status_before_end:
                self._status_before_end = False
                if self._error is not None:
                    raise self._error
                return None
            await self._finish()
            return None
        return message

    def _parse_response(self, payload: Buffer) -> Resp:
        try:
            # A bytearray or memoryview, not always bytes: deserializers take
            # any bytes-like object (protobuf's do).
            return self._method.response_deserializer(cast(bytes, payload))
        except Exception as exc:
            raise _ParseError(str(exc)) from None

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
        """The response headers' metadata (empty for a Trailers-Only answer)."""
        try:
            await self._start()
            await self._take_headers()
        except RpcError:
            if self._initial_metadata is None:
                raise  # the call failed before the server answered
        if self._initial_metadata is None:
            assert self._error is not None
            raise self._error
        return self._initial_metadata

    async def trailing_metadata(self) -> Metadata:
        await self._wait_status()
        return self._trailing_metadata or Metadata()

    async def code(self) -> StatusCode:
        await self._wait_status()
        assert self._code is not None
        return self._code

    async def details(self) -> str:
        await self._wait_status()
        return self._details

    async def status_details(self) -> bytes | None:
        """The raw ``grpc-status-details-bin`` (a ``google.rpc.Status``; see :mod:`rpc.status`)."""
        await self._wait_finished()
        return self._status_details

    def done(self) -> bool:
        return self._finished

    def add_done_callback(self, callback: Callable[[Call[Req, Resp]], None]) -> None:
        """Call ``callback(call)`` once the call's status is known (now, if it is).

        As grpc.aio's: it runs when the status is settled (received, or the
        call ended on this side: cancelled, deadline, connection lost). A call
        whose responses are never read to the end, nor cancelled, never ends.
        """
        if self._finished:
            _run_done_callback(callback, self)
        elif self._done_callbacks is None:
            self._done_callbacks = [callback]
        else:
            self._done_callbacks.append(callback)

    def cancel(self) -> bool:
        """Cancel the call (RST_STREAM CANCEL); False if it had already finished."""
        if self._finished:
            return False
        self._end_locally(RpcError(StatusCode.CANCELLED, "cancelled by the client"))
        return True

    # --- starting --------------------------------------------------------------------

    async def _start(self) -> None:
        """Open the stream, once; concurrent callers wait for the first one.

        A unary call enters here once and then finds its stream: no future
        or event is made unless a second operation really has to wait.
        """
        if self._stream is not None:
            return
        if self._error is not None:
            raise self._error
        if self._opening:
            if self._opened is None:
                self._opened = self._loop.create_future()
            await asyncio.shield(self._opened)
            if self._error is not None:
                raise self._error
            return
        self._opening = True
        try:
            await self._open_stream(replacing=False)
        except BaseException as exc:
            error = self._failed_opening(exc)
            self._opening_ended()
            if isinstance(exc, RpcError):
                raise error from None
            raise
        self._opening_ended()
        if self._first_request is not None:
            (request,) = self._first_request
            self._first_request = None
            await self._send(request, end_stream=True)

    def _opening_ended(self) -> None:
        self._opening = False
        if self._opened is not None:
            self._opened.set_result(None)

    async def _open_stream(self, *, replacing: bool) -> None:
        """Give the call its stream, or (``replacing``) a new one with the replayed requests."""
        attempts = self._attempts
        if replacing:
            stream = await attempts.move(self._headers, self._wait_finished)
        else:
            stream = await attempts.open(self._headers, self._wait_finished)
        if self._error is not None:  # cancelled or timed out meanwhile
            stream.reset(ErrorCodes.CANCEL)
            raise self._error
        self._stream = stream

    def _failed_opening(self, exc: BaseException) -> RpcError:
        """Opening a stream ended with ``exc``: that (or what ended the call first)
        is the call's status."""
        if isinstance(exc, RpcError):
            error = self._error or exc
        else:
            error = self._error or RpcError(StatusCode.CANCELLED, "the call was cancelled")
        self._set_error(error)
        return error

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return wire.build_request(
            self._method.path,
            user_agent=self._channel.user_agent,
            timeout=None if self._deadline is None else self._deadline - self._loop.time(),
            encoding=self._compression,
            metadata=self._metadata_headers,
        )

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
        await self._send_frame(data, end_stream=end_stream)

    async def _send_frame(self, data: bytes | list[Buffer], *, end_stream: bool) -> None:
        """Send on the call's stream, keeping first what a transparent retry would replay."""
        attempts = self._attempts
        if attempts.moving:
            await self._await_moved()
        attempts.record(data, end_stream)
        stream = self._stream
        assert stream is not None
        try:
            await stream.send_data(data, end_stream=end_stream)
        except core.H2Error as exc:
            if (
                isinstance(exc, core.StreamResetError)
                and exc.remote
                and exc.error_code == ErrorCodes.NO_ERROR
            ):
                # RST_STREAM(NO_ERROR) after the response only means "stop sending":
                # the status is in the response, so the call is not failed.
                self._peer_stopped_reading = True
                return
            # Either this data was replayed on a new stream, or this raises.
            await self._recover(exc, stream)

    def _send_requests(self, requests: Iterable[Req] | AsyncIterable[Req]) -> None:
        self._sender = asyncio.ensure_future(_send_all(self, requests))
        self._sender.add_done_callback(consume_exception)

    # --- transparent retry ---------------------------------------------------------------

    async def _recover(self, exc: core.H2Error, stream: core.Stream) -> None:
        """``stream`` of the call failed with ``exc``.

        Returns if the call goes on on a new stream (what had been sent is
        replayed there, so the caller only has to redo a receive); raises the
        call's status otherwise.
        """
        attempts = self._attempts
        if attempts.moving or stream is not self._stream:
            await self._await_moved()  # another operation of this call moved it
            return
        if self._finished or not attempts.can_retry(exc, stream):
            self._fail(exc)
        try:
            await self._open_stream(replacing=True)
        except core.H2Error as error:
            self._fail(error)
        except BaseException as error:
            failure = self._failed_opening(error)
            if isinstance(error, RpcError):
                raise failure from None
            raise

    async def _await_moved(self) -> None:
        await self._attempts.wait_moved()
        if self._error is not None:
            raise self._error

    # --- receiving ---------------------------------------------------------------------

    async def _take_headers(self) -> None:
        """Receive the response headers, once: an operation finding another one at it
        waits for that one (one reader per stream)."""
        while self._reader is None and not self._finished:
            if not self._receiving_headers:
                self._receiving_headers = True
                try:
                    await self._receive_headers()
                    self._attempts.server_answered()
                finally:
                    self._receiving_headers = False
                    taken, self._headers_taken = self._headers_taken, None
                    if taken is not None:
                        taken.set_result(None)
                return
            if self._headers_taken is None:
                self._headers_taken = self._loop.create_future()
            await asyncio.shield(self._headers_taken)

    async def _receive_headers(self) -> None:
        while True:
            stream = self._stream
            assert stream is not None
            try:
                headers = await stream.recv_headers()
                break
            except core.H2Error as exc:
                await self._recover(exc, stream)  # raises unless moved to a new stream
        answer = wire.parse_response(headers)
        head = answer if isinstance(answer, wire.ResponseHead) else None
        self._reader = MessageReader(
            stream,
            encoding=None if head is None else head.encoding,
            max_length=self._channel.max_receive_message_length,
            parse_copies=self._method.deserializers_copy,
        )
        if head is not None:
            self._initial_metadata = head.metadata
            return
        assert isinstance(answer, wire.Status)
        self._initial_metadata = Metadata()
        if not stream.ended_by_peer:
            # Not a gRPC response (or a status the server did not end the stream with).
            self._abort(RpcError(answer.code, answer.message))
        # Trailers-Only (or an HTTP error): the whole answer was in this one
        # header block. Taking the (empty) trailers lets the connection forget the stream.
        with contextlib.suppress(core.H2Error):
            await stream.recv_trailers()
        self._complete(answer)

    async def _read_single_response(self) -> Resp:
        response = await self.read()
        if response is None:
            error = RpcError(StatusCode.UNIMPLEMENTED, "the server sent no response message")
            self._error, self._code, self._details = error, error.code, error.details
            raise error
        if await self.read() is not None:
            self._abort(RpcError(StatusCode.UNIMPLEMENTED, "the server sent several responses"))
        return response

    async def _wait_status(self) -> None:
        """Wait until the call's status is known, fetching it if need be (see the module doc)."""
        if not self._finished:
            try:
                if self._stream is None:
                    # Opened in a task of its own: giving up on the status (a
                    # timeout around code()) must not cancel the call itself.
                    opening = asyncio.ensure_future(self._start())
                    opening.add_done_callback(consume_exception)
                    await asyncio.shield(opening)
                await self._take_headers()
                if not self._finished:
                    await self._take_status_early()
            except RpcError:
                pass  # the call's status, recorded
        await self._wait_finished()

    async def _take_status_early(self) -> None:
        """Wait for the end of the response stream, leaving its responses to the
        reader, and take the status from the trailers (unless the reader did)."""
        stream = self._stream
        assert stream is not None
        try:
            await stream.recv_trailers()
        except core.H2Error as exc:
            self._fail(exc)
        if not self._finished:
            self._status_before_end = True
            await self._finish()  # the stream has ended: this does not wait

    async def _finish(self) -> None:
        """End of the response stream: the status is in the trailers."""
        assert self._stream is not None
        try:
            trailers = await self._stream.recv_trailers()
        except core.H2Error as exc:
            self._fail(exc)
        self._complete(wire.parse_status(trailers))

    def _complete(self, status: wire.Status) -> None:
        """Record the status from trailers (or Trailers-Only headers); raise if not OK."""
        self._trailing_metadata = status.metadata
        self._status_details = status.details
        if status.code is StatusCode.OK:
            self._set_done(StatusCode.OK, status.message)
            return
        error = RpcError(
            status.code,
            status.message,
            trailing_metadata=status.metadata,
            initial_metadata=self._initial_metadata,
            status_details=status.details,
        )
        self._set_error(error)
        raise error

    # --- ending ------------------------------------------------------------------------

    def _set_error(self, error: RpcError) -> None:
        if self._error is None and not self._finished:
            self._error = error
            self._set_done(error.code, error.details)

    async def _wait_finished(self) -> None:
        if not self._finished:
            if self._finished_waiter is None:
                self._finished_waiter = self._loop.create_future()
            await asyncio.shield(self._finished_waiter)

    def _set_done(self, code: StatusCode, details: str) -> None:
        if self._finished:
            return
        self._code, self._details = code, details
        self._finished = True
        if self._finished_waiter is not None:
            self._finished_waiter.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        callbacks = self._done_callbacks
        if callbacks is not None:
            self._done_callbacks = None
            for callback in callbacks:
                _run_done_callback(callback, self)

    def _fail(self, exc: core.H2Error) -> NoReturn:
        """Turn a core error into the call's status (unless one is known) and raise it."""
        if isinstance(exc, core.StreamResetError):
            error = RpcError(status_from_rst(exc.error_code), f"stream reset: {exc}")
        elif isinstance(exc, core.ConnectionClosedError):
            error = RpcError(StatusCode.UNAVAILABLE, str(exc))
            self._channel.forget_closed_connection()  # a GOAWAY'd connection takes no new calls
        else:
            error = RpcError(StatusCode.INTERNAL, str(exc))
        self._set_error(error)
        assert self._error is not None
        raise self._error from None

    def _end_locally(self, error: RpcError) -> None:
        """End the call on our side with ``error``: record it, reset the stream.

        A call that already completed OK is left alone (its responses may still
        be unread)."""
        if self._finished and self._error is None:
            return
        self._set_error(error)
        if self._stream is not None:
            self._stream.reset(ErrorCodes.CANCEL)

    def _abort(self, error: RpcError) -> NoReturn:
        self._end_locally(error)
        raise self._error or error

    def _on_deadline(self) -> None:
        self._timer = None
        if not self._finished:
            self._end_locally(RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))

    def _abandon(self) -> None:
        """The caller stopped waiting (error or cancellation): leave no stream open."""
        self._end_locally(RpcError(StatusCode.CANCELLED, "the call was abandoned"))


def _run_done_callback(callback: Callable[[Call[Req, Resp]], None], call: Call[Req, Resp]) -> None:
    """A done callback's failure is logged: it must not change how the call ends."""
    try:
        callback(call)
    except Exception:
        log.exception("a call's done callback failed")


async def _send_all(call: Call[Req, Any], requests: Iterable[Req] | AsyncIterable[Req]) -> None:
    """Send what the request iterable yields (in the call's sender task), then half-close.

    An exception from the iterable itself cancels the call, as in grpc.aio;
    one from writing means the call already failed, and readers see that.
    The call cancels this task when it ends.
    """
    try:
        if isinstance(requests, AsyncIterable):
            async for request in requests:
                if call._peer_stopped_reading or call._finished:
                    break
                await call.write(request)
        else:
            for request in requests:
                if call._peer_stopped_reading or call._finished:
                    break
                await call.write(request)
        await call.done_writing()
    except BaseException as exc:
        if not call._finished:
            call._end_locally(
                RpcError(StatusCode.CANCELLED, f"the request iterator raised {exc!r}")
            )
        if isinstance(exc, asyncio.CancelledError):
            raise


class _ParseError(Exception):
    """The response deserializer failed (told apart from the reader's own RpcErrors)."""
